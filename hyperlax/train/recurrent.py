"""The GRU torso: a network that carries a hidden state from step to step, reset at episode ends.

A recurrent network is stepped one observation at a time while acting (``GRUNet``: hidden
state, observation and the "first step of an episode" flag in; new hidden state and output
out), and replayed over stored sequences while learning (``replay``: a ``lax.scan`` of the same
step from the hidden state stored at each sequence's first step), as purejaxrl's recurrent PPO
(``ppo_rnn.py``) does. The hidden state is zeros at the start of every episode: the step resets
it where ``first`` is set, so a replay that crosses an episode end inside a sequence resets
exactly where acting did.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperlax.hyperparams.config import NetworkShape
from hyperlax.train.networks import MLP, scaled_normal


class GRUNet(nn.Module):
    """A GRU cell of ``units`` on the flat observation, then ``MLP`` (hidden layers and head)
    on the cell's output.

    flax's ``GRUCell`` initializes its recurrent kernels orthogonally, a QR decomposition:
    ``networks.scaled_normal`` says why hyperlax avoids that, and uses its variance instead
    (gain 1, as an orthogonal matrix has)."""

    units: int
    layer_sizes: tuple[int, ...]
    activation: str
    out_dim: int
    gain: float
    head_gain: float
    layer_norm: bool = False

    @nn.compact
    def __call__(self, hidden: jax.Array, obs: jax.Array, first: jax.Array):
        """(new hidden state, output) of one step; ``first``: this observation starts an
        episode, so the step starts from zeros, not from ``hidden``."""
        hidden = jnp.where(first[..., None], jnp.zeros_like(hidden), hidden)
        cell = nn.GRUCell(self.units, recurrent_kernel_init=scaled_normal(1.0))
        hidden, features = cell(hidden, obs)
        head = MLP(self.layer_sizes, self.activation, out_dim=self.out_dim, gain=self.gain,
                   head_gain=self.head_gain, layer_norm=self.layer_norm)
        return hidden, head(features)


def gru_net(shape: NetworkShape, **head: Any) -> GRUNet:
    """The recurrent network of ``shape`` (``shape.gru`` units); ``head``: out_dim, gain and
    head_gain."""
    return GRUNet(shape.gru, tuple(shape.layer_sizes), shape.activation,
                  layer_norm=shape.layer_norm, **head)


def initial_hidden(batch: int, units: int) -> jax.Array:
    """The hidden state of ``batch`` episodes that have not started: zeros."""
    return jnp.zeros((batch, units), jnp.float32)


def replay(net: GRUNet, params: Any, hidden: jax.Array, obs: jax.Array,
           first: jax.Array) -> jax.Array:
    """The outputs [L, B, out] of ``net`` stepped over sequences ``obs`` [L, B, obs_size]
    (``first`` [L, B]) from ``hidden`` [B, units], the state each sequence started from."""

    def step(h, x):
        h, out = net.apply(params, h, *x)
        return h, out

    _, outputs = jax.lax.scan(step, hidden, (obs, first))
    return outputs


class Memory(NamedTuple):
    """What a recurrent PPO agent remembers about each env: each network's hidden state, and
    whether the env's current observation starts an episode."""

    actor: jax.Array   # [num_envs, units]
    critic: jax.Array  # [num_envs, units]
    first: jax.Array   # bool [num_envs]


def start_memory(num_envs: int, units: int) -> Memory:
    """Every env at the start of an episode, with zero hidden states."""
    return Memory(initial_hidden(num_envs, units), initial_hidden(num_envs, units),
                  jnp.ones((num_envs,), bool))


def forget_ended(actor: jax.Array, critic: jax.Array, done: jax.Array) -> Memory:
    """The memory after a step: hidden states of envs whose episode ended set to zeros (their
    next observation starts a new episode, flagged ``first``)."""
    keep = ~done[:, None]
    return Memory(jnp.where(keep, actor, 0.0), jnp.where(keep, critic, 0.0), done)


def to_sequences(x: jax.Array, length: int) -> jax.Array:
    """[T, N, ...] rollout steps -> [length, (T / length) * N, ...]: every env's rollout cut
    into sequences of ``length`` steps, sequence-major (sequence k of env n at k * N + n)."""
    steps, envs = x.shape[:2]
    cut = x.reshape((steps // length, length, envs) + x.shape[2:])
    return jnp.swapaxes(cut, 0, 1).reshape((length, (steps // length) * envs) + x.shape[2:])


def sequence_starts(x: jax.Array, length: int) -> jax.Array:
    """[T, N, ...] per-step values -> [(T / length) * N, ...]: the value at each sequence's
    first step, ordered as ``to_sequences`` orders sequences."""
    starts = x[::length]
    return starts.reshape((starts.shape[0] * starts.shape[1],) + x.shape[2:])
