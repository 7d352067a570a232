"""PPO's option flags ``standardize_advantages`` and ``decay_learning_rates``: data, not
structure (one program trains every combination), and each does what it says at the update it
first acts on."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from hyperlax.compiler import compile_manifest
from hyperlax.hyperparams import PPOConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.batched import batched_program, lane, replicate_keys, stack

TINY = dict(num_envs=4, rollout_length=16, update_epochs=2, num_minibatches=2,
            actor_layer_sizes=[16], critic_layer_sizes=[16])
# 64 steps per update: one update per evaluation chunk, three chunks.
BUDGET = Budget(total_timesteps=192, num_evaluations=3, eval_episodes=2)

DEFAULT = PPOConfig(**TINY)
RAW_ADVANTAGES = PPOConfig(**TINY, standardize_advantages=False)
DECAY = PPOConfig(**TINY, decay_learning_rates=True)
BOTH = PPOConfig(**TINY, standardize_advantages=False, decay_learning_rates=True)


@pytest.fixture(scope="module")
def lanes():
    # Every lane gets the same seed, so lanes differ only by their flags.
    train = batched_program("ppo", "gymnax.pendulum", BUDGET).run
    metrics = train(stack([DEFAULT, RAW_ADVANTAGES, DECAY, BOTH]), replicate_keys([7] * 4, 1))
    return [jax.tree.map(np.asarray, lane(metrics, i)) for i in range(4)]


def _losses(m):
    return np.stack([m.losses[name] for name in sorted(m.losses)])


def test_flags_are_defaults_of_today_and_declared_as_data():
    assert DEFAULT.standardize_advantages is True
    assert DEFAULT.decay_learning_rates is False
    # Configs differing only in the flags stack into one program (same pytree structure).
    assert jax.tree.structure(DEFAULT) == jax.tree.structure(BOTH)


@pytest.mark.slow
def test_decay_keeps_the_first_update_and_changes_the_later_ones(lanes):
    default, _, decay, _ = lanes
    # Update 1 runs at the full rate (purejaxrl's schedule): the first evaluation point
    # agrees bit for bit; update 2 runs at half the rate.
    np.testing.assert_array_equal(_losses(decay)[:, :, 0], _losses(default)[:, :, 0])
    np.testing.assert_array_equal(decay.eval_returns[:, 0], default.eval_returns[:, 0])
    assert not np.array_equal(_losses(decay)[:, :, 1:], _losses(default)[:, :, 1:])


@pytest.mark.slow
def test_raw_advantages_change_the_first_update(lanes):
    default, raw, _, both = lanes
    assert not np.array_equal(_losses(raw)[:, :, 0], _losses(default)[:, :, 0])
    # Decay adds nothing in update 1 to raw advantages either.
    np.testing.assert_array_equal(_losses(both)[:, :, 0], _losses(raw)[:, :, 0])
    assert all(np.all(m.finite) for m in (raw, both))


def test_sampling_the_flags_adds_no_structure(write_manifest):
    plan, _ = compile_manifest(write_manifest("""\
[sweep]
name = "flags"
recipe = "ppo_mlp_no_network_search"
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = 16

[fixed]  # every structural hyperparameter the recipe samples
num_envs = 4
rollout_length = 16
update_epochs = 2
num_minibatches = 2
normalize_observations = true

[space]
standardize_advantages = { dist = "categorical", values = [true, false] }
decay_learning_rates = { dist = "categorical", values = [true, false] }
"""))
    values = {(s.values["standardize_advantages"], s.values["decay_learning_rates"])
              for s in plan.samples}
    assert values == {(True, True), (True, False), (False, True), (False, False)}
    assert len({s.structure for s in plan.samples}) == 1
