"""DQN and SAC plans execute end to end through `hyperlax exec`'s executor, in every mode,
with the same outputs, markers and compile counts as PPO."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan, plan_id
from hyperlax.exec.local_exec import execute

pytestmark = pytest.mark.slow

DQN = """\
[sweep]
name = "tiny-dqn"
recipe = "dqn_mlp_small"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = {n}
mode = "{mode}"
batch_size = {batch}
total_timesteps = 256
num_evaluations = 2
eval_episodes = 2

[fixed]
num_envs = 2
rollout_length = 4
train_epochs = 1
buffer_size = 128
replay_batch_size = 16

[space]
target_update_period = {{ dist = "categorical", values = [10, 20] }}
warmup_steps = {{ dist = "int_uniform", low = 0, high = 64 }}
"network.q.layer_sizes" = {{ dist = "categorical", values = {layers} }}
"""

SAC = """\
[sweep]
name = "tiny-sac"
recipe = "sac_mlp_small"
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = {n}
mode = "{mode}"
batch_size = {batch}
total_timesteps = 128
num_evaluations = 2
eval_episodes = 2

[fixed]
num_envs = 2
rollout_length = 4
warmup_steps = 32
buffer_size = 128
replay_batch_size = 16
"network.actor.layer_sizes" = [16]
"network.critic.layer_sizes" = [16]
"""


def run(tmp_path, template, n, mode, batch, layers="[[16]]"):
    manifest = tmp_path / f"{mode}.toml"
    manifest.write_text(template.format(n=n, mode=mode, batch=batch, layers=layers))
    plan, _ = compile_manifest(manifest)
    report = execute(plan, plan_id(plan), encode_plan(plan), tmp_path / mode)
    returns = {}
    for entry in plan.entries:
        directory = (tmp_path / mode).joinpath(*entry.path.split("/"))
        assert (directory / "success.txt").exists()
        summary = json.loads((directory / "summary.json").read_text())
        assert all(s["status"] == "ok" for s in summary["samples"])
        with np.load(directory / "curves.npz") as npz:
            for k, i in enumerate(npz["sample"]):
                returns[int(i)] = npz["returns"][k]
    return plan, report, returns


def test_dqn_sampling_warmup_and_target_period_compiles_once(tmp_path):
    """Both are compared with traced counters only, so they are data: a sweep sampling them
    (and nothing structural) is one structure and one compiled program."""
    plan, report, _ = run(tmp_path, DQN, n=4, mode="batched", batch=4)
    assert {"target_update_period", "warmup_steps"} <= set(plan.sampled)
    assert len({plan.samples[i].values["target_update_period"] for i in range(4)}) == 2
    assert len({plan.samples[i].values["warmup_steps"] for i in range(4)}) == 4
    assert len(plan.structures) == 1 and report.compiles == 1


def test_dqn_grouped_compiles_once_per_structure(tmp_path):
    plan, report, returns = run(tmp_path, DQN, n=6, mode="grouped", batch=2,
                                layers="[[16], [8]]")
    assert len(plan.structures) == 2
    assert report.compiles == 2 and report.ran == len(plan.entries)
    assert sorted(returns) == list(range(6))
    assert plan.entries[0].path.startswith("dqn_mlp_small/gymnax_cartpole/samples/batch_")


def test_dqn_batched_and_sequential_agree_per_sample(tmp_path):
    _, _, batched = run(tmp_path, DQN, n=4, mode="batched", batch=4)
    plan, report, sequential = run(tmp_path, DQN, n=4, mode="sequential", batch=1)
    assert report.compiles == len(plan.structures)
    assert plan.entries[0].path.endswith("samples/run_0000")
    for i in range(4):  # the same sample in a batch and alone: same training
        np.testing.assert_allclose(batched[i], sequential[i], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode, batch", [("batched", 3), ("sequential", 1)])
def test_sac_plans_execute(tmp_path, mode, batch):
    plan, report, returns = run(tmp_path, SAC, n=3, mode=mode, batch=batch)
    assert report.compiles == 1
    assert sorted(returns) == [0, 1, 2]
    assert all(r.shape == (1, 2) and np.all(np.isfinite(r)) for r in returns.values())
