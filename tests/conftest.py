from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# Tests never write to the user's compile cache; they share one of their own, so the many
# tests that train the same tiny program compile it once per machine.
COMPILE_CACHE = ROOT / ".pytest_cache" / "jax"
os.environ.setdefault("HYPERLAX_COMPILE_CACHE", str(COMPILE_CACHE))


def pytest_configure(config):
    from hyperlax.runtime.executor import enable_compile_cache

    enable_compile_cache(COMPILE_CACHE)


@pytest.fixture
def write_manifest(tmp_path):
    def write(text: str, name: str = "sweep.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


MINIMAL = """\
[sweep]
name = "t"
recipe = "ppo_mlp_fixed_net"
env = "gymnax.pendulum"
num_samples = {n}
mode = "{mode}"
batch_size = {batch}
seed = {seed}
total_timesteps = 100_000
"""


# A tiny PPO recipe (test_exec's tiny plan: same structure and budget, so the compile cache
# serves it) that the seed flag --algo-and-network-config or a search manifest can name.
TINY_RECIPE = """\
algorithm = "ppo"
description = "tiny PPO for tests"

[settings]
total_timesteps = 128
num_evaluations = 2
eval_episodes = 2

[defaults]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [16]
"network.critic.layer_sizes" = [16]
"network.activation" = "tanh"

[space]
actor_lr = { dist = "log_uniform", low = 1e-4, high = 1e-2 }
critic_lr = { dist = "log_uniform", low = 1e-4, high = 1e-2 }
"""
