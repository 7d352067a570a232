"""The base of every algorithm's config Struct: the rules all algorithms share. JAX-free."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class AlgorithmConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One configuration of an algorithm: every hyperparameter a field (see ``declare``).

    Subclasses set ``algorithm`` (its name in recipes) and ``action_spaces`` (what it can act
    in), and declare ``num_envs`` and ``rollout_length``: one training iteration steps every env
    ``rollout_length`` times."""

    algorithm: ClassVar[str]
    action_spaces: ClassVar[tuple[str, ...]]

    num_envs: Any
    rollout_length: Any

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
    """DQN and SAC: a replay buffer sampled in batches."""

    buffer_size: Any
    replay_batch_size: Any

    def cross_field_problems(self) -> list[str]:
        if self.replay_batch_size > self.buffer_size:
            return [f"replay_batch_size = {self.replay_batch_size} exceeds buffer_size = "
                    f"{self.buffer_size}"]
        return []
