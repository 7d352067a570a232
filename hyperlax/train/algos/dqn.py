"""DQN: epsilon-greedy acting, an on-device replay buffer, a target network, Huber TD loss.

Shaped like the other algorithms: ``make_program`` does the Python setup and returns the pure
``init(config, key)``, ``train(config, runner)`` and ``evaluate(spec, policy, key)``
(``algos.Program``; ``train.batched`` runs them as exec does). Training is nested ``lax.scan``s
(evaluation chunks > iterations > env steps | gradient steps) with NamedTuple carries. One
iteration steps ``num_envs`` envs for ``rollout_length`` steps, adds the transitions to the
replay buffer, then runs ``train_epochs`` gradient steps.

Choices, so a reader need not reverse-engineer them:

- Every scalar hyperparameter is data: warm-up, the epsilon schedule and the target update
  are arithmetic (``jnp.where``) on traced step counters, never Python branches.
- Epsilon decays linearly from ``epsilon_start`` to ``epsilon_end`` over
  ``epsilon_decay_fraction`` of the env steps actually trained, counted from step 0; during
  warm-up (fewer than ``warmup_steps`` env steps collected) actions are uniformly random and
  no update is applied. Evaluation acts greedily (argmax Q).
- TD target ``r + gamma * (1 - terminated) * Q'(s', a*)`` with ``s'`` the step's own next
  observation (``info["final_observation"]``), so truncation bootstraps and termination does
  not. ``a*`` is the online net's argmax when ``double_q``, else the target net's (its
  value there is the max, exactly); ``double_q`` is data: the online net always evaluates
  ``s'`` and the flag selects the action index. Loss: mean Huber(``huber_delta``);
  optimizer ``networks.make_optimizer`` (Adam after global-norm clipping, both data).
- ``r`` is the env's reward clipped to [-max_abs_reward, max_abs_reward] when
  ``max_abs_reward`` > 0 (the bound is infinite otherwise, and clipping to it is exact).
  Evaluation returns are the env's own.
- The target moves towards the online net, ``target = tau * online + (1 - tau) * target``
  (``optax.incremental_update``; ``tau = 1`` is an exact copy), after every
  ``target_update_period``-th applied gradient step.
- Reported ``q_loss`` is the mean over all of a chunk's gradient steps; during warm-up it is
  evaluated (at the untouched parameters) but not applied.
- ``networks.mlp`` (the Q-network's own activation and layer norm, the convolutional torso
  when ``network.torso`` is "cnn") with flax's default (LeCun-normal) initialization, which
  also keeps QR decompositions (orthogonal init) out of the vmapped, possibly sharded,
  program. With ``dueling``, the hidden layers feed a value head and an advantage head,
  ``Q = V + A - mean(A)`` (Wang et al. 2016).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hyperlax.hyperparams.budget import Budget
from hyperlax.hyperparams.config import NetworkShape
from hyperlax.hyperparams.dqn import DQNConfig
from hyperlax.train import replay
from hyperlax.train.algos.common import (Program, Trained, all_finite, check_config,
                                           program)
from hyperlax.train.envs import action_info, evaluate, make_env
from hyperlax.train.networks import make_optimizer, mlp

CONFIG = DQNConfig  # what this module trains (the registry finds it by its name)


class Dueling(nn.Module):
    """``Q = V + A - mean(A)`` from value and advantage heads on ``torso``'s features."""

    torso: nn.Module
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = self.torso(obs)
        value = nn.Dense(1)(x)
        advantage = nn.Dense(self.num_actions)(x)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class QSpec(NamedTuple):
    """The structural values the evaluation depends on."""

    q: NetworkShape
    dueling: bool


def eval_spec(config: DQNConfig) -> QSpec:
    return QSpec(config.network("q"), bool(config.dueling))


def _q_network(spec: QSpec, env_id: str, num_actions: int) -> nn.Module:
    """The Q-network, from the evaluation's spec: training and evaluation build it alike."""
    if spec.dueling:
        return Dueling(mlp(spec.q, env_id), num_actions)
    return mlp(spec.q, env_id, out_dim=num_actions)


# What ``init`` does not read (the rest of the structure is its spec: algos, ``init_spec``).
NOT_IN_INIT = ("rollout_length", "train_epochs", "replay_batch_size")


