"""DQN's hyperparameters, its cost model and its quick pins (the runtime's
``hyperlax.train.algos.dqn`` trains with them)."""

from __future__ import annotations

from typing import Any, ClassVar

from hyperlax.environments import EnvInfo
from hyperlax.hyperparams.config import OffPolicyConfig
from hyperlax.hyperparams.declare import (activation, layer_norm, layer_sizes, network_activation,
                                          network_field, scalar, structural, torso)
from hyperlax.hyperparams.footprint import Footprint, network_size, replay_footprint


class DQNConfig(OffPolicyConfig):
    algorithm: ClassVar[str] = "dqn"
    action_spaces: ClassVar[tuple[str, ...]] = ("discrete",)
    # The original's quick preset (see PPOConfig.quick_pins); warmup_steps is its warm-up of 2
    # rollout steps, counted over all 4 envs.
    quick_pins: ClassVar[dict[str, Any]] = {"num_envs": 4, "rollout_length": 1,
                                            "train_epochs": 1, "buffer_size": 100,
                                            "replay_batch_size": 2, "warmup_steps": 8}

    learning_rate: scalar(float, "Adam learning rate of the Q-network", gt=0.0) = 5e-4
    gamma: scalar(float, "discount factor", gt=0.0, le=1.0) = 0.99
    tau: scalar(float, "target update coefficient (1.0: hard copy)", gt=0.0, le=1.0) = 1.0
    epsilon_start: scalar(float, "exploration epsilon at the start of training",
                          ge=0.0, le=1.0) = 1.0
    epsilon_end: scalar(float, "exploration epsilon at the end of the decay",
                        ge=0.0, le=1.0) = 0.05
    epsilon_decay_fraction: scalar(float, "fraction of training over which epsilon decays",
                                   gt=0.0, le=1.0) = 0.5
    max_grad_norm: scalar(float, "global gradient-norm clip", gt=0.0) = 10.0
    huber_delta: scalar(float, "Huber loss delta", gt=0.0) = 1.0
    # 0, not infinity, means off: a manifest's value must be finite.
    max_abs_reward: scalar(float, "clip training rewards to [-max_abs_reward, max_abs_reward] "
                                  "(0: no clipping); evaluation returns stay unclipped",
                           ge=0.0) = 0.0
    # Used through jnp.where on the target's action index, so data: no compile.
    double_q: scalar(bool, "double Q-learning targets: the online net picks the next action, "
                           "the target net values it") = True
    # Compared with traced counters only, so data: sampling them costs no compile.
    warmup_steps: scalar(int, "environment steps before learning starts",
                         ge=0, le=10_000_000) = 1_000
    target_update_period: scalar(int, "gradient steps between target-network updates",
                                 ge=1, le=1_000_000) = 250
    buffer_size: structural(int, "replay buffer capacity (transitions)",
                            ge=1, le=10_000_000) = 10_000
    replay_batch_size: structural(int, "transitions per gradient step", ge=1, le=65_536) = 64
    num_envs: structural(int, "parallel environments per sample", ge=1, le=65_536) = 4
    rollout_length: structural(int, "environment steps per env between training phases",
                               ge=1, le=1_000_000) = 4
    train_epochs: structural(int, "gradient steps per training phase", ge=1, le=10_000) = 4
    dueling: structural(bool, "dueling head: Q = V + A - mean(A) from a value and an "
                              "advantage head on the hidden layers") = False
    q_layer_sizes: layer_sizes("hidden layer widths of the Q-network") = network_field(
        "network.q.layer_sizes", [64, 64])
    activation: activation() = network_field("network.activation", "relu")
    q_activation: network_activation("Q-network") = network_field("network.q.activation",
                                                                  "same")
    q_layer_norm: layer_norm("Q-network") = network_field("network.q.layer_norm", False)
    torso: torso("Q-network") = network_field("network.torso", "mlp")

    def footprint(self, env: EnvInfo) -> Footprint:
        """The Q-network (a dueling one has a value head beside its advantages) and its
        target; a transition stores two observations, the action, reward and done."""
        q = network_size(self.network("q"), env, env.action_size, value_head=self.dueling)
        return replay_footprint(self, q.params, q.activations,
                                item_floats=2 * env.obs_size + 3, learner_floats=q.params * 4)
