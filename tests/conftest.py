from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# Tests never write to the user's compile cache; they share one of their own, so the many
# tests that train the same tiny program compile it once per machine.
COMPILE_CACHE = ROOT / ".pytest_cache" / "jax"
os.environ.setdefault("HYPERLAX_COMPILE_CACHE", str(COMPILE_CACHE))


def pytest_configure(config):
    from hyperlax.exec.executor import enable_compile_cache

    enable_compile_cache(COMPILE_CACHE)


# Cost tiers (markers registered in pyproject.toml). Each of these costs seconds to minutes per
# test, so each implies `slow`: `pytest -m "not slow"` (make test-fast) leaves them all out, and
# `-m "not ray"` etc. leaves out one kind. tryfirst: before -m deselects. `heavy` marks what
# takes minutes even at the tiniest budget (training on a Brax body: building its system and
# compiling its step cost 3-5 minutes on a loaded 2-core CPU); `make test` runs it, `-m "not
# heavy"` leaves it out.
SLOW_KINDS = ("subprocess", "ray", "stops", "learning", "envs", "heavy")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
            item.add_marker(pytest.mark.slow)


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
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = {n}
mode = "{mode}"
batch_size = {batch}
seed = {seed}
total_timesteps = 100_000
"""


# The tests' tiny PPO sweep: 4 envs x 16 steps, [16] networks, 2 evaluations on CartPole, two
# learning rates sampled. Every test that trains it shares one program per width (compile
# cache), so keep the structure and budget as they are; the blanks add lines to each table.
TINY_SWEEP = """\
[sweep]
name = "{name}"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = {n}
mode = "{mode}"
batch_size = {batch}
seed = {seed}
total_timesteps = 128
num_evaluations = 2
eval_episodes = 2
{sweep_extra}
[fixed]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [16]
"network.critic.layer_sizes" = [16]
{fixed_extra}
[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-2 }}
critic_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-2 }}
{space_extra}
"""


def tiny_sweep(name: str = "tiny", n: int = 2, mode: str = "batched", batch: int = 2,
               seed: int = 5, sweep_extra: str = "", fixed_extra: str = "",
               space_extra: str = "") -> str:
    """The tiny sweep's manifest text (``TINY_SWEEP``)."""
    return TINY_SWEEP.format(name=name, n=n, mode=mode, batch=batch, seed=seed,
                             sweep_extra=sweep_extra, fixed_extra=fixed_extra,
                             space_extra=space_extra)


# A tiny PPO recipe (the tiny sweep: same structure and budget, so the compile cache
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


class ReferenceRun(NamedTuple):
    """A plan written to a file and one uninterrupted plain exec of it: what a crashed, stopped,
    sharded or Ray run of the same plan must end equal to."""

    plan: Any
    plan_id: str
    plan_file: Path
    root: Path      # the uninterrupted run's output root


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> ReferenceRun:
    """The tiny sweep with 6 samples in batches of 2 (3 entries), and one plain exec of it."""
    from hyperlax.exec.local_exec import execute
    from test_exec import tiny_plan

    tmp = tmp_path_factory.mktemp("reference")
    plan, pid, data = tiny_plan(tmp, n=6, batch=2)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    execute(plan, pid, data, tmp / "reference")
    return ReferenceRun(plan, pid, plan_file, tmp / "reference")
