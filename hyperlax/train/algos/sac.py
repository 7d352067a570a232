"""SAC for continuous gymnax environments: tanh-squashed Gaussian actor, twin Q critics with
soft-updated targets, automatic entropy tuning, an on-device replay buffer.

Shaped like the other algorithms: ``make_program`` does the Python setup and returns the pure
``init(config, key)``, ``train(config, runner)`` and ``evaluate(spec, policy, key)``
(``algos.Program``; ``train.batched`` runs them as exec does). Training is nested ``lax.scan``s
(evaluation chunks > iterations > env steps | gradient steps) with NamedTuple carries.

Choices, so a reader need not reverse-engineer them:

- Actor: MLP trunk, then linear heads for the mean and the log-std of a diagonal Gaussian;
  log-std is clipped to [-5, 2]. The sample ``u`` is squashed and scaled to the bounds,
  ``a = tanh(u) * scale + center``; its log-prob includes the tanh and scale Jacobians.
  Evaluation acts deterministically with ``tanh(mean) * scale + center``.
- Critics: two independent MLPs on ``concat(obs, action)``; the TD target is
  ``r + gamma * (1 - terminated) * (min(Q1', Q2')(s', a') - alpha * log pi(a'|s'))`` with
  ``a' ~ pi(.|s')``, target critics following the critics by Polyak averaging with ``tau``
  after every gradient step. Critic loss: ``mean((Q1 - y)^2) + mean((Q2 - y)^2)``.
- Temperature: ``log_alpha`` starts at ``log(init_alpha)`` and minimizes
  ``-log_alpha * (log pi + target_entropy)``, target entropy ``-target_entropy_scale *
  action_dim``; with ``learn_alpha`` false (data: the update is gated like warm-up's) it stays
  ``init_alpha``. One gradient step updates the critics, then the actor (against the updated
  critics), then the temperature (with the actor's fresh log-probs).
- Three optimizers, each ``networks.make_optimizer`` (Adam after global-norm clipping) so the
  learning rates and the clip norm are data.
- Networks are ``networks.MLP`` trunks (each its own activation and layer norm) with flax's
  default (LeCun-normal) initialization, which also keeps QR decompositions (orthogonal
  init) out of the vmapped, possibly sharded, program.
- Observation normalization (``normalize_observations``): running statistics as PPO's
  (``obs_norm``), kept in the learner and updated after every vectorized env step with that
  step's observations. The replay buffer keeps raw observations; the actor acts on normalized
  ones, and each sampled batch's observations and next observations are normalized with the
  statistics of that moment (as rejax and SB3 do). Evaluation uses them frozen.
- Warm-up: actions are uniform in the bounds and no update is applied (``jnp.where`` on the
  traced env-step count) until ``warmup_steps`` env steps were collected. Reported losses
  are the mean over all of a chunk's gradient steps; during warm-up they are evaluated (at
  the untouched parameters) but not applied. ``alpha`` is the temperature after each step.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hyperlax.hyperparams.budget import Budget
from hyperlax.hyperparams.config import NetworkShape
from hyperlax.hyperparams.sac import SACConfig
from hyperlax.train import replay
from hyperlax.train.algos.common import (ActorPolicy, ActorSpec, Program, Trained,
                                           all_finite, check_config, program)
from hyperlax.train.algos.common import actor_spec as eval_spec
from hyperlax.train.envs import action_info, evaluate, make_env
from hyperlax.train.networks import MLP, make_optimizer
from hyperlax.train.obs_norm import ObsNorm, norm_init, norm_update, normalize

CONFIG = SACConfig  # what this module trains (the registry finds it by its name)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --- networks ----------------------------------------------------------------------------

def _trunk(shape: NetworkShape) -> MLP:
    return MLP(shape.layer_sizes, shape.activation, layer_norm=shape.layer_norm)


class Actor(nn.Module):
    """Mean and log-std (clipped) of the pre-squash Gaussian."""

    shape: NetworkShape
    action_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _trunk(self.shape)(obs)
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.clip(nn.Dense(self.action_dim)(x), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


class TwinCritic(nn.Module):
    """Two independent Q(s, a) MLPs; returns both, shape [2, ...]."""

    shape: NetworkShape

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [nn.Dense(1)(_trunk(self.shape)(x))[..., 0] for _ in range(2)]
        return jnp.stack(qs)


# --- carries and batches -------------------------------------------------------------------

class Learner(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    norm: ObsNorm  # observation statistics (initial, unused, unless normalize_observations)


def _actor(spec: ActorSpec, action_dim: int) -> Actor:
    """The actor, from the evaluation's spec: training and evaluation build it alike."""
    return Actor(spec.actor, action_dim)


