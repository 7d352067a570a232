"""PPO's hyperparameters, its cost model and its quick pins (the runtime's
``hyperlax.train.algos.ppo`` trains with them)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from hyperlax.environments import EnvInfo
from hyperlax.hyperparams.config import AlgorithmConfig
from hyperlax.hyperparams.declare import (activation, layer_norm, layer_sizes, network_activation,
                                          network_field, scalar, structural, torso)
from hyperlax.hyperparams.footprint import FLOAT, Footprint, network_size


class PPOConfig(AlgorithmConfig):
    algorithm: ClassVar[str] = "ppo"
    action_spaces: ClassVar[tuple[str, ...]] = ("discrete", "continuous")
    # The original's quick preset set these structural defaults (its Tunable values), so that
    # 40 env steps make whole updates; the seed front end pins them in [fixed], so a quick
    # sweep compiles few programs.
    quick_pins: ClassVar[dict[str, Any]] = {"num_envs": 4, "rollout_length": 1,
                                            "update_epochs": 1, "num_minibatches": 2}

    actor_lr: scalar(float, "Adam learning rate of the actor", gt=0.0) = 3e-4
    critic_lr: scalar(float, "Adam learning rate of the critic", gt=0.0) = 3e-4
    gamma: scalar(float, "discount factor", gt=0.0, le=1.0) = 0.99
    gae_lambda: scalar(float, "GAE lambda", ge=0.0, le=1.0) = 0.95
    clip_eps: scalar(float, "PPO clipping range of the probability ratio", gt=0.0) = 0.2
    ent_coef: scalar(float, "entropy bonus coefficient", ge=0.0) = 0.0
    vf_coef: scalar(float, "value-loss coefficient", ge=0.0) = 0.5
    max_grad_norm: scalar(float, "gradient clip: the global norm's bound (grad_clip_mode "
                                 "global_norm), or every element's absolute bound "
                                 "(per_element)", gt=0.0) = 0.5
    # Flags used through jnp.where, so data: sampling them costs no compile.
    standardize_advantages: scalar(bool, "standardize advantages per minibatch "
                                         "(zero mean, unit std)") = True
    decay_learning_rates: scalar(bool, "decay both learning rates linearly to 0 over "
                                       "training") = False
    clip_value_loss: scalar(bool, "clip the value loss as PPO's reference code does: the "
                                  "larger of the squared errors of the new value and of the "
                                  "old value moved by at most clip_eps") = False
    grad_clip_mode: structural(Literal["global_norm", "per_element"],
                               "how gradients are clipped before Adam: by their global norm "
                               "(optax.clip_by_global_norm) or element by element "
                               "(optax.clip)") = "global_norm"
    num_envs: structural(int, "parallel environments per sample", ge=1, le=65_536) = 8
    rollout_length: structural(int, "environment steps per env between updates",
                               ge=1, le=1_000_000) = 64
    update_epochs: structural(int, "passes over each rollout", ge=1, le=1_000) = 4
    num_minibatches: structural(int, "minibatches per epoch", ge=1, le=1_000_000) = 4
    normalize_observations: structural(bool, "running mean/std observation "
                                             "normalization") = True
    actor_layer_sizes: layer_sizes("hidden layer widths of the actor MLP") = network_field(
        "network.actor.layer_sizes", [64, 64])
    critic_layer_sizes: layer_sizes("hidden layer widths of the critic MLP") = network_field(
        "network.critic.layer_sizes", [64, 64])
    activation: activation() = network_field("network.activation", "tanh")
    actor_activation: network_activation("actor") = network_field(
        "network.actor.activation", "same")
    critic_activation: network_activation("critic") = network_field(
        "network.critic.activation", "same")
    actor_layer_norm: layer_norm("actor") = network_field("network.actor.layer_norm", False)
    critic_layer_norm: layer_norm("critic") = network_field("network.critic.layer_norm", False)
    torso: torso("actor and critic", gru=True) = network_field("network.torso", "mlp")
    # Recurrent PPO (purejaxrl's ppo_rnn.py): both shape the compiled program (the hidden
    # state's width; the sequences' length and count), so structural. Added in 0.3.0 with
    # defaults that change nothing, so plans leave them out at their defaults.
    gru_hidden_size: structural(int, "units of the GRU cell of each network when "
                                     "network.torso is 'gru' (unused otherwise)",
                                since="0.3.0", ge=1, le=65_536) = network_field(
        "network.gru_hidden_size", 128)
    sequence_length: structural(int, "network.torso 'gru' only: the rollout is cut into "
                                     "sequences of this many steps, each replayed in the update "
                                     "from the hidden state the rollout had at its first step, "
                                     "and minibatches are whole sequences; 0: the whole rollout "
                                     "is one sequence per env, as in purejaxrl's recurrent PPO",
                                since="0.3.0", ge=0, le=1_000_000) = 0

    def cross_field_problems(self) -> list[str]:
        if self.torso == "gru":
            return self._sequence_problems()
        if self.sequence_length:
            return [f"sequence_length = {self.sequence_length} needs network.torso 'gru' "
                    f"(it is {self.torso!r}); leave it at 0"]
        batch = self.num_envs * self.rollout_length
        if batch % self.num_minibatches:
            return [f"num_envs x rollout_length = {self.num_envs} x {self.rollout_length} = "
                    f"{batch} is not divisible by num_minibatches = {self.num_minibatches}"]
        return []

    def sequence_shape(self) -> tuple[int, int]:
        """(steps per sequence, sequences per rollout) of the GRU torso's update."""
        length = self.sequence_length or self.rollout_length
        return length, self.num_envs * (self.rollout_length // length)

    def _sequence_problems(self) -> list[str]:
        """Minibatches of the GRU torso are whole sequences (split along envs and sequence
        starts, never inside a sequence)."""
        length, count = self.sequence_shape()
        if self.rollout_length % length:
            return [f"rollout_length = {self.rollout_length} is not divisible by "
                    f"sequence_length = {length}"]
        if count % self.num_minibatches:
            return [f"the GRU torso's {count} sequences (num_envs x rollout_length / "
                    f"sequence_length = {self.num_envs} x {self.rollout_length} / {length}) "
                    f"are not divisible by num_minibatches = {self.num_minibatches}"]
        return []

    def footprint(self, env: EnvInfo) -> Footprint:
        """Actor and critic; the rollout, its shuffled copy and its minibatches; the
        activations of one minibatch; ``update_epochs x num_minibatches`` gradient steps. A
        checkpoint keeps the parameters with their Adam moments and the observation
        statistics."""
        actor = network_size(self.network("actor"), env, env.action_size)
        critic = network_size(self.network("critic"), env, 1)
        per_update = self.steps_per_update()
        rollout = per_update * (env.obs_size + env.action_size + 6) * FLOAT * 3
        minibatch = per_update // self.num_minibatches
        activations = minibatch * (actor.activations + critic.activations) * FLOAT * 3
        params = actor.params + critic.params
        # the GRU torso keeps, per step, each network's hidden state in the rollout too
        rollout += per_update * (actor.hidden + critic.hidden) * FLOAT
        # four copies of the parameters: themselves, Adam's two moments, the gradients
        return Footprint(params=params, param_copies=4, data_bytes=rollout + activations,
                         gradient_steps_per_update=self.update_epochs * self.num_minibatches,
                         learner_floats=params * 3 + 2 * env.obs_size)
