"""The one batched entry point: an algorithm's ``train`` vmapped over samples x replicates, with
the plan's key rule. The executor, the benchmarks and the tests all call this, so what is
tested is what runs.

    run = batched_train("ppo", "gymnax.pendulum", budget)   # jit-able
    metrics = jax.jit(run)(stack(configs), replicate_keys(seeds, replicates))

``batched_program`` is the same training as its pieces, for exec: ``init(configs, keys)`` gives
the [samples, replicates] carry; each ``train(configs, carry)`` call runs the updates of
``group`` evaluation chunks of every lane and returns the carry and what they hand on
(``algos.Trained``, with a trailing [group] axis); ``evaluator(spec)(policies, eval_keys)``
evaluates those ``group`` policies of every lane. ``init`` and then ``num_evaluations / group``
train and evaluate calls give what ``batched_train`` gives (``metrics`` joins the two). The
evaluation is a function of the spec only, not of the configs, so one compiled evaluation
serves every structure with that spec (``algos``: the evaluation's spec).

Key rule: replicate ``r`` of a sample with seed ``s`` trains with
``fold_in(PRNGKey(s), r)``, whatever batch the sample is in and whichever lane it has.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.common import Trained, TrainMetrics, metrics
from hyperlax.train.algos.registry import get_make_program, get_make_train
from hyperlax.train.configs import lane, stack

__all__ = ["BatchedProgram", "Trained", "TrainMetrics", "batched_program", "batched_train",
           "lane", "metrics", "replicate_keys", "sample_keys", "stack"]


def batched_train(algorithm: str, env_id: str, budget: Budget) -> Callable:
    """``run(configs, keys) -> TrainMetrics`` with leading axes [samples, replicates]:
    ``configs`` is a stacked config (``stack``), ``keys`` is [samples, replicates] keys."""
    train = get_make_train(algorithm)(env_id, budget)
    return jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, 0))


class BatchedProgram(NamedTuple):
    """An algorithm's pieces vmapped over samples x replicates (see the module docstring)."""

    init: Callable       # (configs, keys) -> carry
    train: Callable      # (configs, carry) -> (carry, Trained with a trailing [group] axis)
    evaluator: Callable  # spec -> (policies, eval_keys) -> returns [samples, replicates, group]
    eval_spec: Callable  # config -> spec
    init_spec: Callable  # config -> spec


def batched_program(algorithm: str, env_id: str, budget: Budget,
                    group: int = 1) -> BatchedProgram:
    """The pieces of ``batched_train``, vmapped (see the module docstring)."""
    program = get_make_program(algorithm)(env_id, budget)

    def trains(config, carry):
        return jax.lax.scan(lambda c, _: program.train(config, c), carry, None, group)

    def evaluator(spec) -> Callable:
        def evaluations(policies, eval_keys):  # one lane's ``group`` policies, in order
            return jax.lax.scan(lambda _, pk: (None, program.evaluate(spec, *pk)), None,
                                (policies, eval_keys))[1]

        return jax.vmap(jax.vmap(evaluations))

    return BatchedProgram(init=_lanes(program.init), train=_lanes(trains), evaluator=evaluator,
                          eval_spec=program.eval_spec, init_spec=program.init_spec)


def _lanes(fn: Callable) -> Callable:
    """``fn(config, x)`` over [samples, replicates]: one config per sample."""
    return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, 0))


def sample_keys(seed: int, replicates: int) -> jax.Array:
    """The [replicates] keys of one sample."""
    base = jax.random.PRNGKey(seed)
    return jnp.stack([jax.random.fold_in(base, r) for r in range(replicates)])


def replicate_keys(seeds: list[int], replicates: int) -> jax.Array:
    """The [samples, replicates] keys of samples with these training seeds."""
    return jnp.stack([sample_keys(s, replicates) for s in seeds])

