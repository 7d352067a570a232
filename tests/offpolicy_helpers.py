"""Helpers shared by the DQN and SAC tests: every call goes through ``runtime.batched``, the one
batched entry point the executor uses, with the plan's key rule."""

from __future__ import annotations

import jax
import numpy as np

from hyperlax.train.batched import batched_train, lane, replicate_keys, stack

REPLICATES = 2


def jitted(algorithm: str, env: str, budget) -> callable:
    return jax.jit(batched_train(algorithm, env, budget))


def keys_for(*seeds: int) -> jax.Array:
    """One row of replicate keys per sample, derived from the sample's own seed."""
    return replicate_keys(list(seeds), REPLICATES)


def configs(*samples) -> object:
    return stack(list(samples))


def to_numpy(metrics):
    return jax.tree.map(np.asarray, metrics)


def row(metrics, i):
    return lane(metrics, i)
