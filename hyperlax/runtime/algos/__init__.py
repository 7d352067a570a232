"""Training algorithms. Every algorithm module exposes the same contract:

    make_train(env_id: str, structure: dict, settings: TrainSettings)
        -> train(hp: dict[str, jax.Array], key: jax.Array) -> TrainMetrics

``make_train`` does all Python-side setup for one *structure* (the sample's structural
hyperparameter values: shapes, loop lengths, layer sizes) and returns a pure function.
``hp`` holds the sample's *scalar* hyperparameters as float32 scalars (names as declared in
``hyperlax.spec.params``); ``key`` is the sample-replicate's PRNG key, the only source of its
randomness, network initialization included. The executor wraps ``train`` as
``jit(vmap(vmap(train, (None, 0)), (0, 0)))`` over samples and replicates, so ``train`` must
never branch in Python on a value in ``hp``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class TrainSettings(NamedTuple):
    total_timesteps: int
    num_evaluations: int
    eval_episodes: int


class TrainMetrics(NamedTuple):
    """What one sample-replicate's training reports, one value per evaluation point."""

    eval_steps: jax.Array    # int32 [num_evaluations]: env steps consumed at each point
    eval_returns: jax.Array  # float32 [num_evaluations]: mean return of the eval episodes
    losses: dict             # name -> float32 [num_evaluations], mean over the chunk's updates
    finite: jax.Array        # bool [num_evaluations]: parameters and losses all finite


def num_updates(settings: TrainSettings, steps_per_update: int) -> tuple[int, int]:
    """(updates per evaluation chunk, total updates run). Leftover steps are not run, so the
    budget actually trained is ``num_evaluations * updates_per_eval * steps_per_update``."""
    per_eval = settings.total_timesteps // steps_per_update // settings.num_evaluations
    per_eval = max(per_eval, 1)
    return per_eval, per_eval * settings.num_evaluations


def all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is finite: what ``TrainMetrics.finite`` reports."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def structure_with_defaults(table: dict, structure: dict) -> dict:
    """The sample's structural values, completed with the table's defaults."""
    structural = {name: p.default for name, p in table.items() if p.role == "structural"}
    unknown = sorted(set(structure) - set(structural))
    if unknown:
        raise ValueError(f"unknown structural hyperparameters: {', '.join(unknown)}")
    return {**structural, **structure}


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
