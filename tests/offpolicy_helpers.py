"""Helpers shared by the DQN and SAC tests: every call goes through ``train.batched``, the one
batched entry point the executor uses, with the plan's key rule."""

from __future__ import annotations

import jax
import numpy as np

from hyperlax.train.batched import batched_program, lane, replicate_keys, stack

REPLICATES = 2


def exec_train(algorithm: str, env: str, budget) -> callable:
    """``run(configs, keys)``: exec's program, compiled once per input shape."""
    return batched_program(algorithm, env, budget).run


def keys_for(*seeds: int) -> jax.Array:
    """One row of replicate keys per sample, derived from the sample's own seed."""
    return replicate_keys(list(seeds), REPLICATES)


def configs(*samples) -> object:
    return stack(list(samples))


def to_numpy(metrics):
    return jax.tree.map(np.asarray, metrics)


def row(metrics, i):
    return lane(metrics, i)
