"""The environment registry: its JAX-free facts agree with gymnax and Brax, every gymnax
environment is either registered or refused with a reason, the runtime hands the algorithms flat
float32 observations, and PPO trains a few updates on every registered env.

Compiling a tiny PPO program takes 5-25 s per gymnax env on 2 CPU cores and 40-65 s on Brax's
pendulums (cold; the test compile cache makes reruns' XLA part fast), so training is marked
`envs` (slow); on a Brax body, where building the system and compiling take minutes, also
`heavy` (docs/environments.md has the measured times).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler.cost import structure_cost
from hyperlax.environments import ENVS, UNSUPPORTED, unknown_env_message
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import DQNConfig, PPOConfig, SACConfig, declarations
from hyperlax.hyperparams.budget import Budget
from hyperlax.train import envs as runtime_envs
from hyperlax.train.batched import batched_program, replicate_keys, stack

GYMNAX = sorted(i for i, e in ENVS.items() if e.backend == "gymnax")
BRAX = sorted(i for i, e in ENVS.items() if e.backend == "brax")
HAS_BRAX = importlib.util.find_spec("brax") is not None
needs_brax = pytest.mark.skipif(not HAS_BRAX, reason="brax is not installed (the optional "
                                                     "extra: pip install 'hyperlax[brax]')")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- the registry, without running anything ---------------------------------------------------

def test_every_gymnax_env_is_registered_or_refused():
    registered = [e.name for e in ENVS.values() if e.backend == "gymnax"]
    refused = [u.name for u in UNSUPPORTED.values()]
    assert sorted(registered + refused) == sorted(gymnax.registered_envs)
    assert not set(ENVS) & set(UNSUPPORTED)
    assert all(u.id.startswith("gymnax.") and u.reason for u in UNSUPPORTED.values())


def test_ids_and_facts_are_well_formed():
    for env_id, env in ENVS.items():
        assert env_id == env.id == f"{env.backend}.{env_id.split('.', 1)[1]}"
        assert env.obs_size == math.prod(env.obs_shape) >= 1
        assert (env.action_bounds is None) == (env.action_space == "discrete"), env_id
        if env.action_bounds:
            assert env.action_bounds[0] < env.action_bounds[1]


@pytest.mark.envs
@pytest.mark.parametrize("env_id", GYMNAX)
def test_facts_agree_with_gymnax(env_id):
    info = ENVS[env_id]
    env, params = gymnax.make(info.name)
    space, obs_space = env.action_space(params), env.observation_space(params)
    assert info.action_space == ("discrete" if hasattr(space, "n") else "continuous")
    assert info.max_steps_in_episode == params.max_steps_in_episode
    # a discrete observation is one-hot encoded: its shape is the number of values
    raw = (int(obs_space.n),) if hasattr(obs_space, "n") else tuple(obs_space.shape)
    assert info.obs_shape == raw
    if info.action_space == "discrete":
        assert info.action_size == int(space.n)
    else:
        assert info.action_size == int(space.shape[0])
        assert info.action_bounds == (float(jnp.min(space.low)), float(jnp.max(space.high)))
        assert float(jnp.max(space.low)) == info.action_bounds[0]  # the same for every dim


@pytest.mark.envs
@pytest.mark.parametrize("env_id", GYMNAX)
def test_runtime_observations_are_flat_float32(env_id):
    """Traced, not compiled: what ``reset`` and ``step`` return, by shape and dtype."""
    env, params = runtime_envs.make_env(env_id)
    size = ENVS[env_id].obs_size
    assert env.observation_space(params).shape == (size,)
    discrete, n, _, _ = runtime_envs.action_info(env, params)
    key = jax.random.PRNGKey(0)
    obs, state = jax.eval_shape(env.reset, key, params)
    action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros((n,))
    out = jax.eval_shape(env.step, key, state, action, params)
    obs2, reward, final = out[0], out[2], out[5]["final_observation"]
    for x in (obs, obs2, final):
        assert (x.shape, x.dtype) == ((size,), jnp.float32)
    assert reward.dtype == jnp.float32 and out[3].dtype == out[4].dtype == jnp.bool_


def test_a_discrete_observation_is_one_hot():
    env, params = runtime_envs.make_env("gymnax.frozen_lake")
    obs, _ = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[0])  # the start tile


# --- the compiler's checks ----------------------------------------------------------------------

MANIFEST = """\
[sweep]
name = "envs"
recipe = "{recipe}"
recipe_space = "include"
env = "{env}"
num_samples = 1
total_timesteps = 64
num_evaluations = 1
eval_episodes = 1

[fixed]
{fixed}

