"""The persistent compilation cache is shared across sweeps: a second sweep of the same
structure (another name, seed and scalar ranges) compiles nothing new, it loads every program
the first sweep wrote to the cache (issue 13, item 2).

Each exec runs in its own process (a fresh JAX, as a user's second sweep would be) with its own
cache directory, not the tests' shared one. The check is on the cache's files, not on times, so
a loaded machine cannot make it flaky.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.subprocess  # every test runs hyperlax plan and exec

MANIFEST = """\
[sweep]
name = "{name}"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 2
mode = "batched"
batch_size = 2
seed = {seed}
total_timesteps = 128
num_evaluations = 2
eval_episodes = 2

[fixed]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [8]
"network.critic.layer_sizes" = [8]

[space]
actor_lr = {{ dist = "log_uniform", low = {low}, high = {high} }}
gamma = {{ dist = "uniform", low = {gamma_low}, high = 0.999 }}
"""


def hyperlax(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("HYPERLAX_COMPILE_CACHE", None)  # only --compile-cache says where
    return subprocess.run([sys.executable, "-m", "hyperlax", *args, "--compile-cache", str(cache)]
                          if args[0] == "exec" else [sys.executable, "-m", "hyperlax", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def cache_entries(cache: Path) -> set[str]:
    """The compiled programs in a JAX cache directory (each entry's ``-atime`` companion,
    rewritten on every hit, is not an entry)."""
    return {p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith("-atime")}


def run_sweep(tmp: Path, cache: Path, **fields) -> Path:
    manifest = tmp / f"{fields['name']}.toml"
    manifest.write_text(MANIFEST.format(**fields))
    plan = tmp / f"{fields['name']}.msgpack"
    planned = hyperlax("plan", str(manifest), "-o", str(plan), cache=cache)
    assert planned.returncode == 0, planned.stderr
    out = tmp / f"{fields['name']}-out"
    ran = hyperlax("exec", str(plan), "--output-root", str(out), "-q", cache=cache)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return out


def returns(root: Path) -> np.ndarray:
    files = sorted(root.rglob("curves.npz"))
    assert files
    return np.concatenate([np.load(f)["returns"] for f in files])


def test_second_sweep_of_same_structure_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = run_sweep(tmp_path, cache, name="first", seed=1, low=1e-4, high=1e-3, gamma_low=0.9)
    after_first = cache_entries(cache)
    assert after_first, "the first sweep wrote nothing to the compile cache"

    second = run_sweep(tmp_path, cache, name="second", seed=7, low=3e-3, high=1e-2,
                       gamma_low=0.95)
    assert cache_entries(cache) == after_first, (
        "the second sweep compiled programs the first had cached: "
        f"{sorted(cache_entries(cache) - after_first)}")
    # the sweeps did differ (other seeds and hyperparameters give other results)
    assert not np.array_equal(returns(first), returns(second))


def test_other_structure_is_a_cache_miss(tmp_path):
    """The check above can fail: a sweep of another structure does add entries."""
    cache = tmp_path / "cache"
    run_sweep(tmp_path, cache, name="first", seed=1, low=1e-4, high=1e-3, gamma_low=0.9)
    after_first = cache_entries(cache)
    other = MANIFEST.replace("rollout_length = 16", "rollout_length = 8")
    manifest = tmp_path / "other.toml"
    manifest.write_text(other.format(name="other", seed=1, low=1e-4, high=1e-3, gamma_low=0.9))
    plan = tmp_path / "other.msgpack"
    assert hyperlax("plan", str(manifest), "-o", str(plan), cache=cache).returncode == 0
    ran = hyperlax("exec", str(plan), "--output-root", str(tmp_path / "other-out"), "-q",
                   cache=cache)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert cache_entries(cache) - after_first
