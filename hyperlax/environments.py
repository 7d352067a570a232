"""Environments the compiler accepts, with what it must know about them without JAX: facts
copied from gymnax (a test checks that they agree)."""

from __future__ import annotations

from typing import Literal

import msgspec


class EnvInfo(msgspec.Struct, frozen=True):
    id: str                       # hyperlax id, as written in manifests
    gymnax_name: str              # name passed to gymnax.make
    action_space: Literal["discrete", "continuous"]
    max_steps_in_episode: int
    obs_size: int                 # flat observation size
    action_size: int              # discrete: number of actions; continuous: action dimensions


ENVS: dict[str, EnvInfo] = {
    e.id: e
    for e in (
        EnvInfo("gymnax.cartpole", "CartPole-v1", "discrete", 500, 4, 2),
        EnvInfo("gymnax.acrobot", "Acrobot-v1", "discrete", 500, 6, 3),
        EnvInfo("gymnax.mountain_car", "MountainCar-v0", "discrete", 200, 2, 3),
        EnvInfo("gymnax.pendulum", "Pendulum-v1", "continuous", 200, 3, 1),
        EnvInfo("gymnax.mountain_car_continuous", "MountainCarContinuous-v0", "continuous", 999,
                2, 1),
    )
}


def env_dirname(env_id: str) -> str:
    """Directory name of an env in the output layout: ``gymnax.pendulum`` -> ``gymnax_pendulum``."""
    return env_id.replace(".", "_")
