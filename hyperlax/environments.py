"""Environments the compiler accepts, with what it must know about them without JAX: facts
copied from gymnax and Brax (tests check that they agree, Brax's when it is installed), and the
gymnax environments no agent here can train, each with the reason. Memory and meta-RL tasks
run with any algorithm, but only a recurrent policy (PPO with ``network.torso =
"gru"``) can do better than a feed-forward one's chance there; their notes say so.

Observations reach the algorithms flat and float32 (``hyperlax.train.envs`` flattens images
and one-hot encodes a discrete observation); ``obs_shape`` is the shape before flattening, kept
so that a convolutional torso can reshape, and ``obs_size`` its product."""

from __future__ import annotations

import difflib
import math
from typing import Literal

import msgspec

Family = Literal["classic control", "MinAtar", "bsuite", "misc", "brax"]


class EnvInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str                       # hyperlax id, as written in manifests
    backend: Literal["gymnax", "brax"]
    name: str                     # the backend's name: gymnax.make / brax.envs.get_environment
    family: Family
    action_space: Literal["discrete", "continuous"]
    max_steps_in_episode: int
    obs_shape: tuple[int, ...]    # before flattening (a discrete observation: its one-hot)
    action_size: int              # discrete: number of actions; continuous: action dimensions
    action_bounds: tuple[float, float] | None = None  # continuous: (low, high), every dimension
    note: str = ""                # what a user should know, shown in docs/environments.md

    @property
    def obs_size(self) -> int:
        """Flat observation size: what the algorithms' networks take."""
        return math.prod(self.obs_shape)

    @property
    def extra(self) -> str | None:
        """The pip extra the runtime needs for this env, if any."""
        return "brax" if self.backend == "brax" else None


class Unsupported(msgspec.Struct, frozen=True):
    id: str
    name: str                     # gymnax name
    family: Family
    reason: str                   # completes "<id> ..." in the compiler's error


def _gymnax(id: str, name: str, family: Family, actions: Literal["discrete", "continuous"],
            max_steps: int, obs_shape: tuple[int, ...], action_size: int,
            bounds: tuple[float, float] | None = None, note: str = "") -> EnvInfo:
    return EnvInfo(id=f"gymnax.{id}", backend="gymnax", name=name, family=family,
                   action_space=actions, max_steps_in_episode=max_steps, obs_shape=obs_shape,
                   action_size=action_size, action_bounds=bounds, note=note)


# Brax has no time limit of its own: the runtime's wrapper truncates at Brax's default episode
# length (brax.envs.create's episode_length), as Brax's own training does.
BRAX_EPISODE_LENGTH = 1000


_BRAX_EXTRA = "needs the brax extra: pip install 'hyperlax[brax]'"


def _brax(name: str, obs_size: int, action_size: int, bounds: tuple[float, float],
          note: str = "") -> EnvInfo:
    return EnvInfo(id=f"brax.{name}", backend="brax", name=name, family="brax",
                   action_space="continuous", max_steps_in_episode=BRAX_EPISODE_LENGTH,
                   obs_shape=(obs_size,), action_size=action_size, action_bounds=bounds,
                   note=f"{_BRAX_EXTRA}{'; ' + note if note else ''}")


_MINATAR = "10x10 image with one channel per object kind"
_F32_TENTH = (-0.10000000149011612, 0.10000000149011612)  # +-0.1 as gymnax's float32 holds it
_RECURRENT = "needs memory: PPO with network.torso = 'gru' (recipe ppo_gru)"
_META = (f"{_RECURRENT}; a meta-RL task whose {{what}} is drawn anew each episode and not "
         "observed: the observation carries only the last action and reward")

