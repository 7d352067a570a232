"""PQN's hyperparameters, its cost model and its quick pins (the runtime's
``hyperlax.train.algos.pqn`` trains with them)."""

from __future__ import annotations

from typing import Any, ClassVar

from hyperlax.environments import EnvInfo
from hyperlax.hyperparams.config import AlgorithmConfig
from hyperlax.hyperparams.declare import (activation, layer_norm, layer_sizes, network_activation,
                                          network_field, scalar, structural, torso)
from hyperlax.hyperparams.footprint import FLOAT, Footprint, network_size


class PQNConfig(AlgorithmConfig):
    """Parallelised Q-Network (Gallici et al. 2024, "Simplifying Deep Temporal Difference
    Learning"). The defaults are purejaxql's CartPole settings (its
    purejaxql/config/alg/pqn_cartpole.yaml); purejaxql's MinAtar settings use
    q_lambda = 0.65 (the ``pqn_minatar`` recipe)."""

    algorithm: ClassVar[str] = "pqn"
    action_spaces: ClassVar[tuple[str, ...]] = ("discrete",)
    # As PPO's quick pins: 4 env steps per update, one epoch of two minibatches.
    quick_pins: ClassVar[dict[str, Any]] = {"num_envs": 4, "rollout_length": 1,
                                            "update_epochs": 1, "num_minibatches": 2}

    learning_rate: scalar(float, "RAdam learning rate of the Q-network", gt=0.0) = 1e-4
    gamma: scalar(float, "discount factor", gt=0.0, le=1.0) = 0.99
    q_lambda: scalar(float, "lambda of the Q(lambda) returns (0: one-step Q-learning "
                            "targets)", ge=0.0, le=1.0) = 0.95
    epsilon_start: scalar(float, "exploration epsilon at the start of training",
                          ge=0.0, le=1.0) = 1.0
    epsilon_end: scalar(float, "exploration epsilon at the end of the decay",
                        ge=0.0, le=1.0) = 0.2
    epsilon_decay_fraction: scalar(float, "fraction of training over which epsilon decays",
                                   gt=0.0, le=1.0) = 0.2
    max_grad_norm: scalar(float, "global gradient-norm clip", gt=0.0) = 10.0
    reward_scale: scalar(float, "training rewards are multiplied by it; evaluation returns "
                                "stay the env's own", gt=0.0) = 0.1
    # A flag used through jnp.where in the schedule, so data: sampling it costs no compile.
    decay_learning_rate: scalar(bool, "decay the learning rate linearly to 0 over training's "
                                      "gradient steps") = True
    num_envs: structural(int, "parallel environments per sample", ge=1, le=65_536) = 32
    rollout_length: structural(int, "environment steps per env between updates",
                               ge=1, le=1_000_000) = 64
    update_epochs: structural(int, "passes over each rollout", ge=1, le=1_000) = 4
    num_minibatches: structural(int, "minibatches per epoch", ge=1, le=1_000_000) = 16
    q_layer_sizes: layer_sizes("hidden layer widths of the Q-network") = network_field(
        "network.q.layer_sizes", [256, 256])
    activation: activation() = network_field("network.activation", "relu")
    q_activation: network_activation("Q-network") = network_field("network.q.activation",
                                                                  "same")
    # PQN's stabiliser in place of a target network: on by default, unlike DQN's.
    q_layer_norm: layer_norm("Q-network") = network_field("network.q.layer_norm", True)
    torso: torso("Q-network") = network_field("network.torso", "mlp")

    def cross_field_problems(self) -> list[str]:
        batch = self.num_envs * self.rollout_length
        if batch % self.num_minibatches:
            return [f"num_envs x rollout_length = {self.num_envs} x {self.rollout_length} = "
                    f"{batch} is not divisible by num_minibatches = {self.num_minibatches}"]
        return []

    def footprint(self, env: EnvInfo) -> Footprint:
        """The Q-network alone (no target, no replay); the rollout (observation, action,
        reward, done, bootstrap value, max Q, target), its shuffled copy and its minibatches;
        the activations of one minibatch; ``update_epochs x num_minibatches`` gradient steps.
        A checkpoint keeps the parameters and their two RAdam moments."""
        q = network_size(self.network("q"), env, env.action_size)
        per_update = self.steps_per_update()
        rollout = per_update * (env.obs_size + 6) * FLOAT * 3
        activations = (per_update // self.num_minibatches) * q.activations * FLOAT * 3
        return Footprint(params=q.params, param_copies=4, data_bytes=rollout + activations,
                         gradient_steps_per_update=self.update_epochs * self.num_minibatches,
                         learner_floats=q.params * 3)
