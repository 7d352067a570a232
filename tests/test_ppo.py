"""PPO through the one batched entry point (``train.batched``, what exec runs): batch
independence, determinism, both action spaces, divergence reporting, and (slow) that it learns CartPole.

Compiling a vmapped train takes ~10-20 s on a 2-core CPU, so the module compiles exactly three
functions (module-scoped fixtures) and every test reuses them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperlax.hyperparams import PPOConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.ppo import LOSS_NAMES, Transition, _gae, _norm_init, _norm_update
from hyperlax.train.batched import batched_program, lane, replicate_keys, stack

TINY = dict(num_envs=4, rollout_length=16, update_epochs=2, num_minibatches=2,
            actor_layer_sizes=[16, 16], critic_layer_sizes=[16, 16])
# 64 steps per update, one update per chunk, two chunks.
TINY_BUDGET = Budget(total_timesteps=128, num_evaluations=2, eval_episodes=2)

LEARN_BUDGET = Budget(total_timesteps=60_000, num_evaluations=6, eval_episodes=8)
LEARN_SEEDS = 3

REPLICATES = 2
SAMPLE_A = PPOConfig(**TINY)
MATES_1 = [
    PPOConfig(**TINY, actor_lr=1e-3, critic_lr=1e-4, gamma=0.9),
    PPOConfig(**TINY, clip_eps=0.1, ent_coef=0.01, max_grad_norm=2.0),
    PPOConfig(**TINY, gae_lambda=0.8, vf_coef=1.0, actor_lr=3e-5),
]
DIVERGING = PPOConfig(**TINY, actor_lr=1e30, critic_lr=1e30, max_grad_norm=1e30)
MATES_2 = [
    DIVERGING,
    PPOConfig(**TINY, actor_lr=5e-3, gamma=0.999, clip_eps=0.3),
    PPOConfig(**TINY, critic_lr=2e-3, ent_coef=0.05, gae_lambda=1.0),
]


def pick(metrics, i):
    return jax.tree.map(np.asarray, lane(metrics, i))


@pytest.fixture(scope="module")
def pendulum_train():
    return batched_program("ppo", "gymnax.pendulum", TINY_BUDGET).run


@pytest.fixture(scope="module")
def a_alone(pendulum_train):
    return pendulum_train(stack([SAMPLE_A]), replicate_keys([0], REPLICATES))


@pytest.fixture(scope="module")
def batch_1(pendulum_train):
    # A sits at a different position in each batch.
    return pendulum_train(stack([SAMPLE_A, *MATES_1]), replicate_keys([0, 1, 2, 3], REPLICATES))


@pytest.fixture(scope="module")
def batch_2(pendulum_train):
    return pendulum_train(stack([*MATES_2[:2], SAMPLE_A, MATES_2[2]]),
                          replicate_keys([4, 5, 0, 6], REPLICATES))


@pytest.fixture(scope="module")
def cartpole_run():
    train = batched_program("ppo", "gymnax.cartpole", LEARN_BUDGET).run
    configs = stack([PPOConfig(actor_lr=1e-3, critic_lr=1e-3)])
    return train(configs, replicate_keys([0], LEARN_SEEDS))


# --- pure pieces ---------------------------------------------------------------------------

def test_gae_bootstraps_through_truncation_not_termination():
    gamma, lam = 0.9, 0.8
    # one env, 4 steps: step 1 truncates (bootstrap 5.0), step 2 terminates, step 3 runs on.
    reward = np.array([1.0, 2.0, 3.0, 4.0])
    value = np.array([0.5, 1.5, 2.5, 3.5])
    done = np.array([False, True, True, False])
    bootstrap = np.array([0.0, 5.0, 0.0, 0.0])
    last_value = 7.0
    expected = np.zeros(4)
    next_adv, next_value = 0.0, last_value
    for t in reversed(range(4)):
        nv = bootstrap[t] if done[t] else next_value
        delta = reward[t] + gamma * nv - value[t]
        next_adv = delta + gamma * lam * (0.0 if done[t] else next_adv)
        expected[t], next_value = next_adv, value[t]
    traj = Transition(obs=None, action=None, log_prob=None, value=jnp.asarray(value)[:, None],
                      reward=jnp.asarray(reward)[:, None], done=jnp.asarray(done)[:, None],
                      bootstrap=jnp.asarray(bootstrap)[:, None])
    adv, target = _gae(traj, jnp.array([last_value]), gamma, lam)
    np.testing.assert_allclose(np.asarray(adv)[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(target)[:, 0], expected + value, rtol=1e-6)
    # hand-checked anchors: truncation bootstraps, termination does not
    assert expected[1] == pytest.approx(2.0 + gamma * 5.0 - 1.5)
    assert expected[2] == pytest.approx(3.0 - 2.5)


def test_running_normalization_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(8, 3)) for _ in range(5)]
    norm = _norm_init((3,))
    for b in batches:
        norm = _norm_update(norm, jnp.asarray(b, jnp.float32))
    allobs = np.concatenate(batches)
    np.testing.assert_allclose(norm.mean, allobs.mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.var, allobs.var(0), rtol=1e-3)


# --- the executor's wrapping ---------------------------------------------------------------

@pytest.mark.slow
def test_continuous_shapes_and_steps(a_alone):
    m = a_alone
    n = TINY_BUDGET.num_evaluations
    assert m.eval_steps.shape == (1, REPLICATES, n) and m.eval_steps.dtype == jnp.int32
    per_eval, _ = TINY_BUDGET.updates(64)
    np.testing.assert_array_equal(m.eval_steps[0, 0], np.arange(1, n + 1) * per_eval * 64)
    assert m.eval_returns.shape == (1, REPLICATES, n)
    assert set(LOSS_NAMES) <= set(m.losses) and {"policy_loss", "value_loss", "entropy"} <= \
        set(m.losses)
    for v in m.losses.values():
        assert v.shape == (1, REPLICATES, n)
    assert m.finite.dtype == jnp.bool_ and bool(np.all(m.finite))
    # pendulum returns are negative; the two replicates are different runs
    assert np.all(np.asarray(m.eval_returns) < 0)
    assert not np.array_equal(m.eval_returns[0, 0], m.eval_returns[0, 1])
    # Gaussian entropy of a 1-d policy with log_std ~ 0: 0.5 * log(2 pi e) ~ 1.42
    assert float(m.losses["entropy"][0, 0, 0]) == pytest.approx(1.4189, abs=0.05)


@pytest.mark.slow
def test_discrete_shapes(cartpole_run):
    m = cartpole_run
    n = LEARN_BUDGET.num_evaluations
    assert m.eval_returns.shape == (1, LEARN_SEEDS, n)
    assert m.eval_steps.shape == (1, LEARN_SEEDS, n)
    per_eval, _ = LEARN_BUDGET.updates(8 * 64)
    np.testing.assert_array_equal(m.eval_steps[0, 0], np.arange(1, n + 1) * per_eval * 8 * 64)
    assert bool(np.all(m.finite))
    # categorical entropy is at most log(2)
    assert np.all(m.losses["entropy"] <= np.log(2.0) + 1e-5)


@pytest.mark.slow
def test_deterministic(pendulum_train, a_alone):
    again = pendulum_train(stack([SAMPLE_A]), replicate_keys([0], REPLICATES))
    for x, y in zip(jax.tree.leaves(a_alone), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_sample_independent_of_batch_mates(a_alone, batch_1, batch_2):
    alone, in_1, in_2 = pick(a_alone, 0), pick(batch_1, 0), pick(batch_2, 2)
    # different batch mates at the same width: identical
    for x, y in zip(jax.tree.leaves(in_1), jax.tree.leaves(in_2)):
        np.testing.assert_array_equal(x, y)
    # alone vs in a batch: equal up to float rounding after one update (first chunk)
    np.testing.assert_allclose(in_1.eval_returns[:, 0], alone.eval_returns[:, 0], rtol=1e-5)
    for name in alone.losses:
        np.testing.assert_allclose(in_1.losses[name][:, 0], alone.losses[name][:, 0],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(in_1.eval_steps, alone.eval_steps)
    np.testing.assert_array_equal(in_1.finite, alone.finite)
    # and the batch mates really did train differently
    assert not np.allclose(pick(batch_1, 1).losses["value_loss"], in_1.losses["value_loss"])


@pytest.mark.slow
def test_diverging_sample_reports_not_finite(batch_2):
    diverged, healthy = pick(batch_2, 0), pick(batch_2, 2)
    assert not np.any(diverged.finite[:, -1])
    assert np.all(healthy.finite)
    assert np.all(np.isfinite(healthy.eval_returns))


# --- learning ------------------------------------------------------------------------------

@pytest.mark.learning
def test_learns_cartpole(cartpole_run):
    final = np.asarray(cartpole_run.eval_returns[0, :, -1])
    # A random policy scores ~22; the episode limit is 500. Measured on CPU (jax 0.10), seeds
    # 0-3 x 3 replicates: finals 182-500, mean per seed 379-500.
    assert np.all(final >= 100), final
    assert final.mean() >= 300, final
