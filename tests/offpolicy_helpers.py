"""Helpers shared by the DQN and SAC tests: build vmapped inputs the way the executor does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

REPLICATES = 2


def scalar_hp(table: dict, **overrides) -> dict:
    """One sample's scalar hyperparameters: the table's defaults, with overrides."""
    hp = {name: p.default for name, p in table.items() if p.role == "scalar"}
    hp.update(overrides)
    return {name: jnp.float32(value) for name, value in hp.items()}


def stack(*hps: dict) -> dict:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *hps)


def executor_wrap(train):
    return jax.jit(jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, 0)))


def keys_for(*seeds: int) -> jax.Array:
    """One row of replicate keys per sample, derived from the sample's own seed."""
    return jnp.stack([jax.random.split(jax.random.key(s), REPLICATES) for s in seeds])


def to_numpy(metrics):
    return jax.tree.map(np.asarray, metrics)


def row(metrics, i):
    return jax.tree.map(lambda x: x[i], metrics)
