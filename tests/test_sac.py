"""SAC training function.

Every training call goes through ``runtime.batched``, the executor's own vmap over samples x
replicates with the plan's key rule; the compiled functions are module-scoped so each shape
compiles once.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from hyperlax.hyperparams import SACConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.sac import make_program
from hyperlax.train.batched import batched_program, replicate_keys
from offpolicy_helpers import (REPLICATES, BatchRuns, assert_batch_mates_do_not_change_a_sample,
                               batch_runs, configs, exec_train, keys_for, row, to_numpy)

ENV = "gymnax.pendulum"
# Tiny structure: 4 env steps per iteration, 2 chunks of 3 iterations, 2 gradient steps per
# iteration. Warm-up (16 steps) covers chunk 1, so chunk 2 runs exactly 6 gradient steps.
SMALL = dict(num_envs=2, rollout_length=2, train_epochs=2, warmup_steps=16, replay_batch_size=8,
             buffer_size=32, actor_layer_sizes=[16, 16], critic_layer_sizes=[16, 16])
SMALL_BUDGET = Budget(total_timesteps=24, num_evaluations=2, eval_episodes=2)
LOSS_NAMES = {"q_loss", "actor_loss", "alpha"}


def hp_of(**overrides) -> SACConfig:
    return SACConfig(**{**SMALL, **overrides})


@pytest.fixture(scope="module")
def small_train():
    return exec_train("sac", ENV, SMALL_BUDGET)


A = hp_of(actor_lr=1e-3, q_lr=2e-3, alpha_lr=1e-2, gamma=0.97, tau=0.05, init_alpha=0.5)
B = hp_of(actor_lr=3e-3, gamma=0.9, target_entropy_scale=0.5, max_grad_norm=0.5)
C = hp_of(q_lr=1e-4, tau=0.5, init_alpha=2.0)
D = hp_of(actor_lr=5e-2, q_lr=5e-2, gamma=0.5, init_alpha=0.1)
E = hp_of(alpha_lr=1e-4, target_entropy_scale=2.0)


@pytest.fixture(scope="module")
def runs(small_train) -> BatchRuns:
    return batch_runs(small_train, A, B, C, D, E)


@pytest.mark.slow
def test_metrics_shapes_and_contents(runs):
    alone, with_bc = runs.alone, runs.beside_b_c
    assert with_bc.eval_returns.shape == (3, REPLICATES, 2)
    assert with_bc.eval_steps.dtype == np.int32
    np.testing.assert_array_equal(with_bc.eval_steps, np.broadcast_to([12, 24], (3, 2, 2)))
    assert set(with_bc.losses) == LOSS_NAMES
    for value in with_bc.losses.values():
        assert value.shape == (3, REPLICATES, 2)
    assert with_bc.finite.all()
    assert (with_bc.eval_returns < 0).all()
    # the temperature starts at init_alpha and is untouched during warm-up (chunk 1)
    np.testing.assert_allclose(with_bc.losses["alpha"][:, :, 0],
                               np.broadcast_to([[0.5], [1.0], [2.0]], (3, 2)), rtol=1e-6)
    assert (with_bc.losses["alpha"][:, :, 1] != with_bc.losses["alpha"][:, :, 0]).all()
    # replicates differ (their own keys), so the replicate axis is really used
    assert not np.array_equal(alone.losses["q_loss"][0, 0], alone.losses["q_loss"][0, 1])


@pytest.mark.slow
def test_batch_mates_do_not_change_a_sample(runs):
    assert_batch_mates_do_not_change_a_sample(runs, LOSS_NAMES)


@pytest.mark.slow
def test_deterministic(small_train, runs):
    with_bc = runs.beside_b_c
    again = to_numpy(small_train(configs(A, B, C), keys_for(7, 8, 9)))
    jax.tree.map(np.testing.assert_array_equal, again, with_bc)


@pytest.mark.slow
def test_diverging_sample_reports_not_finite_and_spares_batch_mates(small_train, runs):
    with_bc = runs.beside_b_c
    bad = hp_of(q_lr=float("nan"))
    out = to_numpy(small_train(configs(A, bad, C), keys_for(7, 8, 9)))
    assert out.finite[1, :, 0].all()  # warm-up: the NaN learning rate is not used yet
    assert not out.finite[1, :, 1].any()
    assert out.finite[0].all() and out.finite[2].all()
    for i in (0, 2):
        jax.tree.map(np.testing.assert_array_equal, row(out, i), row(with_bc, i))


@pytest.mark.slow
def test_warmup_acts_randomly_and_applies_no_update(small_train):
    """During warm-up (all of chunk 1) the learning rates cannot matter, and actions are
    uniform rather than the policy's; once learning starts (chunk 2) they do."""
    out = to_numpy(small_train(configs(hp_of(actor_lr=1e-1, q_lr=1e-1, alpha_lr=1e-1),
                                     hp_of(actor_lr=1e-5, q_lr=1e-5, alpha_lr=1e-5), C),
                               keys_for(5, 5, 9)))
    first, second = row(out, 0), row(out, 1)
    for name in LOSS_NAMES:
        np.testing.assert_array_equal(first.losses[name][:, 0], second.losses[name][:, 0])
        assert (first.losses[name][:, 1] != second.losses[name][:, 1]).all()
    np.testing.assert_array_equal(first.eval_returns[:, 0], second.eval_returns[:, 0])
    assert out.finite.all()


def test_rejects_inconsistent_config_and_discrete_env():
    init = make_program(ENV, SMALL_BUDGET).init
    with pytest.raises(ValueError, match="exceeds buffer_size"):
        jax.eval_shape(init, hp_of(replay_batch_size=64), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="continuous"):
        make_program("gymnax.cartpole", SMALL_BUDGET)


# --- learning ------------------------------------------------------------------------------

@pytest.mark.learning
def test_learns_pendulum():
    """Random play scores ~-1200 on Pendulum; 3 seeds, 8k env steps, 7k gradient steps."""
    config = SACConfig(num_envs=4, rollout_length=1, train_epochs=4, warmup_steps=1_000,
                       replay_batch_size=128, buffer_size=10_000, actor_layer_sizes=[64, 64],
                       critic_layer_sizes=[64, 64], actor_lr=1e-3, q_lr=1e-3, alpha_lr=1e-3)
    budget = Budget(total_timesteps=8_000, num_evaluations=8, eval_episodes=10)
    train = batched_program("sac", ENV, budget).run
    out = to_numpy(train(configs(config), replicate_keys([0], 3)))
    assert out.finite.all()
    late = out.eval_returns[0, :, -3:].mean(axis=-1)  # per seed, mean of the last 3 evals
    assert late.mean() > -600, out.eval_returns
    assert (late > -900).all(), out.eval_returns
