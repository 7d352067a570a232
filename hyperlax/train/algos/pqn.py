"""PQN: vectorized Q(lambda) learning with a layer-normalized Q-network, no replay, no target.

Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"; purejaxql's
``pqn_gymnax.py`` and ``pqn_minatar.py`` are the reference (read, not copied). Shaped like the
other algorithms: ``make_program`` does the Python setup and returns the pure
``init(config, key)``, ``train(config, runner)`` and ``evaluate(spec, policy, key)``
(``algos.Program``; ``train.batched`` runs them as exec does). Training is nested
``lax.scan``s (evaluation chunks > updates > rollout steps | epochs > minibatches) with
NamedTuple carries, as PPO's: one update steps ``num_envs`` envs ``rollout_length`` times
epsilon-greedily, computes Q(lambda) targets backwards over that rollout, then runs
``update_epochs`` passes of ``num_minibatches`` gradient steps over it, and throws it away.

Choices, so a reader need not reverse-engineer them:

- Targets: ``G_t = r_t + gamma * ((1 - lambda) * max_a Q(s_{t+1}, a) + lambda * G_{t+1})``,
  with the max taken by the acting network (the one that collected the rollout: there is no
  target network), cut at every episode end, where ``G_t = r_t + gamma * V_end`` with
  ``V_end`` 0 on termination and ``max_a Q(info["final_observation"], a)`` on a truncation
  (purejaxql bootstraps neither; gymnax >= 1.0 tells them apart). The last step of a rollout
  bootstraps on ``max_a Q`` of the observation the envs are in. ``q_lambda = 0`` is one-step
  Q-learning.
- Loss ``0.5 * mean((Q(s, a) - G)^2)`` (reported as ``td_loss``, the mean over a chunk's
  gradient steps); RAdam after global-norm gradient clipping, as purejaxql; learning rate and
  clip bound are data, read from the config at every update
  (``networks.inject_current_hyperparams``). With ``decay_learning_rate`` the rate falls
  linearly to 0 over all gradient steps of training (a schedule of the optimizer's own step
  count selected by data, so the flag costs no compile).
- Epsilon decays linearly from ``epsilon_start`` to ``epsilon_end`` over
  ``epsilon_decay_fraction`` of the updates actually trained, held for a whole rollout (as
  purejaxql's, a function of the update count). Evaluation acts greedily (argmax Q).
- Training rewards are the env's times ``reward_scale`` (purejaxql's REW_SCALE); evaluation
  returns are the env's own.
- ``networks.mlp`` with the Q-network's own activation and layer norm (on by default: the
  paper's stabiliser in place of a target network), the MinAtar convolution when
  ``network.torso`` is "cnn", flax's default initialization. purejaxql's MinAtar network also
  normalizes the convolution's output and He-initializes; ours does neither.
- ``finite`` is True when every parameter and every chunk loss is finite.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperlax.hyperparams.budget import Budget
from hyperlax.hyperparams.config import NetworkShape
from hyperlax.hyperparams.pqn import PQNConfig
from hyperlax.train.algos.common import (Program, Trained, all_finite, check_config,
                                           program, shuffled_minibatches)
from hyperlax.train.envs import action_info, evaluate, make_env
from hyperlax.train.networks import MLP, inject_current_hyperparams, mlp

CONFIG = PQNConfig  # what this module trains (the registry finds it by its name)


class Learner(NamedTuple):
    params: Any
    opt_state: Any


class Runner(NamedTuple):
    learner: Learner
    env_state: Any
    obs: jax.Array      # observations the envs are in now, [num_envs, *obs_shape]
    key: jax.Array
    updates: jax.Array  # int32: updates trained so far


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array     # scaled by reward_scale
    done: jax.Array       # terminated or truncated: the lambda recursion stops here
    bootstrap: jax.Array  # max Q of the final observation at an episode end (0 on termination)
    q_max: jax.Array      # max Q of ``obs``, by the acting network


class Epoch(NamedTuple):
    learner: Learner
    batch: Any  # (obs, action, target) of the whole flattened rollout, reshuffled each epoch


def q_lambda_targets(traj: Transition, last_q_max: jax.Array, gamma, q_lambda) -> jax.Array:
    """Q(lambda) returns of a [T, num_envs] trajectory, ``last_q_max`` the max Q of the
    observations after its last step (see the module docstring)."""

    def step(carry, t: Transition):
        next_return, next_q_max = carry
        mixed = (1.0 - q_lambda) * next_q_max + q_lambda * next_return
        target = t.reward + gamma * jnp.where(t.done, t.bootstrap, mixed)
        return (target, t.q_max), target

    # (1 - lambda) * q + lambda * q = q: the last step bootstraps on the max Q alone
    _, targets = jax.lax.scan(step, (last_q_max, last_q_max), traj, reverse=True)
    return targets


def _q_network(spec: NetworkShape, env_id: str, num_actions: int) -> MLP:
    """The Q-network, from the evaluation's spec: training and evaluation build it alike."""
    return mlp(spec, env_id, out_dim=num_actions)


def eval_spec(config: PQNConfig) -> NetworkShape:
    return config.network("q")


def _clipped_radam(learning_rate, max_grad_norm) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.radam(learning_rate))


# What ``init`` does not read (the rest of the structure is its spec: algos, ``init_spec``).
# The learning-rate schedule closes over the gradient-step count they give, but ``init``
# evaluates it at step 0 only, where it is the rate itself whatever the count.
NOT_IN_INIT = ("rollout_length", "update_epochs", "num_minibatches")


