"""Environments the compiler accepts, with what it must know about them without JAX."""

from __future__ import annotations

from typing import Literal

import msgspec


class EnvInfo(msgspec.Struct, frozen=True):
    id: str                       # hyperlax id, as written in manifests
    gymnax_name: str              # name passed to gymnax.make
    action_space: Literal["discrete", "continuous"]
    max_steps_in_episode: int


ENVS: dict[str, EnvInfo] = {
    e.id: e
    for e in (
        EnvInfo("gymnax.cartpole", "CartPole-v1", "discrete", 500),
        EnvInfo("gymnax.acrobot", "Acrobot-v1", "discrete", 500),
        EnvInfo("gymnax.mountain_car", "MountainCar-v0", "discrete", 200),
        EnvInfo("gymnax.pendulum", "Pendulum-v1", "continuous", 200),
        EnvInfo("gymnax.mountain_car_continuous", "MountainCarContinuous-v0", "continuous", 999),
    )
}


def env_dirname(env_id: str) -> str:
    """Directory name of an env in the output layout: ``gymnax.pendulum`` -> ``gymnax_pendulum``."""
    return env_id.replace(".", "_")
