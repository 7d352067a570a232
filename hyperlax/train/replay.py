"""A fixed-capacity circular replay buffer that lives on device, inside the jitted loop.

The buffer is plain data: a pytree of ``[capacity, ...]`` arrays, an insert position and a
size. It is part of a training loop's scan carry, so the executor's ``vmap`` over samples and
replicates gives every sample-replicate its own buffer, and each one samples with its own key
and its own (structural) batch size: no padding, no masks.

    buffer = replay.init(example_transition, capacity)
    buffer = replay.add(buffer, transitions)           # leading axis: how many to add
    batch = replay.sample(buffer, key, batch_size)     # uniform, with replacement, below size
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """What DQN and SAC store: one env step of one env."""

    obs: jax.Array
    action: jax.Array    # as applied to the env (SAC: inside the action bounds)
    reward: jax.Array
    next_obs: jax.Array  # the step's own next observation (before auto-reset)
    done: jax.Array      # terminated only: truncated transitions still bootstrap


class Runner(NamedTuple):
    """The scan carry of an off-policy learner (DQN, SAC): what ``collect_and_train`` needs."""

    learner: Any          # the algorithm's own NamedTuple of parameters and optimizer states
    buffer: Any           # a Buffer
    env_state: Any
    obs: jax.Array
    env_steps: jax.Array  # int32: env steps consumed so far (all envs)
    key: jax.Array


class Buffer(NamedTuple):
    data: Any          # pytree of [capacity, ...] arrays
    position: jax.Array  # int32: where the next item is written
    size: jax.Array      # int32: how many slots hold data (<= capacity)


def capacity(buffer: Buffer) -> int:
    return jax.tree.leaves(buffer.data)[0].shape[0]


def init(example: Any, capacity: int) -> Buffer:
    """An empty buffer for items shaped like ``example`` (one item, no leading axis)."""
    if capacity < 1:
        raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.result_type(x)), example)
    return Buffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: Buffer, items: Any) -> Buffer:
    """Write ``items`` (a pytree whose leaves share a leading axis of n) at the insert
    position, wrapping around and overwriting the oldest items once full."""
    cap = capacity(buffer)
    n = jax.tree.leaves(items)[0].shape[0]
    if n > cap:  # only the newest ``cap`` items would survive: keep the indices distinct
        items = jax.tree.map(lambda x: x[n - cap:], items)
        buffer = buffer._replace(position=(buffer.position + (n - cap)) % cap)
        n = cap
    index = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % cap
    data = jax.tree.map(lambda store, x: store.at[index].set(x.astype(store.dtype)),
                        buffer.data, items)
    return Buffer(data, (buffer.position + n) % cap, jnp.minimum(buffer.size + n, cap))


def sample(buffer: Buffer, key: jax.Array, batch_size: int) -> Any:
    """``batch_size`` items drawn uniformly, with replacement, from the filled slots.

    Sampling an empty buffer returns slot 0 (zeros): callers gate learning on warm-up."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[index], buffer.data)


def collect_and_train(runner: Runner, env_step: Callable, gradient_step: Callable, *,
                      rollout_length: int, warmup_steps: int, train_epochs: int
                      ) -> tuple[Runner, Any]:
    """One off-policy iteration, shared by DQN and SAC: step the envs ``rollout_length`` times
    with ``env_step``, add the transitions to ``runner.buffer``, then run ``train_epochs``
    ``gradient_step``s. ``gradient_step((learner, buffer, learning), key)`` must leave the learner
    unchanged while ``learning`` is False, i.e. before ``warmup_steps`` env steps. Returns the
    new runner and the gradient steps' losses (leading axis ``train_epochs``)."""
    runner, traj = jax.lax.scan(env_step, runner, None, rollout_length)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), traj)  # [steps x envs, ...]
    buffer = add(runner.buffer, flat)
    key, k_train = jax.random.split(runner.key)
    learning = runner.env_steps >= warmup_steps
    (learner, _, _), losses = jax.lax.scan(gradient_step, (runner.learner, buffer, learning),
                                           jax.random.split(k_train, train_epochs))
    return runner._replace(learner=learner, buffer=buffer, key=key), losses