# What ``init`` does not read (the rest of the structure is its spec: algos, ``init_spec``).
NOT_IN_INIT = ("rollout_length", "train_epochs", "replay_batch_size")


class Losses(NamedTuple):
    q_loss: jax.Array
    actor_loss: jax.Array
    alpha: jax.Array


def make_program(env_id: str, budget: Budget) -> Program:
    env, env_params = make_env(env_id)
    discrete, action_dim, low, high = action_info(env, env_params)
    if discrete:
        raise ValueError(f"sac needs a continuous action space; {env_id} is discrete")
    scale, center = (high - low) / 2.0, (high + low) / 2.0
    obs_shape = env.observation_space(env_params).shape
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def build(config: SACConfig):
        """(init(key) -> Runner, train_chunk(Runner) -> (Runner, Trained)) of one structure."""
        # Structural fields are Python values here (static in the pytree): shapes and loops.
        check_config(config)
        num_envs, rollout_length = config.num_envs, config.rollout_length
        train_epochs, batch_size = config.train_epochs, config.replay_batch_size
        updates_per_eval, _ = budget.updates(config.steps_per_update())
        warmup_steps = config.warmup_steps  # data: compared with a traced counter only
        actor = _actor(eval_spec(config), action_dim)
        critic = TwinCritic(config.network("critic"))
        normalize_obs = config.normalize_observations

        def prepare(norm: ObsNorm, obs: jax.Array) -> jax.Array:
            return normalize(norm, obs) if normalize_obs else obs

        def sample_action(actor_params, obs, key):
            """Squashed, scaled action and its log-prob (summed over action dimensions)."""
            mean, log_std = actor.apply(actor_params, obs)
            noise = jax.random.normal(key, mean.shape)
            u = mean + jnp.exp(log_std) * noise
            log_prob = -0.5 * noise ** 2 - log_std - _HALF_LOG_2PI
            # log |d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable
            log_prob -= 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)) + math.log(scale)
            return jnp.tanh(u) * scale + center, log_prob.sum(-1)

        actor_tx, critic_tx, alpha_tx = (make_optimizer(lr, config.max_grad_norm) for lr in
                                          (config.actor_lr, config.q_lr, config.alpha_lr))
        target_entropy = -config.target_entropy_scale * action_dim

        # --- acting ------------------------------------------------------------------
        def env_step(runner: replay.Runner, _):
            key, k_policy, k_random, k_env = jax.random.split(runner.key, 4)
            learner = runner.learner
            policy, _ = sample_action(learner.actor_params, prepare(learner.norm, runner.obs),
                                      k_policy)
            random = jax.random.uniform(k_random, (num_envs, action_dim), minval=low,
                                        maxval=high)
            action = jnp.where(runner.env_steps < warmup_steps, random, policy)
            obs, env_state, reward, terminated, _, info = v_step(
                jax.random.split(k_env, num_envs), runner.env_state, action, env_params)
            transition = replay.Transition(runner.obs, action, reward.astype(jnp.float32),
                                    info["final_observation"], terminated.astype(jnp.float32))
            if normalize_obs:
                runner = runner._replace(learner=learner._replace(
                    norm=norm_update(learner.norm, obs)))
            runner = runner._replace(env_state=env_state, obs=obs, key=key,
                                     env_steps=runner.env_steps + num_envs)
            return runner, transition

        # --- learning ----------------------------------------------------------------
        def critic_loss(critic_params, learner: Learner, batch: replay.Transition, key):
            next_action, next_log_prob = sample_action(learner.actor_params, batch.next_obs, key)
            next_q = critic.apply(learner.target_critic_params, batch.next_obs, next_action)
            alpha = jnp.exp(learner.log_alpha)
            next_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
            target = batch.reward + config.gamma * (1.0 - batch.done) * next_value
            q = critic.apply(critic_params, batch.obs, batch.action)
            return jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=-1))

        def actor_loss(actor_params, learner: Learner, batch: replay.Transition, key):
            action, log_prob = sample_action(actor_params, batch.obs, key)
            q = jnp.min(critic.apply(learner.critic_params, batch.obs, action), axis=0)
            alpha = jnp.exp(learner.log_alpha)
            return jnp.mean(alpha * log_prob - q), log_prob

        def alpha_loss(log_alpha, log_prob):
            return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))

        def gradient_step(carry, key):
            learner, buffer, learning = carry
            k_batch, k_critic, k_actor = jax.random.split(key, 3)
            batch = replay.sample(buffer, k_batch, batch_size)
            if normalize_obs:  # raw in the buffer, normalized with today's statistics
                batch = batch._replace(obs=normalize(learner.norm, batch.obs),
                                       next_obs=normalize(learner.norm, batch.next_obs))

            def gate(new: Learner, old: Learner, on: jax.Array = learning) -> Learner:
                # warm-up: nothing is applied until enough env steps were collected, so every
                # loss below is also evaluated at the current (untouched) parameters
                return jax.tree.map(lambda n, o: jnp.where(on, n, o), new, old)

            q_loss, grads = jax.value_and_grad(critic_loss)(
                learner.critic_params, learner, batch, k_critic)
            updates, critic_opt = critic_tx.update(grads, learner.critic_opt,
                                                   learner.critic_params)
            learner = gate(learner._replace(
                critic_params=optax.apply_updates(learner.critic_params, updates),
                critic_opt=critic_opt), learner)

            (pi_loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
                learner.actor_params, learner, batch, k_actor)
            updates, actor_opt = actor_tx.update(grads, learner.actor_opt,
                                                 learner.actor_params)
            learner = gate(learner._replace(
                actor_params=optax.apply_updates(learner.actor_params, updates),
                actor_opt=actor_opt), learner)

            grads = jax.grad(alpha_loss)(learner.log_alpha, log_prob)
            updates, alpha_opt = alpha_tx.update(grads, learner.alpha_opt, learner.log_alpha)
            # a fixed temperature: the update is computed and dropped, as during warm-up
            learner = gate(learner._replace(
                log_alpha=optax.apply_updates(learner.log_alpha, updates), alpha_opt=alpha_opt),
                learner, on=learning & config.learn_alpha)

            learner = gate(learner._replace(target_critic_params=optax.incremental_update(
                learner.critic_params, learner.target_critic_params, config.tau)), learner)
            losses = Losses(q_loss, pi_loss, jnp.exp(learner.log_alpha))
            return (learner, buffer, learning), losses

        def update_step(runner: replay.Runner, _):
            runner, losses = replay.collect_and_train(
                runner, env_step, gradient_step, rollout_length=rollout_length,
                warmup_steps=warmup_steps, train_epochs=train_epochs)
            return runner, jax.tree.map(jnp.mean, losses)

        # --- evaluation chunks (the evaluation itself: evaluate_policy) ------------------
        def train_chunk(runner: replay.Runner):
            runner, losses = jax.lax.scan(update_step, runner, None, updates_per_eval)
            key, k_eval = jax.random.split(runner.key)
            losses = jax.tree.map(jnp.mean, losses)
            learner = runner.learner
            finite = (all_finite((learner.actor_params, learner.critic_params,
                                  learner.target_critic_params, learner.log_alpha))
                      & all_finite(losses))
            runner = runner._replace(key=key)
            return runner, Trained(policy=ActorPolicy(learner.actor_params, learner.norm),
                                   eval_key=k_eval,
                                   eval_steps=runner.env_steps.astype(jnp.int32),
                                   losses={name: value.astype(jnp.float32)
                                           for name, value in losses._asdict().items()},
                                   finite=finite)

        def init(key: jax.Array) -> replay.Runner:
            key, k_actor, k_critic, k_reset = jax.random.split(key, 4)
            obs, env_state = v_reset(jax.random.split(k_reset, num_envs), env_params)
            dummy_obs = jnp.zeros(obs_shape, jnp.float32)
            dummy_action = jnp.zeros((action_dim,), jnp.float32)
            actor_params = actor.init(k_actor, dummy_obs)
            critic_params = critic.init(k_critic, dummy_obs, dummy_action)
            log_alpha = jnp.log(config.init_alpha).astype(jnp.float32)
            norm = norm_init(obs_shape)
            if normalize_obs:
                norm = norm_update(norm, obs)
            learner = Learner(actor_params, critic_params, critic_params, log_alpha,
                              actor_tx.init(actor_params), critic_tx.init(critic_params),
                              alpha_tx.init(log_alpha), norm)
            example = replay.Transition(dummy_obs, dummy_action, jnp.zeros(()), dummy_obs,
                                        jnp.zeros(()))
            return replay.Runner(learner, replay.init(example, config.buffer_size), env_state,
                                 obs, jnp.zeros((), jnp.int32), key)

        return init, train_chunk

    def evaluate_policy(spec: ActorSpec, policy: ActorPolicy, key: jax.Array) -> jax.Array:
        """Deterministic: ``tanh(mean) * scale + center``."""
        actor = _actor(spec, action_dim)

        def act(obs, _key):
            if spec.normalize:
                obs = normalize(policy.norm, obs)
            mean, _ = actor.apply(policy.actor_params, obs)
            return jnp.tanh(mean) * scale + center

        return evaluate(env, env_params, act, key, budget.eval_episodes).astype(jnp.float32)

    return program(build, evaluate_policy, eval_spec, NOT_IN_INIT)
