"""flax MLPs built from structural hyperparameters (layer sizes, activation)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
    "leaky_relu": nn.leaky_relu,
}


def scaled_normal(gain: float) -> nn.initializers.Initializer:
    """Kernel init with the per-entry variance of an orthogonal matrix of this gain,
    gain^2 / fan_in, without its QR decomposition.

    Orthogonal initialization (purejaxrl's choice) runs a batched LAPACK QR inside the vmapped
    training program. On XLA:CPU (jax 0.10.2) such programs deadlocked: a 16-sample PPO sweep
    hung in block_until_ready, every thread idle, in 8 of 9 fresh runs, and never with this
    initializer. A sample's initialization stays inside ``train``, drawn from its own key."""
    return nn.initializers.variance_scaling(gain ** 2, "fan_in", "normal")


class MLP(nn.Module):
    """Hidden layers of ``layer_sizes`` with ``activation``, then a linear head of ``out_dim``.

    Gains as in purejaxrl: sqrt(2) for hidden layers and a caller-chosen gain for the head
    (0.01 for policy logits, 1.0 for values); see ``scaled_normal`` for why not orthogonal.
    """

    layer_sizes: Sequence[int]
    activation: str
    out_dim: int
    head_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        for width in self.layer_sizes:
            x = act(nn.Dense(width, kernel_init=scaled_normal(2.0 ** 0.5),
                             bias_init=nn.initializers.zeros)(x))
        return nn.Dense(self.out_dim, kernel_init=scaled_normal(self.head_scale),
                        bias_init=nn.initializers.zeros)(x)
