"""What one sample-replicate of an algorithm keeps alive, as the algorithm counts it: each config
Struct's ``footprint`` (declared with its hyperparameters) sizes its own networks, rollout or
replay buffer and gradient steps from these pieces. The compiler's cost estimate
(``hyperlax.compiler.cost``) adds what every algorithm shares (env states, the evaluation, the
budget's updates) without knowing which algorithm it costs. JAX-free.

The counts are float32 arrays, meant to be right within a small factor (see
``compiler.cost``)."""

from __future__ import annotations

from dataclasses import dataclass

from hyperlax.environments import EnvInfo
from hyperlax.hyperparams.config import (CNN_FEATURES, CNN_KERNEL, NetworkShape, OffPolicyConfig,
                                         cnn_output_size)

FLOAT = 4                     # bytes per float32


@dataclass(frozen=True)
class NetworkSize:
    params: int
    activations: int          # floats one example's forward pass keeps per layer, summed
    hidden: int = 0           # floats of the recurrent hidden state carried between steps


def network_size(shape: NetworkShape, env: EnvInfo, outputs: int, extra_inputs: int = 0,
                 value_head: bool = False) -> NetworkSize:
    """The size of a network as ``train.networks.MLP`` builds it: the optional
    convolutional torso on image observations or the GRU cell (flax's ``GRUCell``: three
    input kernels, three recurrent ones, a bias on the candidate's input and on each recurrent
    kernel), the hidden layers (with LayerNorm's scale and bias), the head of ``outputs`` and,
    for a dueling Q-network, a value head beside it."""
    params, activations, inputs = 0, 0, env.obs_size + extra_inputs
    if shape.gru:
        units = shape.gru
        params += 3 * inputs * units + 3 * units * units + 4 * units
        inputs = units
        activations += 4 * units  # two gates, the candidate, the new state
    if shape.cnn and len(env.obs_shape) == 3:
        channels = env.obs_shape[2]
        params += CNN_KERNEL[0] * CNN_KERNEL[1] * channels * CNN_FEATURES + CNN_FEATURES
        inputs = cnn_output_size(tuple(env.obs_shape)) + extra_inputs
        activations += inputs
    widths = [inputs, *shape.layer_sizes]
    params += sum(a * b + b for a, b in zip(widths, widths[1:]))
    if shape.layer_norm:
        params += 2 * sum(shape.layer_sizes)
    params += (widths[-1] + 1) * (outputs + (1 if value_head else 0))
    return NetworkSize(params, activations + sum(shape.layer_sizes), shape.gru)


@dataclass(frozen=True)
class Footprint:
    """One sample-replicate's own costs, by its algorithm's count."""

    params: int                     # parameters of all networks
    param_copies: int               # float copies of them alive while training (the
                                    # parameters, Adam's two moments, gradients, targets)
    data_bytes: int                 # rollout or replay buffer, its batches, the activations
                                    # of one gradient step
    gradient_steps_per_update: int  # gradient steps one training iteration takes
    learner_floats: int             # what a checkpoint's carry keeps of the learner: the
                                    # parameters, their Adam moments, targets, statistics
    buffer_bytes: int = 0           # the carry's replay buffer


def replay_footprint(config: OffPolicyConfig, params: int, activations: int, item_floats: int,
                     learner_floats: int) -> Footprint:
    """The footprint of an off-policy ``config`` (DQN, SAC) whose networks hold ``params`` and
    keep ``activations`` per example, with ``item_floats`` per stored transition: the replay
    buffer, two sampled batches and one iteration's new transitions, and ``train_epochs``
    gradient steps per iteration. Targets are the fifth copy of the parameters."""
    batch = config.replay_batch_size
    data = (config.buffer_size + 2 * batch + config.steps_per_update()) * item_floats * FLOAT
    data += batch * activations * FLOAT * 3
    return Footprint(params=params, param_copies=5, data_bytes=data,
                     gradient_steps_per_update=config.train_epochs,
                     learner_floats=learner_floats,
                     buffer_bytes=config.buffer_size * item_floats * FLOAT)