def make_program(env_id: str, budget: Budget) -> Program:
    env, env_params = make_env(env_id)
    discrete, num_actions, _, _ = action_info(env, env_params)
    if not discrete:
        raise ValueError(f"pqn needs a discrete action space; {env_id} is continuous")
    obs_shape = tuple(env.observation_space(env_params).shape)
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def build(config: PQNConfig):
        """(init(key) -> Runner, train_chunk(Runner) -> (Runner, Trained)) of one structure."""
        # Structural fields are Python values here (static in the pytree): shapes and loops.
        check_config(config)
        num_envs, rollout_length = config.num_envs, config.rollout_length
        update_epochs, num_minibatches = config.update_epochs, config.num_minibatches
        batch_size = num_envs * rollout_length
        updates_per_eval, total_updates = budget.updates(batch_size)
        if total_updates * batch_size > np.iinfo(np.int32).max:
            raise ValueError(f"{total_updates * batch_size} env steps do not fit the int32 "
                             "eval_steps")
        total_grad_steps = total_updates * update_epochs * num_minibatches
        network = _q_network(eval_spec(config), env_id, num_actions)

        def learning_rate(count):
            frac = 1.0 - count / total_grad_steps
            return jnp.where(config.decay_learning_rate, config.learning_rate * frac,
                             config.learning_rate)

        tx = inject_current_hyperparams(_clipped_radam, learning_rate=learning_rate,
                                        max_grad_norm=config.max_grad_norm)

        def epsilon(updates):
            frac = jnp.clip(updates / (config.epsilon_decay_fraction * total_updates), 0.0, 1.0)
            return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)

        def q_max(params, obs):
            return network.apply(params, obs).max(axis=-1)

        # --- acting ------------------------------------------------------------------
        def env_step(runner: Runner, eps):
            key, k_explore, k_random, k_env = jax.random.split(runner.key, 4)
            params = runner.learner.params
            q = network.apply(params, runner.obs)
            random = jax.random.randint(k_random, (num_envs,), 0, num_actions)
            explore = jax.random.uniform(k_explore, (num_envs,)) < eps
            action = jnp.where(explore, random, jnp.argmax(q, axis=-1))
            obs, env_state, reward, terminated, truncated, info = v_step(
                jax.random.split(k_env, num_envs), runner.env_state, action, env_params)
            bootstrap = jnp.where(terminated, 0.0, q_max(params, info["final_observation"]))
            transition = Transition(runner.obs, action,
                                    reward.astype(jnp.float32) * config.reward_scale,
                                    terminated | truncated, bootstrap, q.max(axis=-1))
            return runner._replace(env_state=env_state, obs=obs, key=key), transition

        # --- learning ----------------------------------------------------------------
        def td_loss(params, minibatch):
            obs, action, target = minibatch
            q = network.apply(params, obs)
            q_taken = jnp.take_along_axis(q, action[:, None], axis=-1)[:, 0]
            return 0.5 * jnp.square(q_taken - target).mean()

        def minibatch_step(learner: Learner, minibatch):
            loss, grads = jax.value_and_grad(td_loss)(learner.params, minibatch)
            updates, opt_state = tx.update(grads, learner.opt_state, learner.params)
            return Learner(optax.apply_updates(learner.params, updates), opt_state), loss

        def epoch_step(carry: Epoch, epoch_key):
            learner, batch = carry
            minibatches = shuffled_minibatches(epoch_key, batch, batch_size, num_minibatches)
            learner, losses = jax.lax.scan(minibatch_step, learner, minibatches)
            return Epoch(learner, batch), losses

        def update_step(runner: Runner, _):
            eps = epsilon(runner.updates)
            runner, traj = jax.lax.scan(env_step, runner, jnp.broadcast_to(eps, rollout_length))
            last_q_max = q_max(runner.learner.params, runner.obs)
            targets = q_lambda_targets(traj, last_q_max, config.gamma, config.q_lambda)
            batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                                 (traj.obs, traj.action, jax.lax.stop_gradient(targets)))
            key, epochs_key = jax.random.split(runner.key)
            (learner, _), losses = jax.lax.scan(epoch_step, Epoch(runner.learner, batch),
                                                jax.random.split(epochs_key, update_epochs))
            return runner._replace(learner=learner, key=key,
                                   updates=runner.updates + 1), losses.mean()

        # --- evaluation chunks (the evaluation itself: evaluate_policy) ------------------
        def train_chunk(runner: Runner):
            runner, losses = jax.lax.scan(update_step, runner, None, updates_per_eval)
            key, eval_key = jax.random.split(runner.key)
            params, loss = runner.learner.params, losses.mean()
            finite = all_finite(params) & jnp.isfinite(loss)
            return runner._replace(key=key), Trained(
                policy=params, eval_key=eval_key,
                eval_steps=(runner.updates * batch_size).astype(jnp.int32),
                losses={"td_loss": loss.astype(jnp.float32)}, finite=finite)

        def init(key: jax.Array) -> Runner:  # everything from `key`
            key, k_init, k_reset = jax.random.split(key, 3)
            obs, env_state = v_reset(jax.random.split(k_reset, num_envs), env_params)
            params = network.init(k_init, jnp.zeros(obs_shape, jnp.float32))
            return Runner(Learner(params, tx.init(params)), env_state, obs, key,
                          jnp.zeros((), jnp.int32))

        return init, train_chunk

    def evaluate_policy(spec: NetworkShape, params: Any, key: jax.Array) -> jax.Array:
        """Greedy: argmax Q."""
        network = _q_network(spec, env_id, num_actions)

        def act(obs, _key):
            return jnp.argmax(network.apply(params, obs), axis=-1)

        return evaluate(env, env_params, act, key, budget.eval_episodes).astype(jnp.float32)

    return program(build, evaluate_policy, eval_spec, NOT_IN_INIT)
