"""The one network every algorithm builds its networks from (an MLP, optionally behind a small
convolutional torso, optionally layer-normalized), and the one optimizer they share."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import optax

from hyperlax.environments import ENVS
from hyperlax.hyperparams.config import CNN_FEATURES, CNN_KERNEL, NetworkShape
from hyperlax.hyperparams.declare import ACTIVATION_NAMES

# The declaration lists the names; flax.linen has a function of each name.
ACTIVATIONS: dict[str, Callable] = {name: getattr(nn, name) for name in ACTIVATION_NAMES}



def scaled_normal(gain: float) -> nn.initializers.Initializer:
    """Kernel init with the per-entry variance of an orthogonal matrix of this gain,
    gain^2 / fan_in, without its QR decomposition.

    Orthogonal initialization (purejaxrl's choice) runs a batched LAPACK QR inside the vmapped
    training program. On XLA:CPU (jax 0.10.2) such programs deadlocked: a 16-sample PPO sweep
    hung in block_until_ready, every thread idle, in 8 of 9 fresh runs, and never with this
    initializer. A sample's initialization stays inside ``train``, drawn from its own key.
    For a convolution, fan_in is the kernel's receptive field times its input channels."""
    return nn.initializers.variance_scaling(gain ** 2, "fan_in", "normal")


class MLP(nn.Module):
    """Hidden layers of ``layer_sizes`` with ``activation``, then, when ``out_dim`` is given, a
    linear head of that width.

    ``layer_norm``: each hidden layer is Dense, LayerNorm, activation (as the original system's
    torso has it). ``image_shape`` (height, width, channels): the flat input is reshaped to it
    and goes through MinAtar's convolution (``hyperparams.config.CNN_*``, relu) and is
    flattened again before the hidden layers. Both default off, and then the parameters, their
    names and their initial values are exactly those of the plain MLP.

    ``gain`` None keeps flax's default (LeCun-normal) kernels (DQN, SAC). A float gives
    purejaxrl's orthogonal-equivalent scheme (``scaled_normal``): that gain for the convolution
    and hidden layers and ``head_gain`` for the head (PPO: sqrt(2); 0.01 for policy logits, 1.0
    for values).
    """

    layer_sizes: Sequence[int]
    activation: str
    out_dim: int | None = None
    gain: float | None = None
    head_gain: float = 1.0
    layer_norm: bool = False
    image_shape: tuple[int, ...] | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        if self.image_shape is not None:
            x = x.reshape(x.shape[:-1] + tuple(self.image_shape))
            x = nn.relu(self._conv()(x))
            x = x.reshape(x.shape[:-3] + (-1,))
        for width in self.layer_sizes:
            x = self._dense(width, self.gain)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        if self.out_dim is None:
            return x
        return self._dense(self.out_dim, None if self.gain is None else self.head_gain)(x)

    def _conv(self) -> nn.Conv:
        if self.gain is None:
            return nn.Conv(CNN_FEATURES, CNN_KERNEL, padding="VALID")
        return nn.Conv(CNN_FEATURES, CNN_KERNEL, padding="VALID",
                       kernel_init=scaled_normal(self.gain), bias_init=nn.initializers.zeros)

    @staticmethod
    def _dense(width: int, gain: float | None) -> nn.Dense:
        if gain is None:
            return nn.Dense(width)
        return nn.Dense(width, kernel_init=scaled_normal(gain), bias_init=nn.initializers.zeros)


def image_shape(shape: NetworkShape, env_id: str) -> tuple[int, ...] | None:
    """The (height, width, channels) a network's convolutional torso reshapes to, or None for
    a plain MLP. The compiler refuses the torso for envs without image observations; a plan is
    input, so this refuses it again."""
    if not shape.cnn:
        return None
    obs_shape = ENVS[env_id].obs_shape
    if len(obs_shape) != 3:
        raise ValueError(f"network.torso 'cnn' needs image observations; {env_id}'s have "
                         f"shape {obs_shape}")
    return tuple(obs_shape)


def mlp(shape: NetworkShape, env_id: str, **head) -> MLP:
    """The network of ``shape`` for ``env_id``'s observations; ``head``: MLP's out_dim, gain
    and head_gain."""
    return MLP(shape.layer_sizes, shape.activation, layer_norm=shape.layer_norm,
               image_shape=image_shape(shape, env_id), **head)


GRAD_CLIPS = {"global_norm": optax.clip_by_global_norm, "per_element": optax.clip}


def clipped_adam(learning_rate: float, max_grad_norm: float, eps: float = 1e-8,
                 grad_clip_mode: str = "global_norm") -> optax.GradientTransformation:
    """Adam after clipping the gradient: its global norm to ``max_grad_norm``, or with
    ``grad_clip_mode`` "per_element" each element to [-max_grad_norm, max_grad_norm]. Built
    through ``make_optimizer`` so the learning rate and the bound are data (vmappable), not
    compile-time constants."""
    return optax.chain(GRAD_CLIPS[grad_clip_mode](max_grad_norm),
                       optax.adam(learning_rate, eps=eps))


def make_optimizer(learning_rate, max_grad_norm, eps: float = 1e-8,
                   grad_clip_mode: str = "global_norm") -> optax.GradientTransformation:
    return inject_current_hyperparams(clipped_adam, static_args=("eps", "grad_clip_mode"),
                                      learning_rate=learning_rate, max_grad_norm=max_grad_norm,
                                      eps=eps, grad_clip_mode=grad_clip_mode)


def inject_current_hyperparams(factory: Callable[..., optax.GradientTransformation],
                               static_args: tuple[str, ...] = (),
                               **hyperparams) -> optax.GradientTransformationExtraArgs:
    """``optax.inject_hyperparams(factory, static_args)(**hyperparams)``, except that every
    update uses the numeric hyperparameters given here, not those in the state.

    inject_hyperparams stores a numeric (not callable) hyperparameter in the optimizer state
    at ``init`` and every ``update`` reads it back from ``state.hyperparams``. A training
    carry continued under a config with another learning rate or clip bound (population-based
    training) would go on with the old values. So ``update`` first overwrites those entries
    with the values given here, cast to the stored leaf's dtype, then delegates: ``init``, the
    state's tree (leaves, shapes, dtypes: old carries and checkpoints load) and, when the
    values are those the state was initialized with, every number are inject_hyperparams'
    own. Schedules (callables) are evaluated at every update anyway and are left alone."""
    tx = optax.inject_hyperparams(factory, static_args=static_args)(**hyperparams)
    numeric = {name: value for name, value in hyperparams.items()
               if name not in static_args and not callable(value)}

    def update(updates, state, params=None, **extra_args):
        stored = state.hyperparams
        current = {name: jnp.asarray(value, jnp.asarray(stored[name]).dtype)
                   for name, value in numeric.items() if name in stored}  # bools: not stored
        state = state._replace(hyperparams={**stored, **current})
        return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update)
