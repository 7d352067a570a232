"""gymnax environments and the evaluation loop every algorithm shares."""

from __future__ import annotations

from typing import Any, Callable

import gymnax
import jax
import jax.numpy as jnp

from hyperlax.environments import ENVS


def make_env(env_id: str) -> tuple[Any, Any]:
    """(env, env_params) for a hyperlax env id such as ``gymnax.pendulum``."""
    return gymnax.make(ENVS[env_id].gymnax_name)


def action_info(env: Any, env_params: Any) -> tuple[bool, int, float, float]:
    """(discrete, action_dim_or_count, low, high) of an env's action space."""
    space = env.action_space(env_params)
    if hasattr(space, "n"):
        return True, int(space.n), 0.0, 0.0
    return False, int(space.shape[0]), float(jnp.min(space.low)), float(jnp.max(space.high))


def evaluate(env: Any, env_params: Any, act: Callable[[jax.Array, jax.Array], jax.Array],
             key: jax.Array, num_episodes: int) -> jax.Array:
    """Mean undiscounted return of ``num_episodes`` episodes run in parallel.

    ``act(obs, key) -> action`` acts on one observation (it is vmapped here). Each episode
    counts rewards until its first termination or truncation; gymnax auto-resets, so later
    steps of a finished slot are ignored. The loop length is the env's episode limit, so every
    episode ends inside it.
    """
    reset_keys = jax.random.split(jax.random.fold_in(key, 0), num_episodes)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)

    def step(carry, step_key):
        obs, state, returns, alive = carry
        act_keys, env_keys = jnp.split(jax.random.split(step_key, 2 * num_episodes), 2)
        action = jax.vmap(act)(obs, act_keys)
        obs, state, reward, terminated, truncated, _ = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(env_keys, state, action, env_params)
        returns = returns + jnp.where(alive, reward, 0.0)
        alive = alive & ~(terminated | truncated)
        return (obs, state, returns, alive), None

    steps = jax.random.split(jax.random.fold_in(key, 1), env_params.max_steps_in_episode)
    init = (obs, state, jnp.zeros(num_episodes), jnp.ones(num_episodes, dtype=bool))
    (_, _, returns, _), _ = jax.lax.scan(step, init, steps)
    return returns.mean()
