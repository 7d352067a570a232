"""Every algorithm's hyperparameters, each declared once as a field of a config Struct.
JAX-free: the compiler validates and groups with these, the runtime trains with them."""

from __future__ import annotations

from hyperlax.hyperparams.config import AlgorithmConfig
from hyperlax.hyperparams.declare import HyperParam, declarations
from hyperlax.hyperparams.dqn import DQNConfig
from hyperlax.hyperparams.ppo import PPOConfig
from hyperlax.hyperparams.pqn import PQNConfig
from hyperlax.hyperparams.sac import SACConfig

CONFIGS: dict[str, type[AlgorithmConfig]] = {c.algorithm: c for c in (PPOConfig, DQNConfig,
                                                                         SACConfig, PQNConfig)}
ALGORITHMS: dict[str, dict[str, HyperParam]] = {a: declarations(c) for a, c in CONFIGS.items()}

__all__ = ["ALGORITHMS", "CONFIGS", "AlgorithmConfig", "DQNConfig", "HyperParam", "PPOConfig",
           "PQNConfig", "SACConfig", "declarations"]
