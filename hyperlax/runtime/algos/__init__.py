"""Training algorithms. Every algorithm module exposes the same contract:

    make_train(env_id: str, budget: Budget) -> train(config, key: jax.Array) -> TrainMetrics

``make_train`` does the Python setup that depends on the environment and the budget only.
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


def all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is finite: what ``TrainMetrics.finite`` reports."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def check_config(config: Any) -> None:
    """Refuse, while tracing, a structure the compiler would have refused (a plan is input)."""
    problems = config.cross_field_problems()
    if problems:
        raise ValueError("; ".join(problems))


def get_make_train(algorithm: str) -> Callable:
    if algorithm == "ppo":
        from hyperlax.runtime.algos.ppo import make_train
    elif algorithm == "dqn":
        from hyperlax.runtime.algos.dqn import make_train
    elif algorithm == "sac":
        from hyperlax.runtime.algos.sac import make_train
    else:  # the plan decoder already refused unknown algorithms
        raise ValueError(f"unknown algorithm {algorithm!r}")
    return make_train
