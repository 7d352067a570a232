"""The one MLP every algorithm builds its networks from, and the one optimizer they share."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import optax

from hyperlax.hyperparams.declare import ACTIVATION_NAMES

# The declaration lists the names; flax.linen has a function of each name.
ACTIVATIONS: dict[str, Callable] = {name: getattr(nn, name) for name in ACTIVATION_NAMES}


def scaled_normal(gain: float) -> nn.initializers.Initializer:
    """Kernel init with the per-entry variance of an orthogonal matrix of this gain,
    gain^2 / fan_in, without its QR decomposition.

    Orthogonal initialization (purejaxrl's choice) runs a batched LAPACK QR inside the vmapped
    training program. On XLA:CPU (jax 0.10.2) such programs deadlocked: a 16-sample PPO sweep
    hung in block_until_ready, every thread idle, in 8 of 9 fresh runs, and never with this
    initializer. A sample's initialization stays inside ``train``, drawn from its own key."""
    return nn.initializers.variance_scaling(gain ** 2, "fan_in", "normal")


class MLP(nn.Module):
    """Hidden layers of ``layer_sizes`` with ``activation``, then, when ``out_dim`` is given, a
    linear head of that width.

    ``gain`` None keeps flax's default (LeCun-normal) kernels (DQN, SAC). A float gives
    purejaxrl's orthogonal-equivalent scheme (``scaled_normal``): that gain for hidden layers
    and ``head_gain`` for the head (PPO: sqrt(2); 0.01 for policy logits, 1.0 for values).
    """

    layer_sizes: Sequence[int]
    activation: str
    out_dim: int | None = None
    gain: float | None = None
    head_gain: float = 1.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        for width in self.layer_sizes:
            x = act(self._dense(width, self.gain)(x))
        if self.out_dim is None:
            return x
        return self._dense(self.out_dim, None if self.gain is None else self.head_gain)(x)

    @staticmethod
    def _dense(width: int, gain: float | None) -> nn.Dense:
        if gain is None:
            return nn.Dense(width)
        return nn.Dense(width, kernel_init=scaled_normal(gain), bias_init=nn.initializers.zeros)


def clipped_adam(learning_rate: float, max_grad_norm: float,
                 eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam after clipping the gradient's global norm. Built through ``make_optimizer`` so the
    learning rate and the clip norm are data (vmappable), not compile-time constants."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate, eps=eps))


def make_optimizer(learning_rate, max_grad_norm, eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.inject_hyperparams(clipped_adam, static_args=("eps",))(
        learning_rate=learning_rate, max_grad_norm=max_grad_norm, eps=eps)
