"""The base of every algorithm's config Struct: the rules all algorithms share. JAX-free."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import msgspec

from hyperlax.hyperparams.declare import resolve_activation


# MinAtar's networks (Young & Tian 2019; MinAtar's examples/dqn.py): one 3x3 convolution,
# 16 channels, stride 1, no padding, relu, then the fully connected layers. Here, JAX-free, so
# that the compiler's cost estimate can size the torso too.
CNN_FEATURES, CNN_KERNEL = 16, (3, 3)


def cnn_output_size(obs_shape: tuple[int, ...]) -> int:
    """Features the convolutional torso hands to the hidden layers (no padding)."""
    height, width, _ = obs_shape
    return (height - CNN_KERNEL[0] + 1) * (width - CNN_KERNEL[1] + 1) * CNN_FEATURES


class NetworkShape(NamedTuple):
    """One network's structural values, resolved (hashable: a piece of programs' specs)."""

    layer_sizes: tuple[int, ...]
    activation: str               # "same" already replaced by network.activation
    layer_norm: bool
    cnn: bool                     # starts with the convolutional torso (image observations)
    gru: int = 0                  # starts with a GRU cell of this many units (0: none)


class AlgorithmConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One configuration of an algorithm: every hyperparameter a field (see ``declare``).

    Subclasses set ``algorithm`` (its name in recipes), ``action_spaces`` (what it can act
    in) and ``quick_pins`` (the structural values of the seed front end's quick run), declare
    ``num_envs`` and ``rollout_length`` (one training iteration steps every env
    ``rollout_length`` times), and define ``footprint(env) -> footprint.Footprint``: the
    algorithm's own part of the compiler's cost estimate. Nothing outside an algorithm's
    modules knows which algorithm it handles."""

    algorithm: ClassVar[str]
    action_spaces: ClassVar[tuple[str, ...]]
    quick_pins: ClassVar[dict[str, Any]]

    num_envs: Any
    rollout_length: Any

    def network(self, name: str) -> NetworkShape:
        """The network ``name`` ("actor", "critic", "q") as the runtime builds it: its fields
        ``<name>_layer_sizes``, ``<name>_activation``, ``<name>_layer_norm`` and the
        algorithm's ``torso``, if it declares one (with "gru", ``gru_hidden_size``)."""
        torso = getattr(self, "torso", "mlp")
        return NetworkShape(tuple(getattr(self, f"{name}_layer_sizes")),
                            resolve_activation(getattr(self, f"{name}_activation"),
                                               getattr(self, "activation")),
                            bool(getattr(self, f"{name}_layer_norm")),
                            torso == "cnn",
                            getattr(self, "gru_hidden_size") if torso == "gru" else 0)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Any:
        """The config with ``values`` (manifest names) set and the rest at their defaults. The
        values must already be valid: the compiler checked them against ``declarations``."""
        return msgspec.convert(values, cls)

    def steps_per_update(self) -> int:
        """Environment steps one training iteration consumes."""
        return self.num_envs * self.rollout_length

    def cross_field_problems(self) -> list[str]:
        """Rules that tie several hyperparameters of one configuration together; each problem
        is a sentence. The compiler refuses a sample with any; the runtime asserts none."""
        return []


class OffPolicyConfig(AlgorithmConfig):
    """DQN and SAC: a replay buffer sampled in batches, ``train_epochs`` gradient steps per
    training iteration (``footprint.replay_footprint`` counts them)."""

    buffer_size: Any
    replay_batch_size: Any

    def cross_field_problems(self) -> list[str]:
        if self.replay_batch_size > self.buffer_size:
            return [f"replay_batch_size = {self.replay_batch_size} exceeds buffer_size = "
                    f"{self.buffer_size}"]
        return []
