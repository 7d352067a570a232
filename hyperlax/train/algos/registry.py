"""Every algorithm's training program, by the name its recipes use: the runtime's one line per
algorithm (the compiler's is ``hyperlax.hyperparams.CONFIGS``). Each module names the config
Struct it trains (``CONFIG``), and so its algorithm."""

from __future__ import annotations

from types import ModuleType
from typing import Callable

from hyperlax.train.algos import dqn, ppo, pqn, sac

MODULES: dict[str, ModuleType] = {m.CONFIG.algorithm: m for m in (ppo, dqn, sac, pqn)}


def _module(algorithm: str) -> ModuleType:
    if algorithm not in MODULES:  # the plan decoder already refused unknown algorithms
        raise ValueError(f"unknown algorithm {algorithm!r}")
    return MODULES[algorithm]


def get_make_program(algorithm: str) -> Callable:
    return _module(algorithm).make_program
