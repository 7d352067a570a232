"""Every optimizer update uses the config it is called with, not the one its carry was
initialized under: a training carry continued under other hyperparameter values (what
population-based training does) trains with the new values.

``optax.inject_hyperparams`` stores a numeric hyperparameter in the optimizer state at ``init``
and reads it back from there at every ``update``; ``networks.inject_current_hyperparams`` makes the
update take the construction-time value instead, with the state's tree unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import msgspec
import numpy as np
import optax
import pytest

from hyperlax.hyperparams import DQNConfig, PPOConfig, PQNConfig, SACConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.batched import batched_program, replicate_keys, stack
from hyperlax.train.networks import make_optimizer

# --- the optimizer alone ----------------------------------------------------------------------

PARAMS = {"w": jnp.array([1.0, -2.0, 3.0])}
GRADS = {"w": jnp.array([0.5, 0.5, -4.0])}


def test_update_takes_the_constructed_values_not_the_states():
    old = make_optimizer(1e-2, 10.0)
    state = old.init(PARAMS)
    _, state = old.update(GRADS, state, PARAMS)
    new = make_optimizer(0.0, 0.25)
    updates, after = new.update(GRADS, state, PARAMS)
    assert not any(np.any(u) for u in jax.tree.leaves(updates))  # Adam at rate 0
    assert float(after.hyperparams["learning_rate"]) == 0.0
    assert float(after.hyperparams["max_grad_norm"]) == 0.25
    # the tree, shapes and dtypes of the state are those ``init`` gives
    fresh = new.init(PARAMS)
    assert jax.tree.structure(after) == jax.tree.structure(fresh)
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(after)] == \
        [(x.shape, x.dtype) for x in jax.tree.leaves(fresh)]


def test_an_unchanged_optimizer_updates_as_inject_hyperparams_does():
    """Bit for bit, so unchanged trainings reproduce their results."""
    ours = make_optimizer(3e-3, 0.5, eps=1e-5, grad_clip_mode="per_element")
    theirs = optax.inject_hyperparams(
        lambda learning_rate, max_grad_norm: optax.chain(
            optax.clip(max_grad_norm), optax.adam(learning_rate, eps=1e-5)))(
        learning_rate=3e-3, max_grad_norm=0.5)
    a, b = ours.init(PARAMS), theirs.init(PARAMS)
    for _ in range(3):
        ua, a = ours.update(GRADS, a, PARAMS)
        ub, b = theirs.update(GRADS, b, PARAMS)
        assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves((ua, a)),
                                                         jax.tree.leaves((ub, b))))


# --- every algorithm, continued under other learning rates ------------------------------------

BUDGET = Budget(total_timesteps=256, num_evaluations=2, eval_episodes=2)
# (algorithm, env, a config with nonzero learning rates, the rates set to 0 to continue with,
#  the learner's fields that its optimizers move)
CASES = [
    ("ppo", "gymnax.pendulum",
     PPOConfig(num_envs=4, rollout_length=16, update_epochs=1, num_minibatches=2,
               actor_layer_sizes=[8], critic_layer_sizes=[8], activation="tanh"),
     ("actor_lr", "critic_lr"), ("actor_params", "critic_params")),
    ("dqn", "gymnax.cartpole",
     DQNConfig(num_envs=4, rollout_length=4, train_epochs=1, buffer_size=128,
               replay_batch_size=16, warmup_steps=0, q_layer_sizes=[8]),
     ("learning_rate",), ("params",)),
    ("sac", "gymnax.pendulum",
     SACConfig(num_envs=2, rollout_length=4, train_epochs=1, buffer_size=128,
               replay_batch_size=16, warmup_steps=0, actor_layer_sizes=[8],
               critic_layer_sizes=[8]),
     ("actor_lr", "q_lr", "alpha_lr"), ("actor_params", "critic_params", "log_alpha")),
    ("pqn", "gymnax.cartpole",
     PQNConfig(num_envs=4, rollout_length=4, update_epochs=1, num_minibatches=2,
               q_layer_sizes=[8]),
     ("learning_rate",), ("params",)),
]


def trained_params(carry, fields):
    return [jax.device_get(getattr(carry.learner, f)) for f in fields]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, env, config, rates, fields", CASES,
                         ids=[c[0] for c in CASES])
def test_a_carry_continued_at_learning_rate_zero_keeps_its_parameters(algorithm, env, config,
                                                                      rates, fields):
    program = batched_program(algorithm, env, BUDGET)
    train = jax.jit(program.train)  # no donation: the carry is continued twice
    configs = stack([config])
    frozen = stack([msgspec.structs.replace(config, **{rate: 0.0 for rate in rates})])
    carry, _ = train(configs, jax.jit(program.init)(configs, replicate_keys([0], 1)))
    before = trained_params(carry, fields)
    # the call does train: at the carry's own rates, it moves every network
    moved = trained_params(train(configs, carry)[0], fields)
    assert all(not same(b, m) for b, m in zip(before, moved)), fields
    # at rate 0, Adam (RAdam) moves nothing, whatever rates the carry was initialized with
    kept = trained_params(train(frozen, carry)[0], fields)
    assert same(before, kept)