[space]
"""
PPO_FIXED = ('num_envs = 2\nrollout_length = 8\nupdate_epochs = 1\nnum_minibatches = 1\n'
             '"network.actor.layer_sizes" = [8]\n"network.critic.layer_sizes" = [8]')


SAC_FIXED = ('num_envs = 2\nrollout_length = 2\ntrain_epochs = 1\nwarmup_steps = 4\n'
             'replay_batch_size = 4\nbuffer_size = 16\n"network.actor.layer_sizes" = [8]\n'
             '"network.critic.layer_sizes" = [8]')


@pytest.mark.parametrize("env_id", BRAX)
@pytest.mark.parametrize("recipe, fixed", [("ppo_mlp_small", PPO_FIXED),
                                           ("sac_mlp_small", SAC_FIXED)], ids=["ppo", "sac"])
def test_every_brax_env_plans_with_ppo_and_sac(env_id, recipe, fixed, write_manifest, tmp_path):
    path = write_manifest(MANIFEST.format(recipe=recipe, env=env_id, fixed=fixed))
    result = run("plan", path, "-o", tmp_path / "plan.msgpack")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plan.msgpack").stat().st_size > 0


@pytest.mark.parametrize("env_id", sorted(UNSUPPORTED))
def test_an_unsupported_env_is_refused_with_its_reason(env_id, write_manifest, tmp_path):
    path = write_manifest(MANIFEST.format(recipe="ppo_mlp", env=env_id, fixed=PPO_FIXED))
    result = run("plan", path, "-o", tmp_path / "plan.msgpack")
    assert result.exit_code == 2, result.output
    assert f"sweep.env: {env_id} {UNSUPPORTED[env_id].reason}" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "plan.msgpack").exists()


def test_memory_tasks_run_and_say_they_need_a_recurrent_policy():
    for env_id in ("gymnax.memory_chain", "gymnax.meta_maze", "gymnax.point_robot",
                   "gymnax.bernoulli_bandit", "gymnax.gaussian_bandit"):
        assert ENVS[env_id].note.startswith("needs memory: PPO with network.torso = 'gru'")
    assert "did you mean 'gymnax.breakout_minatar'" in unknown_env_message("gymnax.breakout")


@pytest.mark.parametrize("recipe, env_id, needs", [
    ("dqn_mlp", "gymnax.reacher", "discrete"), ("dqn_mlp", "brax.reacher", "discrete"),
    ("sac_mlp", "gymnax.pong", "continuous"), ("sac_mlp", "gymnax.breakout_minatar",
                                              "continuous")])
def test_action_spaces_are_checked_for_new_envs(recipe, env_id, needs, write_manifest,
                                                  tmp_path):
    path = write_manifest(MANIFEST.format(recipe=recipe, env=env_id, fixed=""))
    result = run("plan", path, "-o", tmp_path / "plan.msgpack")
    assert result.exit_code == 2
    assert f"needs a {needs} action space but {env_id}" in result.output


def test_memory_estimates_grow_with_observation_size():
    budget = Budget(total_timesteps=10_000, num_evaluations=1, eval_episodes=1)
    values = {name: p.default for name, p in declarations(DQNConfig).items()}
    small = structure_cost("dqn", "gymnax.cartpole", values, budget)
    big = structure_cost("dqn", "gymnax.pong", values, budget)
    # the replay buffer holds two observations per transition
    grown = values["buffer_size"] * 2 * (3600 - 4) * 4
    assert big.lane_bytes - small.lane_bytes >= grown


@pytest.mark.parametrize("algorithm, torso, layer_norm, dueling", [
    ("dqn", "cnn", True, True), ("dqn", "cnn", False, False), ("dqn", "mlp", True, True),
    ("ppo", "cnn", True, None), ("ppo", "mlp", False, None)])
def test_parameter_estimates_match_the_networks_built(algorithm, torso, layer_norm, dueling):
    """``show``'s and the memory check's parameter counts include the convolutional torso,
    LayerNorm and the dueling head, exactly as the runtime's networks have them."""
    from hyperlax.train.algos.dqn import _q_network, eval_spec
    from hyperlax.train.networks import mlp

    env = ENVS["gymnax.breakout_minatar"]
    config_type = DQNConfig if algorithm == "dqn" else PPOConfig
    values = {name: p.default for name, p in declarations(config_type).items()}
    values["network.torso"] = torso
    networks = ("q",) if algorithm == "dqn" else ("actor", "critic")
    for name in networks:
        values[f"network.{name}.layer_norm"] = layer_norm
    if dueling is not None:
        values["dueling"] = dueling
    config = config_type.from_values(values)
    obs = jnp.zeros((1, env.obs_size))
    if algorithm == "dqn":
        built = [_q_network(eval_spec(config), env.id, env.action_size)]
    else:
        built = [mlp(config.network("actor"), env.id, out_dim=env.action_size),
                 mlp(config.network("critic"), env.id, out_dim=1)]
    counted = sum(x.size for net in built
                  for x in jax.tree_util.tree_leaves(net.init(jax.random.key(0), obs)))
    budget = Budget(total_timesteps=100_000, num_evaluations=1, eval_episodes=1)
    assert structure_cost(algorithm, env.id, values, budget).params == counted


