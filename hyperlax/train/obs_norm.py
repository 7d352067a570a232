"""Running observation normalization, shared by the algorithms that offer it (PPO, SAC).

Statistics are a parallel Welford estimate (count starting at 1e-4) kept in the training
carry; a policy sees ``clip((obs - mean) / sqrt(var + 1e-8), -10, 10)``."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ObsNorm(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def norm_init(obs_shape: tuple[int, ...]) -> ObsNorm:
    return ObsNorm(jnp.zeros(obs_shape), jnp.ones(obs_shape), jnp.asarray(1e-4))


def norm_update(norm: ObsNorm, batch: jax.Array) -> ObsNorm:
    """Merge a batch [n, *obs_shape] into the running statistics (parallel Welford)."""
    n = batch.shape[0]
    b_mean, b_var = batch.mean(axis=0), batch.var(axis=0)
    total = norm.count + n
    delta = b_mean - norm.mean
    mean = norm.mean + delta * (n / total)
    m2 = norm.var * norm.count + b_var * n + jnp.square(delta) * norm.count * n / total
    return ObsNorm(mean, m2 / total, total)


def normalize(norm: ObsNorm, obs: jax.Array) -> jax.Array:
    return jnp.clip((obs - norm.mean) / jnp.sqrt(norm.var + 1e-8), -10.0, 10.0)
