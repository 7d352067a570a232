"""PPO for discrete and continuous actions, with an MLP, CNN or GRU torso.

Shaped like purejaxrl's ``ppo.py``: ``make_program`` does the Python setup and returns the pure
``init(config, key)``, ``train(config, runner)`` and ``evaluate(spec, policy, key)``
(``algos.Program``; ``train.batched`` runs them as exec does). Training is nested ``lax.scan``s
(evaluation chunks > updates > rollout steps | epochs > minibatches) over small named steps,
with NamedTuple carries.

Choices, so a reader need not reverse-engineer them:

- Policy: categorical over logits (discrete), or a diagonal Gaussian whose mean is the actor
  MLP's output and whose log-std is a state-independent learnable vector initialized to 0
  (std 1). Sampled actions are stored unclipped (their log-prob is exact) and clipped to the
  action bounds only when stepping the env. Evaluation is deterministic: argmax of the logits,
  or the Gaussian mean clipped to the bounds.
- Separate actor and critic networks (``networks.mlp``: each with its own activation and
  layer norm, both behind the convolutional torso when ``network.torso`` is "cnn") with
  separate optimizers, each ``networks.make_optimizer`` (Adam, eps 1e-5, after gradient
  clipping: each network's global norm, or each element with ``grad_clip_mode``
  "per_element") so the learning rates and the clip bound are data. The loss is
  ``policy_loss - ent_coef * entropy + vf_coef * value_loss``.
- Value loss: ``0.5 * (V - target)^2``; with ``clip_value_loss``, as in purejaxrl, CleanRL
  and rejax, ``0.5 * max((V - target)^2, (V_clipped - target)^2)`` with ``V_clipped`` the
  rollout's value moved towards V by at most ``clip_eps``: its gradient, by regressing the
  elements where the clipped error wins onto their own (constant) value (``_value_loss``), so
  that with the flag off the arithmetic is exactly the plain loss's. Advantages are
  standardized per minibatch unless ``standardize_advantages`` is false; both learning rates
  decay linearly to 0 over training when ``decay_learning_rates`` is true.
- Bootstrapping (gymnax >= 1.0 step API): on termination the next-state value is 0; on a
  truncation that is not also a termination it is the critic's value of
  ``info["final_observation"]``; the GAE recursion is cut at every episode end.
- Observation normalization (``normalize_observations``): running mean/variance
  (parallel Welford, count starting at 1e-4, first updated from the initial reset
  observations) kept in the training carry and updated after every vectorized env step with
  that step's observations; the policy sees ``clip((obs - mean) / sqrt(var + 1e-8), -10, 10)``.
  The rollout stores the normalized observations it acted on, so the update's log-probs match
  the behaviour policy's. Evaluation uses the statistics at that point, frozen.
- Recurrent torso (``network.torso`` "gru", as purejaxrl's ``ppo_rnn.py``): actor and critic
  each start with a GRU cell of ``network.gru_hidden_size`` units (``train.recurrent``; each
  its own, like the MLPs). The runner carries both hidden states and each env's "first step of
  an episode" flag (``Runner.memory``); a step that ends an episode zeros its env's hidden
  states. The rollout stores the memory each step started from; the update cuts every env's
  rollout into sequences of ``sequence_length`` steps (0: the whole rollout), replays each
  from the hidden states stored at its first step, resetting where acting did, and its
  minibatches are whole sequences (split along envs and sequence starts, never along time).
  The bootstrap value of a truncated episode's final observation steps the critic on from
  that step's hidden state. Evaluation carries the actor's hidden state through each episode.
  Feed-forward PPO traces exactly the code it did before (``memory`` is None: no leaves).
- Losses (``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``) are means over every
  minibatch step of a chunk's updates.
- Evaluation at the end of each chunk uses ``hyperlax.train.envs.evaluate``; it depends on
  the actor's layers and activation and on ``normalize_observations`` only (``algos.ActorSpec``).
  ``finite`` is True when every actor and critic parameter and every chunk loss is finite; a
  diverging sample keeps running (on NaNs) and simply reports False.
- The rollout step evaluates the critic on the observations and on the final observations as
  two matmuls: one matmul on both stacked is not bit-identical on XLA:CPU (other losses).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperlax.hyperparams.budget import Budget
from hyperlax.hyperparams.ppo import PPOConfig
from hyperlax.train.algos.common import (ActorPolicy, ActorSpec, Program, Trained,
                                           all_finite, check_config, program,
                                           shuffled_minibatches)
from hyperlax.train.algos.common import actor_spec as eval_spec
from hyperlax.train.envs import action_info, evaluate, make_env
from hyperlax.train.networks import MLP, make_optimizer, mlp
from hyperlax.train.obs_norm import ObsNorm
from hyperlax.train.obs_norm import norm_init as _norm_init
from hyperlax.train.obs_norm import norm_update as _norm_update
from hyperlax.train.obs_norm import normalize as _normalize
from hyperlax.train.recurrent import (GRUNet, Memory, forget_ended, gru_net, initial_hidden,
                                      replay, sequence_starts, start_memory, to_sequences)

CONFIG = PPOConfig  # what this module trains (the registry finds it by its name)
LOSS_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl")
_LOG_2PI = float(np.log(2.0 * np.pi))


# --- carries and batches -------------------------------------------------------------------

class Learner(NamedTuple):
    actor_params: Any
    critic_params: Any
    actor_opt: Any
    critic_opt: Any


class Runner(NamedTuple):
    learner: Learner
    norm: ObsNorm
    env_state: Any
    obs: jax.Array  # raw observations the envs are in now, [num_envs, *obs_shape]
    key: jax.Array
    env_steps: jax.Array  # int32: env steps trained so far (updated once per chunk)
    memory: Any = None    # the GRU torso's ``Memory``; None (no leaves) for feed-forward


class Transition(NamedTuple):
    obs: jax.Array        # normalized observation acted on
    action: jax.Array     # sampled (unclipped) action
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array       # terminated or truncated: the GAE recursion stops here
    bootstrap: jax.Array  # value of the next state at an episode end (0 on termination)
    memory: Any = None    # GRU torso: the ``Memory`` the step started from


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array      # the rollout's value estimate (value-loss clipping moves from it)
    advantage: jax.Array
    target: jax.Array
    memory: Any = None    # GRU torso: each sequence's starting hidden states, its first flags


class Epoch(NamedTuple):
    learner: Learner
    batch: Batch  # the update's whole flattened rollout, reshuffled each epoch


class Losses(NamedTuple):
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array


# --- small pure helpers --------------------------------------------------------------------

def _gae(traj: Transition, last_value: jax.Array, gamma, gae_lambda):
    """Advantages and value targets of a [T, num_envs] trajectory."""

    def step(carry, t: Transition):
        advantage, next_value = carry
        next_value = jnp.where(t.done, t.bootstrap, next_value)
        delta = t.reward + gamma * next_value - t.value
        advantage = delta + gamma * gae_lambda * jnp.where(t.done, 0.0, advantage)
        return (advantage, t.value), advantage

    init = (jnp.zeros_like(last_value), last_value)
    _, advantages = jax.lax.scan(step, init, traj, reverse=True)
    return advantages, advantages + traj.value


def _value_loss(value, old_value, target, clip_eps, clip):
    """(the loss to differentiate, the loss to report): ``0.5 * mean((value - target)^2)``,
    or with ``clip`` (a traced bool) PPO's clipped value loss ``0.5 * mean(max((value -
    target)^2, (clipped - target)^2))``, ``clipped`` the old value moved towards ``value`` by
    at most ``clip_eps``.

    Where the clipped error is the larger and clipping is active (|value - old| > clip_eps),
    the max's gradient is 0: such elements are regressed onto the (constant) value itself,
    which gives that gradient. Written so, ``value`` has one differentiable use, as in the
    plain loss: each formulation that gave it a second one (the clipped excess added, selected
    by the flag) changed XLA:CPU's arithmetic, and with the flag off results were no longer
    bit-identical to the plain loss's. The reported loss is the plain one's own expression,
    selected as a scalar, for the same reason."""
    sg = jax.lax.stop_gradient
    moved = sg(value) - old_value
    clipped = old_value + jnp.clip(moved, -clip_eps, clip_eps)
    clipped_error = jnp.square(clipped - target)
    plain_error = jnp.square(sg(value) - target)
    use_clipped = clip & (jnp.abs(moved) > clip_eps) & (clipped_error > plain_error)
    regress_to = jnp.where(use_clipped, sg(value), target)  # off: exactly ``target``
    loss = 0.5 * jnp.square(value - regress_to).mean()
    plain = 0.5 * plain_error.mean()
    excess = 0.5 * jnp.where(use_clipped, clipped_error - plain_error, 0.0).mean()
    return loss, jnp.where(clip, plain + excess, plain)


def _actor(spec: ActorSpec, env_id: str, action_dim: int) -> MLP | GRUNet:
    """The actor, from the evaluation's spec: training and evaluation build it alike."""
    if spec.actor.gru:
        return gru_net(spec.actor, out_dim=action_dim, gain=2.0 ** 0.5, head_gain=0.01)
    return mlp(spec.actor, env_id, out_dim=action_dim, gain=2.0 ** 0.5, head_gain=0.01)