# --- Brax: facts, and the extra being absent ----------------------------------------------------

@pytest.fixture
def fresh_brax_cache(monkeypatch):
    # an empty cache for this test only: the Brax systems other tests built (minutes each on a
    # CPU) stay cached for the tests after it
    monkeypatch.setattr(runtime_envs, "_brax_env",
                        functools.lru_cache(maxsize=None)(runtime_envs._brax_env.__wrapped__))


# Training even TINY_PPO on these took about two minutes or more each on a 2-core CPU (building
# the Brax system and compiling its step; docs/environments.md has the times): `heavy`, which
# `make test-heavy` runs and `make test` (-m "not heavy") leaves out.
HEAVY_BRAX = {"brax.ant", "brax.halfcheetah", "brax.hopper", "brax.humanoid",
              "brax.humanoidstandup", "brax.pusher", "brax.swimmer", "brax.walker2d"}



def _facts_params():
    # Building a heavy body's system alone takes 25-50 s here; its facts are checked with its
    # training, in `make test-heavy`. Swimmer is built in `make test` anyway (its fluid model's
    # trace test), and the light bodies by their training tests.
    for env_id in BRAX:
        heavy = env_id in HEAVY_BRAX and env_id != "brax.swimmer"
        yield pytest.param(env_id, marks=[pytest.mark.heavy] if heavy else [], id=env_id)


@needs_brax
@pytest.mark.envs
@pytest.mark.parametrize("env_id", list(_facts_params()))
def test_facts_agree_with_brax(env_id):
    info = ENVS[env_id]
    env, params = runtime_envs.make_env(env_id)
    assert info.obs_shape == (env.env.observation_size,)
    assert info.action_size == env.env.action_size
    ctrl = np.asarray(env.env.sys.actuator.ctrl_range)
    # Brax may hold the bounds in float32, where Humanoid's 0.4 is not exact
    bounds = pytest.approx(info.action_bounds, rel=1e-6)
    assert (ctrl[:, 0].min(), ctrl[:, 1].max()) == bounds
    assert ctrl[:, 0].max() == ctrl[:, 0].min() and ctrl[:, 1].max() == ctrl[:, 1].min()
    assert params.max_steps_in_episode == info.max_steps_in_episode
    discrete, size, low, high = runtime_envs.action_info(env, params)
    assert (discrete, size) == (False, info.action_size)
    assert (low, high) == bounds


def test_brax_fluid_clip_takes_the_keywords_jax_removed():
    fluid_jnp = runtime_envs._NumpyForBraxFluid()
    x = jnp.array([-2.0, 0.0, 1e-13, 0.5, 3.0])
    # Brax 0.14.2's call, clip(a_min=1e-12), is JAX's clip(min=1e-12), bit for bit
    np.testing.assert_array_equal(fluid_jnp.clip(x, a_min=1e-12), jnp.clip(x, min=1e-12))
    np.testing.assert_array_equal(fluid_jnp.clip(x, a_min=0.0, a_max=1.0), jnp.clip(x, 0.0, 1.0))
    np.testing.assert_array_equal(fluid_jnp.clip(x, min=0.0, max=1.0), jnp.clip(x, 0.0, 1.0))
    assert fluid_jnp.sum is jnp.sum and fluid_jnp.pi == jnp.pi  # the rest is jax.numpy


@needs_brax
@pytest.mark.envs
def test_swimmer_step_traces_through_brax_fluid_model():
    # tracing Swimmer's step raised TypeError (clip(a_min=...)) before hyperlax translated the
    # keyword; tracing is enough to check it (training it is the heavy test below)
    env, params = runtime_envs.make_env("brax.swimmer")
    assert env.env.sys.enable_fluid  # the fluid model is on the path traced
    obs, state = env.reset(jax.random.key(0), params)
    out = jax.eval_shape(lambda s: env.step(jax.random.key(1), s, jnp.ones(2), params), state)
    assert out[0].shape == obs.shape == (ENVS["brax.swimmer"].obs_size,)


