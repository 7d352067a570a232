"""SAC's hyperparameters, its cost model and its quick pins (the runtime's
``hyperlax.train.algos.sac`` trains with them)."""

from __future__ import annotations

from typing import Any, ClassVar

from hyperlax.environments import EnvInfo
from hyperlax.hyperparams.config import OffPolicyConfig
from hyperlax.hyperparams.declare import (activation, layer_norm, layer_sizes, network_activation,
                                          network_field, scalar, structural)
from hyperlax.hyperparams.footprint import Footprint, network_size, replay_footprint


class SACConfig(OffPolicyConfig):
    algorithm: ClassVar[str] = "sac"
    action_spaces: ClassVar[tuple[str, ...]] = ("continuous",)
    # The original's quick preset (see PPOConfig.quick_pins); warmup_steps is its warm-up of 2
    # rollout steps, counted over all 4 envs.
    quick_pins: ClassVar[dict[str, Any]] = {"num_envs": 4, "rollout_length": 1,
                                            "train_epochs": 1, "buffer_size": 100,
                                            "replay_batch_size": 2, "warmup_steps": 8}

    actor_lr: scalar(float, "Adam learning rate of the actor", gt=0.0) = 3e-4
    q_lr: scalar(float, "Adam learning rate of the twin Q critics", gt=0.0) = 3e-4
    alpha_lr: scalar(float, "Adam learning rate of the entropy temperature", gt=0.0) = 3e-4
    gamma: scalar(float, "discount factor", gt=0.0, le=1.0) = 0.99
    tau: scalar(float, "soft target update coefficient", gt=0.0, le=1.0) = 0.005
    target_entropy_scale: scalar(float, "target entropy = -scale x action dimension",
                                 ge=0.0) = 1.0
    init_alpha: scalar(float, "initial entropy temperature", gt=0.0) = 1.0
    # Gates the temperature's update through jnp.where, so data: no compile.
    learn_alpha: scalar(bool, "tune the entropy temperature towards the target entropy; "
                              "false: it stays init_alpha") = True
    max_grad_norm: scalar(float, "global gradient-norm clip", gt=0.0) = 10.0
    # Compared with a traced counter only, so data: sampling it costs no compile.
    warmup_steps: scalar(int, "environment steps before learning starts",
                         ge=0, le=10_000_000) = 1_000
    buffer_size: structural(int, "replay buffer capacity (transitions)",
                            ge=1, le=10_000_000) = 50_000
    replay_batch_size: structural(int, "transitions per gradient step", ge=1, le=65_536) = 256
    num_envs: structural(int, "parallel environments per sample", ge=1, le=65_536) = 1
    rollout_length: structural(int, "environment steps per env between training phases",
                               ge=1, le=1_000_000) = 1
    train_epochs: structural(int, "gradient steps per training phase", ge=1, le=10_000) = 1
    normalize_observations: structural(bool, "running mean/std observation normalization "
                                             "(the replay buffer keeps raw observations; "
                                             "batches are normalized when sampled)") = False
    actor_layer_sizes: layer_sizes("hidden layer widths of the actor MLP") = network_field(
        "network.actor.layer_sizes", [256, 256])
    critic_layer_sizes: layer_sizes("hidden layer widths of each Q critic") = network_field(
        "network.critic.layer_sizes", [256, 256])
    activation: activation() = network_field("network.activation", "relu")
    actor_activation: network_activation("actor") = network_field(
        "network.actor.activation", "same")
    critic_activation: network_activation("Q critics") = network_field(
        "network.critic.activation", "same")
    actor_layer_norm: layer_norm("actor") = network_field("network.actor.layer_norm", False)
    critic_layer_norm: layer_norm("Q critics") = network_field("network.critic.layer_norm",
                                                               False)

    def footprint(self, env: EnvInfo) -> Footprint:
        """The actor (mean and log-std heads), twin critics on observation and action, and
        their targets; a transition stores two observations, the action, reward and done."""
        actor = network_size(self.network("actor"), env, 2 * env.action_size)
        critic = network_size(self.network("critic"), env, 1, extra_inputs=env.action_size)
        return replay_footprint(self, actor.params + 2 * critic.params,
                                actor.activations + 2 * critic.activations,
                                item_floats=2 * env.obs_size + env.action_size + 2,
                                learner_floats=actor.params * 3 + 2 * critic.params * 4)