def _critic(shape, env_id: str) -> MLP | GRUNet:
    if shape.gru:
        return gru_net(shape, out_dim=1, gain=2.0 ** 0.5, head_gain=1.0)
    return mlp(shape, env_id, out_dim=1, gain=2.0 ** 0.5, head_gain=1.0)


# What ``init`` does not read (the rest of the structure is its spec: algos, ``init_spec``).
# The optimizers' learning-rate schedule closes over the update counts they give, but
# ``init`` evaluates it at step 0 only, where it is the rate itself whatever the counts.
NOT_IN_INIT = ("rollout_length", "update_epochs", "num_minibatches", "sequence_length")


# --- make_program ----------------------------------------------------------------------------

def make_program(env_id: str, budget: Budget) -> Program:
    env, env_params = make_env(env_id)
    discrete, action_dim, action_low, action_high = action_info(env, env_params)
    obs_shape = tuple(env.observation_space(env_params).shape)

    def env_action(action):
        """What the env is stepped with: sampled actions clipped to the bounds (continuous),
        also the evaluation's Gaussian mean."""
        return action if discrete else jnp.clip(action, action_low, action_high)

    def build(config: PPOConfig):
        """(init(key) -> Runner, train_chunk(Runner) -> (Runner, Trained)) of one structure."""
        # Structural fields are Python values here (static in the pytree): shapes and loops.
        check_config(config)
        num_envs, rollout_length = config.num_envs, config.rollout_length
        update_epochs, num_minibatches = config.update_epochs, config.num_minibatches
        normalize = config.normalize_observations
        batch_size = num_envs * rollout_length
        updates_per_eval, _ = budget.updates(batch_size)
        last_step = budget.num_evaluations * updates_per_eval * batch_size
        if last_step > np.iinfo(np.int32).max:
            raise ValueError(f"{last_step} env steps do not fit the int32 eval_steps")
        actor = _actor(eval_spec(config), env_id, action_dim)
        critic = _critic(config.network("critic"), env_id)
        units = config.network("actor").gru  # 0: feed-forward
        seq_length, num_sequences = config.sequence_shape()
        seq_minibatch = num_sequences // num_minibatches

        # --- policy and value ---

        def value_fn(critic_params, obs):
            return critic.apply(critic_params, obs)[..., 0]

        def dist_params(actor_params, obs):
            out = actor.apply(actor_params["net"], obs)
            return out, actor_params.get("log_std")

        def log_prob_entropy(actor_params, obs, action):
            out, log_std = dist_params(actor_params, obs)
            return logp_entropy(out, log_std, action)

        def logp_entropy(out, log_std, action):
            if discrete:
                logp_all = jax.nn.log_softmax(out)
                logp = jnp.take_along_axis(logp_all, action[..., None].astype(jnp.int32),
                                           axis=-1)[..., 0]
                entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
            else:
                z = (action - out) * jnp.exp(-log_std)
                logp = jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)
                entropy = jnp.broadcast_to(jnp.sum(0.5 + 0.5 * _LOG_2PI + log_std),
                                           logp.shape)
            return logp, entropy

        def draw(out, log_std, key):
            if discrete:
                return jax.random.categorical(key, out, axis=-1)
            return out + jnp.exp(log_std) * jax.random.normal(key, out.shape)

        def sample_action(actor_params, obs, key):
            out, log_std = dist_params(actor_params, obs)
            action = draw(out, log_std, key)
            logp, _ = log_prob_entropy(actor_params, obs, action)
            return action, logp

        def sample_from(out, log_std, key):
            """The GRU torso's sampling, from the actor's output of this step."""
            action = draw(out, log_std, key)
            logp, _ = logp_entropy(out, log_std, action)
            return action, logp

        def prepare(norm, obs):
            return _normalize(norm, obs) if normalize else obs

        gamma, gae_lambda, clip_eps = config.gamma, config.gae_lambda, config.clip_eps
        steps_per_update = update_epochs * num_minibatches
        num_updates = budget.num_evaluations * updates_per_eval

        def learning_rate(rate):
            """purejaxrl's linear decay when ``decay_learning_rates``: the full rate during the
            first update, 1/num_updates less each update after. A schedule of the optimizer's
            own step count, selected by data, so the flag costs no compile; off, the rate is
            exactly ``rate``."""
            def at(count):
                frac = 1.0 - (count // steps_per_update) / num_updates
                return jnp.where(config.decay_learning_rates, rate * frac, rate)
            return at

        actor_tx = make_optimizer(learning_rate(config.actor_lr), config.max_grad_norm,
                                  eps=1e-5, grad_clip_mode=config.grad_clip_mode)
        critic_tx = make_optimizer(learning_rate(config.critic_lr), config.max_grad_norm,
                                   eps=1e-5, grad_clip_mode=config.grad_clip_mode)

        def env_step(runner: Runner, _):
            learner, norm = runner.learner, runner.norm
            key, act_key, step_key = jax.random.split(runner.key, 3)
            obs = prepare(norm, runner.obs)
            action, log_prob = sample_action(learner.actor_params, obs, act_key)
            value = value_fn(learner.critic_params, obs)
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, num_envs), runner.env_state, env_action(action),
                env_params)
            final_value = value_fn(learner.critic_params,
                                   prepare(norm, info["final_observation"]))
            bootstrap = jnp.where(terminated, 0.0, final_value)
            if normalize:
                norm = _norm_update(norm, next_obs)
            transition = Transition(obs, action, log_prob, value, reward.astype(jnp.float32),
                                    terminated | truncated, bootstrap)
            return runner._replace(norm=norm, env_state=env_state, obs=next_obs,
                                   key=key), transition

        def recurrent_env_step(runner: Runner, _):
            """``env_step`` with the GRU torso: both networks step from the memory, which
            forgets the envs whose episode ended."""
            learner, norm, memory = runner.learner, runner.norm, runner.memory
            key, act_key, step_key = jax.random.split(runner.key, 3)
            obs = prepare(norm, runner.obs)
            actor_hidden, out = actor.apply(learner.actor_params["net"], memory.actor, obs,
                                            memory.first)
            action, log_prob = sample_from(out, learner.actor_params.get("log_std"), act_key)
            critic_hidden, value = critic.apply(learner.critic_params, memory.critic, obs,
                                                memory.first)
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, num_envs), runner.env_state, env_action(action),
                env_params)
            # the final observation continues the episode: the critic steps on from this
            # step's hidden state
            _, final_value = critic.apply(learner.critic_params, critic_hidden,
                                          prepare(norm, info["final_observation"]),
                                          jnp.zeros_like(memory.first))
            bootstrap = jnp.where(terminated, 0.0, final_value[..., 0])
            if normalize:
                norm = _norm_update(norm, next_obs)
            done = terminated | truncated
            transition = Transition(obs, action, log_prob, value[..., 0],
                                    reward.astype(jnp.float32), done, bootstrap, memory)
            return runner._replace(norm=norm, env_state=env_state, obs=next_obs, key=key,
                                   memory=forget_ended(actor_hidden, critic_hidden, done)
                                   ), transition

        def minibatch_logp_entropy(actor_params, mb: Batch):
            if not units:
                return log_prob_entropy(actor_params, mb.obs, mb.action)
            out = replay(actor, actor_params["net"], mb.memory.actor, mb.obs, mb.memory.first)
            return logp_entropy(out, actor_params.get("log_std"), mb.action)

        def minibatch_value(critic_params, mb: Batch):
            if not units:
                return value_fn(critic_params, mb.obs)
            return replay(critic, critic_params, mb.memory.critic, mb.obs,
                          mb.memory.first)[..., 0]

        def loss_fn(params, mb: Batch):
            actor_params, critic_params = params
            log_prob, entropy = minibatch_logp_entropy(actor_params, mb)
            log_ratio = log_prob - mb.log_prob
            ratio = jnp.exp(log_ratio)
            # Selecting the shift and scale, not the standardized array, keeps the flag-on
            # arithmetic (and XLA's fusion of it) exactly as before the flag existed:
            # bit-identical results. Off, (a - 0) / 1 is a, exactly.
            on = config.standardize_advantages
            shift = jnp.where(on, mb.advantage.mean(), 0.0)
            scale = jnp.where(on, mb.advantage.std() + 1e-8, 1.0)
            adv = (mb.advantage - shift) / scale
            policy_loss = -jnp.minimum(ratio * adv,
                                       jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
                                       ).mean()
            value_loss, reported_value_loss = _value_loss(
                minibatch_value(critic_params, mb), mb.value, mb.target, clip_eps,
                config.clip_value_loss)
            entropy = entropy.mean()
            total = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            return total, Losses(policy_loss, reported_value_loss, entropy, approx_kl)

        def minibatch_step(learner: Learner, mb: Batch):
            grads, losses = jax.grad(loss_fn, has_aux=True)(
                (learner.actor_params, learner.critic_params), mb)
            actor_updates, actor_opt = actor_tx.update(grads[0], learner.actor_opt,
                                                       learner.actor_params)
            critic_updates, critic_opt = critic_tx.update(grads[1], learner.critic_opt,
                                                          learner.critic_params)
            return Learner(optax.apply_updates(learner.actor_params, actor_updates),
                           optax.apply_updates(learner.critic_params, critic_updates),
                           actor_opt, critic_opt), losses

        def epoch_step(carry: Epoch, epoch_key):
            learner, batch = carry
            minibatches = shuffled_minibatches(epoch_key, batch, batch_size, num_minibatches)
            learner, losses = jax.lax.scan(minibatch_step, learner, minibatches)
            return Epoch(learner, batch), losses

        def sequence_epoch_step(carry: Epoch, epoch_key):
            """``epoch_step`` with the GRU torso: minibatches of whole sequences [L, B]."""
            learner, batch = carry
            order = jax.random.permutation(epoch_key, num_sequences)

            def split(x):  # [L, S, ...] -> [minibatches, L, S / minibatches, ...]
                x = x[:, order].reshape((seq_length, num_minibatches, seq_minibatch)
                                        + x.shape[2:])
                return jnp.swapaxes(x, 0, 1)

            def split_starts(x):  # [S, units] -> [minibatches, S / minibatches, units]
                return x[order].reshape((num_minibatches, seq_minibatch) + x.shape[1:])

            memory = batch.memory
            minibatches = jax.tree.map(split, batch._replace(memory=None))._replace(
                memory=Memory(split_starts(memory.actor), split_starts(memory.critic),
                              split(memory.first)))
            learner, losses = jax.lax.scan(minibatch_step, learner, minibatches)
            return Epoch(learner, batch), losses

        def sequence_batch(traj: Transition, advantages, targets) -> Batch:
            """The rollout [T, N] as sequences [L, S], with each sequence's starting memory."""
            steps = jax.tree.map(lambda x: to_sequences(x, seq_length),
                                 Batch(traj.obs, traj.action, traj.log_prob, traj.value,
                                       advantages, targets))
            memory = traj.memory
            return steps._replace(memory=Memory(sequence_starts(memory.actor, seq_length),
                                                sequence_starts(memory.critic, seq_length),
                                                to_sequences(memory.first, seq_length)))

        def update_step(runner: Runner, _):
            if units:
                runner, traj = jax.lax.scan(recurrent_env_step, runner, None, rollout_length)
                memory = runner.memory
                _, last_value = critic.apply(runner.learner.critic_params, memory.critic,
                                             prepare(runner.norm, runner.obs), memory.first)
                last_value = last_value[..., 0]
            else:
                runner, traj = jax.lax.scan(env_step, runner, None, rollout_length)
                last_value = value_fn(runner.learner.critic_params,
                                      prepare(runner.norm, runner.obs))
            advantages, targets = _gae(traj, last_value, gamma, gae_lambda)
            if units:
                batch = sequence_batch(traj, advantages, targets)
            else:
                batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                                     Batch(traj.obs, traj.action, traj.log_prob, traj.value,
                                           advantages, targets))
            key, epochs_key = jax.random.split(runner.key)
            epoch_keys = jax.random.split(epochs_key, update_epochs)
            (learner, _), losses = jax.lax.scan(sequence_epoch_step if units else epoch_step,
                                                Epoch(runner.learner, batch), epoch_keys)
            losses = jax.tree.map(jnp.mean, losses)
            return runner._replace(learner=learner, key=key), losses

        def train_chunk(runner: Runner):
            runner, losses = jax.lax.scan(update_step, runner, None, updates_per_eval)
            losses = jax.tree.map(jnp.mean, losses)
            key, eval_key = jax.random.split(runner.key)
            learner = runner.learner
            finite = all_finite((learner.actor_params, learner.critic_params, losses))
            env_steps = runner.env_steps + updates_per_eval * batch_size
            return runner._replace(key=key, env_steps=env_steps), Trained(
                policy=ActorPolicy(learner.actor_params, runner.norm), eval_key=eval_key,
                eval_steps=env_steps, losses=losses._asdict(), finite=finite)

        def init(key: jax.Array) -> Runner:  # everything from `key`
            key, actor_key, critic_key, reset_key = jax.random.split(key, 4)
            dummy = jnp.zeros((1,) + obs_shape)
            inputs = (initial_hidden(1, units), dummy, jnp.ones((1,), bool)) if units else \
                (dummy,)
            actor_params = {"net": actor.init(actor_key, *inputs)}
            if not discrete:
                actor_params["log_std"] = jnp.zeros(action_dim)
            critic_params = critic.init(critic_key, *inputs)
            learner = Learner(actor_params, critic_params, actor_tx.init(actor_params),
                              critic_tx.init(critic_params))
            obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
                jax.random.split(reset_key, num_envs), env_params)
            norm = _norm_init(obs_shape)
            if normalize:
                norm = _norm_update(norm, obs)
            return Runner(learner, norm, env_state, obs, key, jnp.zeros((), jnp.int32),
                          start_memory(num_envs, units) if units else None)

        return init, train_chunk

    def evaluate_policy(spec: ActorSpec, policy: ActorPolicy, key: jax.Array) -> jax.Array:
        """Deterministic: argmax of the logits, or the Gaussian mean clipped to the bounds."""
        actor = _actor(spec, env_id, action_dim)

        def act(obs, _key):
            if spec.normalize:
                obs = _normalize(policy.norm, obs)
            out = actor.apply(policy.actor_params["net"], obs)
            return jnp.argmax(out, axis=-1) if discrete else env_action(out)

        def recurrent_act(obs, hidden, _key):
            """One episode's step with the GRU torso: its hidden state carried along."""
            if spec.normalize:
                obs = _normalize(policy.norm, obs)
            hidden, out = actor.apply(policy.actor_params["net"], hidden, obs,
                                      jnp.zeros((), bool))
            return (jnp.argmax(out, axis=-1) if discrete else env_action(out)), hidden

        if spec.actor.gru:  # every episode starts from zeros
            return evaluate(env, env_params, recurrent_act, key, budget.eval_episodes,
                            memory=initial_hidden(1, spec.actor.gru)[0])
        return evaluate(env, env_params, act, key, budget.eval_episodes)

    return program(build, evaluate_policy, eval_spec, NOT_IN_INIT)
