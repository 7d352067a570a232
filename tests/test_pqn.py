"""PQN: its Q(lambda) targets, its config rules, batch independence, and a tiny sweep planned
and executed through the command line, writing what every algorithm's entries write.

Every training call goes through ``train.batched``, the executor's own vmap over samples x
replicates with the plan's key rule."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.hyperparams import PQNConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.pqn import Transition, make_program, q_lambda_targets
from hyperlax.train.batched import replicate_keys
from offpolicy_helpers import (REPLICATES, BatchRuns, assert_batch_mates_do_not_change_a_sample,
                               batch_runs, configs, exec_train, to_numpy)

ENV = "gymnax.cartpole"
# 4 env steps per update, one epoch of 2 minibatches, 2 chunks of 3 updates.
SMALL = dict(num_envs=2, rollout_length=2, update_epochs=1, num_minibatches=2,
             q_layer_sizes=[16, 16])
SMALL_BUDGET = Budget(total_timesteps=24, num_evaluations=2, eval_episodes=2)


def hp_of(**overrides) -> PQNConfig:
    return PQNConfig(**{**SMALL, **overrides})


# --- the targets ------------------------------------------------------------------------------

def trajectory(done, bootstrap, q_max) -> Transition:
    """A [3, 1] trajectory with rewards 1, 2, 3."""
    column = lambda xs, dtype=jnp.float32: jnp.asarray(xs, dtype)[:, None]
    return Transition(obs=column([0, 0, 0]), action=column([0, 0, 0], jnp.int32),
                      reward=column([1.0, 2.0, 3.0]), done=column(done, bool),
                      bootstrap=column(bootstrap), q_max=column(q_max))


def test_q_lambda_targets_by_hand():
    """gamma 0.5, lambda 0.5; step 1 ends its episode by truncation (bootstrap 5), the last
    step bootstraps on max Q = 4 after the rollout.
    G2 = 3 + 0.5 * 4 = 5; G1 = 2 + 0.5 * 5 = 4.5 (the episode end: G2 is not used);
    G0 = 1 + 0.5 * (0.5 * q_max[1] + 0.5 * G1) = 1 + 0.5 * (0.5 + 2.25) = 2.375."""
    traj = trajectory(done=[False, True, False], bootstrap=[9.0, 5.0, 9.0],
                      q_max=[7.0, 1.0, 8.0])
    got = q_lambda_targets(traj, jnp.array([4.0]), 0.5, 0.5)
    np.testing.assert_allclose(np.asarray(got)[:, 0], [2.375, 4.5, 5.0])
    # lambda 0 is one-step Q-learning: r + gamma * max Q(s')
    one_step = q_lambda_targets(traj, jnp.array([4.0]), 0.5, 0.0)
    np.testing.assert_allclose(np.asarray(one_step)[:, 0], [1.5, 4.5, 5.0])
    # a termination bootstraps on 0 (what the acting step stores), whatever lambda
    ended = trajectory(done=[False, False, True], bootstrap=[0.0, 0.0, 0.0], q_max=[0, 0, 0])
    np.testing.assert_allclose(np.asarray(q_lambda_targets(ended, jnp.array([4.0]), 0.5,
                                                           1.0))[:, 0], [2.75, 3.5, 3.0])


def test_config_rules():
    assert hp_of().cross_field_problems() == []
    assert "not divisible by num_minibatches = 3" in hp_of(num_minibatches=3) \
        .cross_field_problems()[0]
    with pytest.raises(ValueError, match="discrete"):
        make_program("gymnax.pendulum", SMALL_BUDGET)


# purejaxql's configs (mttga/purejaxql, purejaxql/config/alg/pqn_cartpole.yaml and
# pqn_minatar.yaml), written out in hyperlax's names: the facts the recipes must carry.
PUREJAXQL = {
    ("pqn_mlp", "gymnax.cartpole"): dict(
        learning_rate=1e-4, decay_learning_rate=True, gamma=0.99, q_lambda=0.95,
        epsilon_start=1.0, epsilon_end=0.2, epsilon_decay_fraction=0.2, max_grad_norm=10.0,
        reward_scale=0.1, num_envs=32, rollout_length=64, update_epochs=4, num_minibatches=16,
        q_layer_sizes=[256, 256], q_layer_norm=True, activation="relu", torso="mlp"),
    ("pqn_minatar", "gymnax.breakout_minatar"): dict(
        learning_rate=5e-4, decay_learning_rate=True, gamma=0.99, q_lambda=0.65,
        epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_fraction=0.1, max_grad_norm=10.0,
        reward_scale=1.0, num_envs=128, rollout_length=32, update_epochs=2,
        num_minibatches=32, q_layer_sizes=[128], q_layer_norm=True, activation="relu",
        torso="cnn"),
}
BUDGETS = {"pqn_mlp": 500_000, "pqn_minatar": 10_000_000}


@pytest.mark.parametrize("recipe, env", sorted(PUREJAXQL))
def test_recipes_carry_purejaxqls_settings(tmp_path, recipe, env):
    """A one-configuration plan of the recipe in its env (an empty [space]) trains exactly
    purejaxql's settings, for purejaxql's run length."""
    from hyperlax.compiler import compile_manifest

    manifest = tmp_path / "one.toml"
    manifest.write_text(f'[sweep]\nname = "one"\nrecipe = "{recipe}"\nenv = "{env}"\n\n'
                        "[space]\n")
    plan, _ = compile_manifest(manifest)
    config = plan.sample_config(0)
    assert {k: getattr(config, k) for k in PUREJAXQL[recipe, env]} == PUREJAXQL[recipe, env]
    assert plan.settings.budget.total_timesteps == BUDGETS[recipe]


# --- training: shapes, batch independence ---------------------------------------------------

@pytest.fixture(scope="module")
def small_train():
    return exec_train("pqn", ENV, SMALL_BUDGET)


A = hp_of(learning_rate=1e-3, gamma=0.97, q_lambda=0.5)
B = hp_of(learning_rate=3e-3, gamma=0.9, epsilon_start=0.5, max_grad_norm=0.5)
C = hp_of(learning_rate=1e-4, q_lambda=0.0, epsilon_end=0.05, decay_learning_rate=False)
D = hp_of(learning_rate=5e-2, gamma=0.5, reward_scale=1.0)
E = hp_of(learning_rate=2e-4, epsilon_decay_fraction=0.9, q_lambda=0.9)


@pytest.fixture(scope="module")
def runs(small_train) -> BatchRuns:
    return batch_runs(small_train, A, B, C, D, E)


@pytest.mark.slow
def test_metrics_shapes_and_contents(runs):
    alone, with_bc = runs.alone, runs.beside_b_c
    assert with_bc.eval_returns.shape == (3, REPLICATES, 2)
    np.testing.assert_array_equal(with_bc.eval_steps, np.broadcast_to([12, 24], (3, 2, 2)))
    assert set(with_bc.losses) == {"td_loss"}
    assert with_bc.finite.all() and (with_bc.eval_returns >= 1).all()
    assert (with_bc.losses["td_loss"] > 0).all()
    # replicates differ (their own keys), so the replicate axis is really used
    assert not np.array_equal(alone.losses["td_loss"][0, 0], alone.losses["td_loss"][0, 1])


@pytest.mark.slow
def test_batch_mates_do_not_change_a_sample(runs):
    """A sample trains the same alone, beside B and C, and between D and E."""
    assert_batch_mates_do_not_change_a_sample(runs, ["td_loss"])


# --- a tiny sweep through the command line ------------------------------------------------------

SWEEP = """\
[sweep]
name = "tiny-{algorithm}"
recipe = "{recipe}"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 3
mode = "batched"
batch_size = 3
total_timesteps = 32
num_evaluations = 2
eval_episodes = 2