def test_a_brax_env_plans_without_brax_and_exec_names_the_extra(write_manifest, tmp_path,
                                                                monkeypatch,
                                                                fresh_brax_cache):
    monkeypatch.setitem(sys.modules, "brax", None)  # import brax raises ImportError
    path = write_manifest(MANIFEST.format(recipe="ppo_mlp", env="brax.inverted_pendulum",
                                          fixed=PPO_FIXED))
    plan = tmp_path / "plan.msgpack"
    result = run("plan", path, "-o", plan)
    assert result.exit_code == 0, result.output
    result = run("exec", plan, "--output-root", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert "brax.inverted_pendulum needs Brax, which is not installed" in result.output
    assert "pip install 'hyperlax[brax]'" in result.output
    assert "Traceback" not in result.output


def test_make_env_refuses_unknown_and_unsupported_ids():
    for env_id in ("gymnax.simple_bandit", "gymnax.nope"):
        with pytest.raises(HyperlaxError, match="settings.env"):
            runtime_envs.make_env(env_id)


@needs_brax
@pytest.mark.slow
def test_brax_wrapper_truncates_and_resets():
    env, _ = runtime_envs.make_env("brax.inverted_double_pendulum")
    params = runtime_envs.BraxParams(max_steps_in_episode=3)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    action = jnp.zeros((1,))

    def step(carry, key):
        obs, state = carry
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        return (obs, state), (state.time, terminated, truncated, info["final_observation"],
                              obs)

    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    _, (time, terminated, truncated, final, obs) = jax.jit(
        lambda s: jax.lax.scan(step, s, keys))((obs, state))
    # no action: the double pendulum stays up for 3 steps; the 3rd is truncated and resets
    assert not terminated.any()
    np.testing.assert_array_equal(truncated, [False, False, True, False])
    np.testing.assert_array_equal(time, [1, 2, 0, 1])
    assert not np.allclose(final[2], obs[2])  # the reset observation, not the last one
    np.testing.assert_array_equal(final[:2], obs[:2])


# --- training -----------------------------------------------------------------------------------

TINY_PPO = PPOConfig(num_envs=2, rollout_length=8, update_epochs=1, num_minibatches=1,
                     actor_layer_sizes=[8], critic_layer_sizes=[8])
TINY_BUDGET = Budget(total_timesteps=32, num_evaluations=1, eval_episodes=1)  # 2 updates


# Compiling dominates these tests and they check that training runs, not how fast: XLA's
# cheapest backend optimization halves the compile (Freeway-MinAtar: 16 s -> 7 s).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def train_tiny(algorithm: str, env_id: str, config) -> object:
    return batched_program(algorithm, env_id, TINY_BUDGET).run(
        stack([config]), replicate_keys([0], 1), compiler_options=FAST_COMPILE)


def check_trained(metrics, steps: int) -> None:
    assert np.isfinite(metrics.eval_returns).all(), metrics.eval_returns
    assert metrics.finite.all()
    assert metrics.eval_steps.ravel().tolist() == [steps]


# test_ppo trains PPO on these through the same entry point and env wrapper
TRAINED_ELSEWHERE = {"gymnax.cartpole", "gymnax.pendulum"}


def _training_params():
    for env_id in sorted(set(GYMNAX) - TRAINED_ELSEWHERE):
        yield pytest.param(env_id, id=env_id)
    for env_id in BRAX:
        marks = [needs_brax] + ([pytest.mark.heavy] if env_id in HEAVY_BRAX else [])
        yield pytest.param(env_id, marks=marks, id=env_id)


@pytest.mark.envs
@pytest.mark.parametrize("env_id", list(_training_params()))
def test_ppo_trains_a_few_updates(env_id):
    check_trained(train_tiny("ppo", env_id, TINY_PPO), steps=32)


TINY_DQN = DQNConfig(num_envs=2, rollout_length=2, train_epochs=1, warmup_steps=4,
                     replay_batch_size=4, buffer_size=16, q_layer_sizes=[8])
TINY_SAC = SACConfig(num_envs=2, rollout_length=2, train_epochs=1, warmup_steps=4,
                     replay_batch_size=4, buffer_size=16, actor_layer_sizes=[8],
                     critic_layer_sizes=[8])


@pytest.mark.envs
@pytest.mark.parametrize("algorithm, env_id, config", [
    ("dqn", "gymnax.breakout_minatar", TINY_DQN),   # image observations in the replay buffer
    ("sac", "gymnax.reacher", TINY_SAC),            # two action dimensions, scaled to bounds
], ids=["dqn-breakout", "sac-reacher"])
def test_replay_algorithms_train_on_new_envs(algorithm, env_id, config):
    check_trained(train_tiny(algorithm, env_id, config), steps=32)
