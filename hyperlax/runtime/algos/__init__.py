"""Training algorithms. Every algorithm module exposes the same contract:

    make_program(env_id: str, budget: Budget) -> Program(init, chunk)
        init(config, key: jax.Array) -> carry
        chunk(config, carry) -> (carry, TrainMetrics of one evaluation point)
    make_train(env_id: str, budget: Budget) -> train(config, key: jax.Array) -> TrainMetrics

Training is ``budget.num_evaluations`` evaluation chunks (updates, then an evaluation);
``train`` is ``init`` then ``lax.scan`` of ``chunk`` (``train_from``), one program, and exec
runs ``init`` and then ``chunk`` once per evaluation point from the host (progress and stops
between chunks), with the carry kept on the device.

``make_program`` does the Python setup that depends on the environment and the budget only.
``train`` takes the algorithm's config Struct (``hyperlax.hyperparams``), registered as a pytree
(``hyperlax.runtime.configs``): its structural fields are static Python values, so ``train`` may
build networks and loops from them while it is traced; its scalar fields are 0-d arrays
(float32 or int32), and ``train`` must never branch in Python on them. ``key`` is the
sample-replicate's PRNG key, the only source of its randomness, network initialization
included. ``hyperlax.runtime.batched`` wraps ``train`` as ``vmap(vmap(train))`` over samples and
replicates; that is the only way it is called.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class TrainMetrics(NamedTuple):
    """What one sample-replicate's training reports, one value per evaluation point."""

    eval_steps: jax.Array    # int32 [num_evaluations]: env steps consumed at each point
    eval_returns: jax.Array  # float32 [num_evaluations]: mean return of the eval episodes
    losses: dict             # name -> float32 [num_evaluations], mean over the chunk's updates
    finite: jax.Array        # bool [num_evaluations]: parameters and losses all finite


class Program(NamedTuple):
    """An algorithm's training as its two pure pieces (see the module docstring)."""

    init: Callable   # (config, key) -> carry
    chunk: Callable  # (config, carry) -> (carry, TrainMetrics with one value per field)


def train_from(program: Program, num_evaluations: int) -> Callable:
    """``train(config, key) -> TrainMetrics``: ``init``, then ``num_evaluations`` chunks in one
    ``lax.scan`` (metrics stacked along a trailing [num_evaluations] axis)."""

    def train(config: Any, key: jax.Array) -> TrainMetrics:
        carry = program.init(config, key)
        _, metrics = jax.lax.scan(lambda c, _: program.chunk(config, c), carry, None,
                                  num_evaluations)
        return metrics

    return train


def all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is finite: what ``TrainMetrics.finite`` reports."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def check_config(config: Any) -> None:
    """Refuse, while tracing, a structure the compiler would have refused (a plan is input)."""
    problems = config.cross_field_problems()
    if problems:
        raise ValueError("; ".join(problems))


def _module(algorithm: str) -> Any:
    if algorithm == "ppo":
        from hyperlax.runtime.algos import ppo as module
    elif algorithm == "dqn":
        from hyperlax.runtime.algos import dqn as module
    elif algorithm == "sac":
        from hyperlax.runtime.algos import sac as module
    else:  # the plan decoder already refused unknown algorithms
        raise ValueError(f"unknown algorithm {algorithm!r}")
    return module


def get_make_train(algorithm: str) -> Callable:
    return _module(algorithm).make_train


def get_make_program(algorithm: str) -> Callable:
    return _module(algorithm).make_program