[fixed]
num_envs = 2
rollout_length = 4
"network.q.layer_sizes" = [16]
{fixed}
"""
FIXED = {"pqn": "update_epochs = 1\nnum_minibatches = 2",
         "dqn": "train_epochs = 1\nbuffer_size = 64\nreplay_batch_size = 8\nwarmup_steps = 8"}
RECIPES = {"pqn": "pqn_mlp", "dqn": "dqn_mlp_small"}


def plan_and_exec(tmp_path, algorithm):
    """``hyperlax plan`` then ``hyperlax exec`` of a 3-sample sweep; its output root."""
    manifest = tmp_path / f"{algorithm}.toml"
    manifest.write_text(SWEEP.format(algorithm=algorithm, recipe=RECIPES[algorithm],
                                     fixed=FIXED[algorithm]))
    plan, root = tmp_path / f"{algorithm}.msgpack", tmp_path / f"out-{algorithm}"
    planned = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(plan)])
    assert planned.exit_code == 0, planned.output
    ran = CliRunner().invoke(main, ["exec", str(plan), "--output-root", str(root), "-q"])
    assert ran.exit_code == 0, ran.output
    return root


def written(root):
    """The files under ``root``, with the recipe's directory name taken out."""
    return sorted("/".join(p.relative_to(root).parts[1:]) for p in root.rglob("*")
                  if p.is_file())


@pytest.mark.slow
def test_a_pqn_sweep_plans_and_executes_through_the_cli_writing_what_dqn_writes(tmp_path):
    pqn_root = plan_and_exec(tmp_path, "pqn")
    entries = [p.parent for p in pqn_root.rglob("success.txt")]
    assert entries
    for directory in entries:
        summary = json.loads((directory / "summary.json").read_text())
        assert [s["status"] for s in summary["samples"]] == ["ok"] * 3
        with np.load(directory / "curves.npz") as npz:
            assert sorted(npz["sample"].tolist()) == [0, 1, 2]
            assert np.isfinite(npz["returns"]).all()
    dqn_root = plan_and_exec(tmp_path, "dqn")
    assert written(pqn_root) == written(dqn_root)


# --- learning ---------------------------------------------------------------------------------

@pytest.mark.learning
def test_learns_cartpole():
    """Random play scores ~22 on CartPole. purejaxql's CartPole settings but a smaller
    network, a higher learning rate and 25k env steps (45 updates), 3 seeds: every seed's best
    evaluation passes 150 and the last two evaluations average over 120 (measured: 177-409
    best, 217 late; 39 s of CPU, 79 s wall beside five other jobs on 2 cores)."""
    config = PQNConfig(num_envs=16, rollout_length=32, update_epochs=4, num_minibatches=8,
                       q_layer_sizes=[64, 64], learning_rate=1e-3, epsilon_decay_fraction=0.2)
    budget = Budget(total_timesteps=25_000, num_evaluations=5, eval_episodes=8)
    out = to_numpy(exec_train("pqn", ENV, budget)(configs(config), replicate_keys([0], 3)))
    returns = out.eval_returns[0]                     # [seeds, evaluations]
    assert out.finite.all()
    assert (returns.max(axis=1) > 150).all(), returns
    assert returns[:, -2:].mean() > 120, returns