ENVS: dict[str, EnvInfo] = {
    e.id: e
    for e in (
        _gymnax("cartpole", "CartPole-v1", "classic control", "discrete", 500, (4,), 2),
        _gymnax("acrobot", "Acrobot-v1", "classic control", "discrete", 500, (6,), 3),
        _gymnax("mountain_car", "MountainCar-v0", "classic control", "discrete", 200, (2,), 3),
        _gymnax("pendulum", "Pendulum-v1", "classic control", "continuous", 200, (3,), 1,
                (-2.0, 2.0)),
        _gymnax("mountain_car_continuous", "MountainCarContinuous-v0", "classic control",
                "continuous", 999, (2,), 1, (-1.0, 1.0)),
        _gymnax("asterix_minatar", "Asterix-MinAtar", "MinAtar", "discrete", 1000, (10, 10, 4),
                5, note=_MINATAR),
        _gymnax("breakout_minatar", "Breakout-MinAtar", "MinAtar", "discrete", 1000,
                (10, 10, 4), 3, note=_MINATAR),
        _gymnax("freeway_minatar", "Freeway-MinAtar", "MinAtar", "discrete", 2500, (10, 10, 7),
                3, note=_MINATAR),
        _gymnax("seaquest_minatar", "Seaquest-MinAtar", "MinAtar", "discrete", 1000,
                (10, 10, 10), 6, note=_MINATAR),
        _gymnax("space_invaders_minatar", "SpaceInvaders-MinAtar", "MinAtar", "discrete", 1000,
                (10, 10, 6), 4, note=_MINATAR),
        _gymnax("catch", "Catch-bsuite", "bsuite", "discrete", 1000, (10, 5), 3),
        _gymnax("deep_sea", "DeepSea-bsuite", "bsuite", "discrete", 8, (8, 8), 2),
        _gymnax("umbrella_chain", "UmbrellaChain-bsuite", "bsuite", "discrete", 100, (3,), 2),
        _gymnax("discounting_chain", "DiscountingChain-bsuite", "bsuite", "discrete", 100,
                (2,), 5),
        _gymnax("four_rooms", "FourRooms-misc", "misc", "discrete", 500, (4,), 4),
        _gymnax("frozen_lake", "FrozenLake-misc", "misc", "discrete", 100, (16,), 4,
                note="4x4 slippery map; the position (a discrete observation) is one-hot "
                     "encoded"),
        _gymnax("pong", "Pong-misc", "misc", "discrete", 1000, (30, 40, 3), 3,
                note="30x40 image, 3 channels"),
        _gymnax("reacher", "Reacher-misc", "misc", "continuous", 100, (8,), 2, (-1.0, 1.0)),
        _gymnax("swimmer", "Swimmer-misc", "misc", "continuous", 500, (16,), 2, (-1.0, 1.0)),
        _gymnax("memory_chain", "MemoryChain-bsuite", "bsuite", "discrete", 1000, (3,), 2,
                note=f"{_RECURRENT}; the context to recall is shown only at the first step, "
                     "so a feed-forward policy is at chance (return 0)"),
        _gymnax("meta_maze", "MetaMaze-misc", "misc", "discrete", 200, (15,), 4,
                note=_META.format(what="goal")),
        _gymnax("point_robot", "PointRobot-misc", "misc", "continuous", 100, (6,), 2,
                _F32_TENTH, note=_META.format(what="goal")),
        _gymnax("bernoulli_bandit", "BernoulliBandit-misc", "misc", "discrete", 100, (4,), 2,
                note=_META.format(what="best arm")),
        _gymnax("gaussian_bandit", "GaussianBandit-misc", "misc", "discrete", 100, (4,), 2,
                note=_META.format(what="second arm's mean")),
        # Brax's eleven (brax.envs, as the original system offers them)
        _brax("ant", 27, 8, (-1.0, 1.0)),
        _brax("halfcheetah", 17, 6, (-1.0, 1.0)),
        _brax("hopper", 11, 3, (-1.0, 1.0)),
        _brax("humanoid", 244, 17, (-0.4, 0.4)),
        _brax("humanoidstandup", 244, 17, (-0.4, 0.4)),
        _brax("inverted_pendulum", 4, 1, (-3.0, 3.0)),
        _brax("inverted_double_pendulum", 8, 1, (-1.0, 1.0)),
        _brax("pusher", 23, 7, (-2.0, 2.0)),
        _brax("reacher", 11, 2, (-1.0, 1.0)),
        _brax("swimmer", 8, 2, (-1.0, 1.0),
              note="Brax 0.14.2's fluid model (Swimmer's viscosity) calls jnp.clip(a_min=...), "
                   "a keyword JAX 0.10 removed; hyperlax lets that call through as "
                   "clip(min=...), the same clip (hyperlax/train/envs.py)"),
        _brax("walker2d", 17, 6, (-1.0, 1.0)),
    )
}

UNSUPPORTED: dict[str, Unsupported] = {
    u.id: u
    for u in (
        Unsupported("gymnax.simple_bandit", "SimpleBandit-bsuite", "bsuite",
                    "cannot be learned: every episode is one pull and gymnax reshuffles the "
                    "arms' rewards at every reset, so no policy beats chance"),
        Unsupported("gymnax.mnist_bandit", "MNISTBandit-bsuite", "bsuite",
                    "is not supported: gymnax downloads MNIST from the internet (into "
                    "/tmp/mnist) when the env is made, so a run would depend on the network"),
    )
}


def unknown_env_message(env_id: str) -> str:
    """Why ``env_id``, not in ENVS, cannot be used: an unsupported env's reason, or 'unknown'
    with the closest id."""
    if env_id in UNSUPPORTED:
        return f"{env_id} {UNSUPPORTED[env_id].reason}; see docs/environments.md"
    close = difflib.get_close_matches(env_id, sorted(ENVS), n=1, cutoff=0.6)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown env {env_id!r}{suggestion}; one of {', '.join(ENVS)}"


def env_dirname(env_id: str) -> str:
    """Directory name of an env in the output layout: ``gymnax.pendulum`` -> ``gymnax_pendulum``."""
    return env_id.replace(".", "_")
