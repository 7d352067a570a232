"""The one batched entry point: an algorithm's ``train`` vmapped over samples x replicates, with
the plan's key rule. The executor, the benchmarks and the tests all call this, so what is
tested is what runs.

    run = batched_train("ppo", "gymnax.pendulum", budget)   # jit-able
    metrics = jax.jit(run)(stack(configs), replicate_keys(seeds, replicates))

``batched_program`` is the same training as its two pieces, for exec: ``init(configs, keys)``
gives the [samples, replicates] carry, and each ``chunk(configs, carry)`` call runs ``group``
evaluation chunks of every lane and returns the carry and metrics with a trailing [group] axis:
``init`` and then ``num_evaluations / group`` chunk calls give what ``batched_train`` gives.

Key rule: replicate ``r`` of a sample with seed ``s`` trains with
``fold_in(PRNGKey(s), r)``, whatever batch the sample is in and whichever lane it has.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from hyperlax.hyperparams.budget import Budget
from hyperlax.runtime.algos import Program, get_make_program, get_make_train
from hyperlax.runtime.configs import lane, stack

__all__ = ["batched_program", "batched_train", "lane", "replicate_keys", "sample_keys", "stack"]


def batched_train(algorithm: str, env_id: str, budget: Budget) -> Callable:
    """``run(configs, keys) -> TrainMetrics`` with leading axes [samples, replicates]:
    ``configs`` is a stacked config (``stack``), ``keys`` is [samples, replicates] keys."""
    train = get_make_train(algorithm)(env_id, budget)
    return jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, 0))


def batched_program(algorithm: str, env_id: str, budget: Budget, group: int = 1) -> Program:
    """``Program(init, chunk)`` vmapped over samples x replicates (see the module docstring)."""
    program = get_make_program(algorithm)(env_id, budget)

    def chunks(config, carry):
        return jax.lax.scan(lambda c, _: program.chunk(config, c), carry, None, group)

    def lanes(fn: Callable) -> Callable:
        return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, 0))

    return Program(init=lanes(program.init), chunk=lanes(chunks))


def sample_keys(seed: int, replicates: int) -> jax.Array:
    """The [replicates] keys of one sample."""
    base = jax.random.PRNGKey(seed)
    return jnp.stack([jax.random.fold_in(base, r) for r in range(replicates)])


def replicate_keys(seeds: list[int], replicates: int) -> jax.Array:
    """The [samples, replicates] keys of samples with these training seeds."""
    return jnp.stack([sample_keys(s, replicates) for s in seeds])

