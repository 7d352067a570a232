"""DQN training function and the replay buffer it shares with SAC.

Every training call goes through ``runtime.batched``, the executor's own vmap over samples x
replicates with the plan's key rule; the compiled functions are module-scoped so each shape
compiles once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperlax.train import replay
from hyperlax.hyperparams import DQNConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.dqn import make_program
from hyperlax.train.batched import batched_program, replicate_keys
from offpolicy_helpers import (REPLICATES, BatchRuns, assert_batch_mates_do_not_change_a_sample,
                               batch_runs, configs, exec_train, keys_for, row, to_numpy)

ENV = "gymnax.cartpole"
# Tiny structure: 4 env steps per iteration, 2 chunks of 3 iterations, 2 gradient steps per
# iteration. Warm-up (16 steps) covers chunk 1, so chunk 2 runs exactly 6 gradient steps.
SMALL = dict(num_envs=2, rollout_length=2, train_epochs=2, warmup_steps=16, replay_batch_size=8,
             buffer_size=32, target_update_period=2, q_layer_sizes=[16, 16])
SMALL_BUDGET = Budget(total_timesteps=24, num_evaluations=2, eval_episodes=2)


def hp_of(**overrides) -> DQNConfig:
    return DQNConfig(**{**SMALL, **overrides})


# --- replay buffer -------------------------------------------------------------------------

add = jax.jit(replay.add)  # exec_train: one compile each instead of many eager op dispatches
sample = jax.jit(replay.sample, static_argnums=2)


def test_replay_buffer_wraps_and_samples_filled_slots():
    buf = replay.init({"x": jnp.zeros((2,)), "i": jnp.zeros((), jnp.int32)}, capacity=5)
    items = lambda lo, hi: {"x": jnp.stack([jnp.arange(lo, hi)] * 2, -1).astype(jnp.float32),
                            "i": jnp.arange(lo, hi, dtype=jnp.int32)}
    buf = add(buf, items(0, 3))
    assert int(buf.size) == 3 and int(buf.position) == 3
    drawn = sample(buf, jax.random.key(0), 200)
    assert set(np.asarray(drawn["i"]).tolist()) == {0, 1, 2}  # never an empty slot
    np.testing.assert_array_equal(drawn["x"][:, 0], drawn["i"])
    buf = add(buf, items(3, 7))  # wraps: 5 and 6 overwrite 0 and 1
    assert int(buf.size) == 5 and int(buf.position) == 2
    np.testing.assert_array_equal(buf.data["i"], [5, 6, 2, 3, 4])
    buf = add(buf, items(10, 18))  # more than capacity: the newest 5 survive
    assert sorted(np.asarray(buf.data["i"]).tolist()) == [13, 14, 15, 16, 17]
    assert int(buf.position) == 0


def test_replay_buffer_vmaps_with_per_buffer_keys():
    example = {"i": jnp.zeros((), jnp.int32)}
    bufs = jax.tree.map(lambda x: jnp.stack([x, x]), replay.init(example, 8))
    bufs = jax.jit(jax.vmap(replay.add))(bufs, {"i": jnp.array([[0, 1, 2], [5, 6, 7]],
                                                                jnp.int32)})
    keys = jax.random.split(jax.random.key(1), 2)
    drawn = jax.jit(jax.vmap(lambda b, k: replay.sample(b, k, 50)))(bufs, keys)["i"]
    assert set(np.asarray(drawn[0]).tolist()) <= {0, 1, 2}
    assert set(np.asarray(drawn[1]).tolist()) <= {5, 6, 7}
    alone = sample(jax.tree.map(lambda x: x[1], bufs), keys[1], 50)["i"]
    np.testing.assert_array_equal(alone, drawn[1])


# --- training: batch independence, determinism, divergence -----------------------------------

@pytest.fixture(scope="module")
def small_train():
    return exec_train("dqn", ENV, SMALL_BUDGET)


A = hp_of(learning_rate=1e-3, gamma=0.97, tau=0.5, huber_delta=2.0)
B = hp_of(learning_rate=3e-3, gamma=0.9, epsilon_start=0.5, max_grad_norm=0.5)
C = hp_of(learning_rate=1e-4, tau=1.0, epsilon_end=0.2)
D = hp_of(learning_rate=5e-2, gamma=0.5, huber_delta=0.1)
E = hp_of(learning_rate=2e-4, epsilon_decay_fraction=0.1)


@pytest.fixture(scope="module")
def runs(small_train) -> BatchRuns:
    return batch_runs(small_train, A, B, C, D, E)


@pytest.mark.slow
def test_metrics_shapes_and_contents(runs):
    alone, with_bc = runs.alone, runs.beside_b_c
    assert with_bc.eval_returns.shape == (3, REPLICATES, 2)
    assert with_bc.eval_steps.dtype == np.int32
    np.testing.assert_array_equal(with_bc.eval_steps, np.broadcast_to([12, 24], (3, 2, 2)))
    assert set(with_bc.losses) == {"q_loss"}
    assert with_bc.losses["q_loss"].shape == (3, REPLICATES, 2)
    assert with_bc.finite.all()
    assert (with_bc.eval_returns >= 1).all()
    # replicates differ (their own keys), so the replicate axis is really used
    assert not np.array_equal(alone.losses["q_loss"][0, 0], alone.losses["q_loss"][0, 1])


@pytest.mark.slow
def test_batch_mates_do_not_change_a_sample(runs):
    assert_batch_mates_do_not_change_a_sample(runs, ["q_loss"])


@pytest.mark.slow
def test_deterministic(small_train, runs):
    with_bc = runs.beside_b_c
    again = to_numpy(small_train(configs(A, B, C), keys_for(7, 8, 9)))
    jax.tree.map(np.testing.assert_array_equal, again, with_bc)


@pytest.mark.slow
def test_diverging_sample_reports_not_finite_and_spares_batch_mates(small_train, runs):
    with_bc = runs.beside_b_c
    bad = hp_of(learning_rate=float("nan"))
    out = to_numpy(small_train(configs(A, bad, C), keys_for(7, 8, 9)))
    assert out.finite[1, :, 0].all()  # warm-up: the NaN learning rate is not used yet
    assert not out.finite[1, :, 1].any()
    assert out.finite[0].all() and out.finite[2].all()
    for i in (0, 2):
        jax.tree.map(np.testing.assert_array_equal, row(out, i), row(with_bc, i))


@pytest.mark.slow
def test_warmup_acts_randomly_and_applies_no_update(small_train):
    """During warm-up (all of chunk 1) neither the learning rate nor the epsilon schedule can
    matter; once learning starts (chunk 2) they do."""
    out = to_numpy(small_train(configs(hp_of(learning_rate=1e-1, epsilon_start=0.0),
                                     hp_of(learning_rate=1e-4, epsilon_start=1.0), C),
                               keys_for(5, 5, 9)))
    first, second = row(out, 0), row(out, 1)
    np.testing.assert_array_equal(first.losses["q_loss"][:, 0], second.losses["q_loss"][:, 0])
    np.testing.assert_array_equal(first.eval_returns[:, 0], second.eval_returns[:, 0])
    assert (first.losses["q_loss"][:, 1] != second.losses["q_loss"][:, 1]).all()
    assert out.finite.all()


@pytest.mark.slow
def test_scalar_warmup_and_target_period_vary_within_one_program(small_train):
    """warmup_steps and target_update_period are data: lanes of one compiled call may differ
    in them, and each lane trains as it would alone."""
    mixed = to_numpy(small_train(configs(hp_of(warmup_steps=0, target_update_period=1),
                                         hp_of(warmup_steps=24, target_update_period=5)),
                                 keys_for(5, 5)))
    early, never = row(mixed, 0), row(mixed, 1)
    # warm-up 24 = the whole budget: no update ever, so both chunks' returns come from the
    # untouched initial network; warm-up 0 learns from the first iteration.
    assert not np.array_equal(early.losses["q_loss"], never.losses["q_loss"])
    alone = to_numpy(small_train(configs(hp_of(warmup_steps=24, target_update_period=5)),
                                 keys_for(5)))
    np.testing.assert_allclose(row(alone, 0).losses["q_loss"], never.losses["q_loss"],
                               rtol=1e-5, atol=1e-6)


def test_rejects_inconsistent_config_and_continuous_env():
    init = make_program(ENV, SMALL_BUDGET).init
    with pytest.raises(ValueError, match="exceeds buffer_size"):
        jax.eval_shape(init, hp_of(replay_batch_size=64), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="discrete"):
        make_program("gymnax.pendulum", SMALL_BUDGET)


# --- learning ------------------------------------------------------------------------------

@pytest.mark.learning
def test_learns_cartpole():
    """Random play scores ~22 on CartPole; 3 seeds, 30k env steps, 7.5k gradient steps."""
    config = DQNConfig(num_envs=4, rollout_length=4, train_epochs=4, warmup_steps=1_000,
                       replay_batch_size=64, buffer_size=10_000, target_update_period=250,
                       learning_rate=1e-3, epsilon_decay_fraction=0.2)
    budget = Budget(total_timesteps=30_000, num_evaluations=10, eval_episodes=10)
    train = batched_program("dqn", ENV, budget).run
    out = to_numpy(train(configs(config), replicate_keys([0], 3)))
    assert out.finite.all()
    late = out.eval_returns[0, :, -5:].mean(axis=-1)  # per seed, mean of the last 5 evals
    assert late.mean() > 100, out.eval_returns
    assert (late > 50).all(), out.eval_returns
