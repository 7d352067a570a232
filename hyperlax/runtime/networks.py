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


class MLP(nn.Module):
    """Hidden layers of ``layer_sizes`` with ``activation``, then a linear head of ``out_dim``.

    Orthogonal initialization as in purejaxrl: sqrt(2) gain for hidden layers and a
    caller-chosen gain for the head (0.01 for policy logits, 1.0 for values).
    """

    layer_sizes: Sequence[int]
    activation: str
    out_dim: int
    head_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        for width in self.layer_sizes:
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)),
                             bias_init=nn.initializers.zeros)(x))
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.head_scale),
                        bias_init=nn.initializers.zeros)(x)