class Learner(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    grad_steps: jax.Array  # int32: gradient steps applied so far


def make_program(env_id: str, budget: Budget) -> Program:
    env, env_params = make_env(env_id)
    discrete, num_actions, _, _ = action_info(env, env_params)
    if not discrete:
        raise ValueError(f"dqn needs a discrete action space; {env_id} is continuous")
    obs_shape = env.observation_space(env_params).shape
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def build(config: DQNConfig):
        """(init(key) -> Runner, train_chunk(Runner) -> (Runner, Trained)) of one structure."""
        # Structural fields are Python values here (static in the pytree): shapes and loops.
        check_config(config)
        num_envs, rollout_length = config.num_envs, config.rollout_length
        train_epochs, batch_size = config.train_epochs, config.replay_batch_size
        steps_per_iter = config.steps_per_update()
        updates_per_eval, total_updates = budget.updates(steps_per_iter)
        total_env_steps = total_updates * steps_per_iter
        # scalars (data): compared with traced counters only
        warmup_steps, target_period = config.warmup_steps, config.target_update_period
        network = _q_network(eval_spec(config), env_id, num_actions)
        # 0 means no clipping: an infinite bound, which clipping leaves every reward alone at
        reward_bound = jnp.where(config.max_abs_reward > 0, config.max_abs_reward, jnp.inf)
        tx = make_optimizer(config.learning_rate, config.max_grad_norm)

        def epsilon(env_steps):
            decay_steps = config.epsilon_decay_fraction * total_env_steps
            frac = jnp.clip(env_steps / decay_steps, 0.0, 1.0)
            eps = config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)
            return jnp.where(env_steps < warmup_steps, 1.0, eps)  # warm-up: uniformly random

        # --- acting ------------------------------------------------------------------
        def env_step(runner: replay.Runner, _):
            key, k_explore, k_random, k_env = jax.random.split(runner.key, 4)
            greedy = jnp.argmax(network.apply(runner.learner.params, runner.obs), axis=-1)
            random = jax.random.randint(k_random, (num_envs,), 0, num_actions)
            explore = jax.random.uniform(k_explore, (num_envs,)) < epsilon(runner.env_steps)
            action = jnp.where(explore, random, greedy)
            obs, env_state, reward, terminated, _, info = v_step(
                jax.random.split(k_env, num_envs), runner.env_state, action, env_params)
            reward = jnp.clip(reward.astype(jnp.float32), -reward_bound, reward_bound)
            transition = replay.Transition(runner.obs, action, reward,
                                    info["final_observation"], terminated.astype(jnp.float32))
            runner = runner._replace(env_state=env_state, obs=obs, key=key,
                                     env_steps=runner.env_steps + num_envs)
            return runner, transition

        # --- learning ----------------------------------------------------------------
        def q_loss(params, target_params, batch: replay.Transition):
            q = network.apply(params, batch.obs)
            q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
            q_next_target = network.apply(target_params, batch.next_obs)
            # data: the flag picks whose argmax indexes the target net's values (the target
            # net's own argmax gives its max, exactly)
            next_action = jnp.where(config.double_q,
                                    jnp.argmax(network.apply(params, batch.next_obs), axis=-1),
                                    jnp.argmax(q_next_target, axis=-1))
            q_next = jnp.take_along_axis(q_next_target, next_action[:, None], axis=-1)[:, 0]
            target = batch.reward + config.gamma * (1.0 - batch.done) * q_next
            target = jax.lax.stop_gradient(target)
            return optax.huber_loss(q_taken, target, delta=config.huber_delta).mean()

        def gradient_step(carry, key):
            learner, buffer, learning = carry
            batch = replay.sample(buffer, key, batch_size)
            loss, grads = jax.value_and_grad(q_loss)(learner.params, learner.target_params,
                                                     batch)
            updates, opt_state = tx.update(grads, learner.opt_state, learner.params)
            params = optax.apply_updates(learner.params, updates)
            grad_steps = learner.grad_steps + 1
            refresh = (grad_steps % target_period) == 0
            target = optax.incremental_update(params, learner.target_params, config.tau)
            target = jax.tree.map(lambda new, old: jnp.where(refresh, new, old),
                                  target, learner.target_params)
            updated = Learner(params, target, opt_state, grad_steps)
            # warm-up: nothing is applied until enough env steps were collected
            learner = jax.tree.map(lambda new, old: jnp.where(learning, new, old),
                                   updated, learner)
            return (learner, buffer, learning), loss

        def update_step(runner: replay.Runner, _):
            runner, losses = replay.collect_and_train(
                runner, env_step, gradient_step, rollout_length=rollout_length,
                warmup_steps=warmup_steps, train_epochs=train_epochs)
            return runner, losses.mean()

        # --- evaluation chunks (the evaluation itself: evaluate_policy) ------------------
        def train_chunk(runner: replay.Runner):
            runner, losses = jax.lax.scan(update_step, runner, None, updates_per_eval)
            key, k_eval = jax.random.split(runner.key)
            params = runner.learner.params
            loss = losses.mean()
            finite = all_finite(params) & jnp.isfinite(loss)
            runner = runner._replace(key=key)
            return runner, Trained(policy=params, eval_key=k_eval,
                                   eval_steps=runner.env_steps.astype(jnp.int32),
                                   losses={"q_loss": loss.astype(jnp.float32)}, finite=finite)

        def init(key: jax.Array) -> replay.Runner:
            key, k_init, k_reset = jax.random.split(key, 3)
            obs, env_state = v_reset(jax.random.split(k_reset, num_envs), env_params)
            params = network.init(k_init, jnp.zeros(obs_shape, jnp.float32))
            example = replay.Transition(jnp.zeros(obs_shape, jnp.float32),
                                        jnp.zeros((), jnp.int32), jnp.zeros(()),
                                        jnp.zeros(obs_shape, jnp.float32), jnp.zeros(()))
            return replay.Runner(
                learner=Learner(params, params, tx.init(params), jnp.zeros((), jnp.int32)),
                buffer=replay.init(example, config.buffer_size),
                env_state=env_state, obs=obs, env_steps=jnp.zeros((), jnp.int32), key=key)

        return init, train_chunk

    def evaluate_policy(spec: QSpec, params: Any, key: jax.Array) -> jax.Array:
        """Greedy: argmax Q."""
        network = _q_network(spec, env_id, num_actions)

        def act(obs, _key):
            return jnp.argmax(network.apply(params, obs), axis=-1)

        return evaluate(env, env_params, act, key, budget.eval_episodes).astype(jnp.float32)

    return program(build, evaluate_policy, eval_spec, NOT_IN_INIT)
