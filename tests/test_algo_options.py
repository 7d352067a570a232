"""Algorithm options users tune (issue 15): each is declared once with its role by use. Scalar
options are data, so lanes that differ only in them share one program (and a sweep sampling them
one structure); each changes results from the update it first acts on, and set so that it cannot
act it leaves them bit-identical. Structural options change the program, and are refused where
they mean nothing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.hyperparams import ALGORITHMS, DQNConfig, PPOConfig, SACConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.ppo import _value_loss
from hyperlax.train.batched import batched_program, lane, replicate_keys, stack


def trained(algorithm, env, budget, configs, seed=7):
    """Every config trained with the same seed, in one program; one metrics tree per lane."""
    metrics = batched_program(algorithm, env, budget).run(
        stack(configs), replicate_keys([seed] * len(configs), 1))
    return [jax.tree.map(np.asarray, lane(metrics, i)) for i in range(len(configs))]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def at(metrics, point):
    """Everything a lane reported at one evaluation point."""
    return jax.tree.map(lambda x: x[..., point], metrics)


# --- roles -------------------------------------------------------------------------------------

ROLES = {
    "ppo": {"clip_value_loss": "scalar", "grad_clip_mode": "structural",
            "network.actor.activation": "structural", "network.critic.activation": "structural",
            "network.actor.layer_norm": "structural", "network.critic.layer_norm": "structural",
            "network.torso": "structural"},
    "dqn": {"double_q": "scalar", "max_abs_reward": "scalar", "dueling": "structural",
            "network.q.activation": "structural", "network.q.layer_norm": "structural",
            "network.torso": "structural"},
    "sac": {"learn_alpha": "scalar", "normalize_observations": "structural",
            "network.actor.activation": "structural", "network.critic.activation": "structural",
            "network.actor.layer_norm": "structural", "network.critic.layer_norm": "structural"},
}
# Today's behaviour: every new option's default.
DEFAULTS = {
    "ppo": {"clip_value_loss": False, "grad_clip_mode": "global_norm", "network.torso": "mlp",
            "network.actor.activation": "same", "network.actor.layer_norm": False},
    "dqn": {"double_q": True, "max_abs_reward": 0.0, "dueling": False, "network.torso": "mlp",
            "network.q.activation": "same", "network.q.layer_norm": False},
    "sac": {"learn_alpha": True, "normalize_observations": False,
            "network.critic.activation": "same", "network.critic.layer_norm": False},
}


@pytest.mark.parametrize("algorithm", sorted(ROLES))
def test_each_option_is_declared_with_its_role_and_todays_default(algorithm):
    table = ALGORITHMS[algorithm]
    assert {name: table[name].role for name in ROLES[algorithm]} == ROLES[algorithm]
    assert {name: table[name].default for name in DEFAULTS[algorithm]} == DEFAULTS[algorithm]
    assert all(table[name].doc for name in ROLES[algorithm])


# --- PPO ---------------------------------------------------------------------------------------

def test_the_value_loss_is_ppos_clipped_loss_in_value_and_gradient():
    """Against the reference formula (purejaxrl, CleanRL, rejax), on values some of which moved
    beyond the clip range; off, the plain squared error."""
    key = jax.random.split(jax.random.PRNGKey(0), 3)
    value = jax.random.normal(key[0], (64,))
    old = value + 0.3 * jax.random.normal(key[1], (64,))
    target = jax.random.normal(key[2], (64,))

    def reference(v, eps=0.2):
        clipped = old + jnp.clip(v - old, -eps, eps)
        return 0.5 * jnp.maximum(jnp.square(v - target), jnp.square(clipped - target)).mean()

    def ours(v, clip):
        return _value_loss(v, old, target, 0.2, jnp.asarray(clip))

    assert np.allclose(ours(value, True)[1], reference(value), rtol=1e-6)
    assert np.allclose(jax.grad(lambda v: ours(v, True)[0])(value),
                       jax.grad(reference)(value), atol=1e-7)
    plain = 0.5 * jnp.square(value - target).mean()
    assert ours(value, False)[1] == plain and ours(value, False)[0] == plain
    assert not np.allclose(reference(value), plain)  # the data exercise the clipping


PPO_TINY = dict(num_envs=4, rollout_length=16, update_epochs=2, num_minibatches=2,
                actor_layer_sizes=[16], critic_layer_sizes=[16], critic_lr=1e-2)
# 64 steps per update: one update per evaluation point, three points.
PPO_BUDGET = Budget(total_timesteps=192, num_evaluations=3, eval_episodes=2)


@pytest.fixture(scope="module")
def ppo_lanes():
    configs = [PPOConfig(**PPO_TINY),
               PPOConfig(**PPO_TINY, clip_value_loss=True, clip_eps=0.05),
               PPOConfig(**PPO_TINY, clip_eps=0.05),
               # a clip range no value moves beyond: clipping never acts
               PPOConfig(**PPO_TINY, clip_value_loss=True, clip_eps=1e9),
               PPOConfig(**PPO_TINY, clip_eps=1e9)]
    assert len({jax.tree.structure(c) for c in configs}) == 1  # one program
    return trained("ppo", "gymnax.pendulum", PPO_BUDGET, configs)


@pytest.mark.slow
def test_value_clipping_acts_in_the_first_update(ppo_lanes):
    _, clipped, plain, _, _ = ppo_lanes
    # the first update's second epoch already regresses from moved values
    assert at(clipped, 0).losses["value_loss"] != at(plain, 0).losses["value_loss"]
    assert np.all(clipped.finite)


@pytest.mark.slow
def test_value_clipping_that_cannot_act_trains_as_none(ppo_lanes):
    _, _, _, never, off = ppo_lanes
    # Bit for bit in what training leaves (returns, steps, the value loss). The reported policy
    # loss is one ulp apart (1.9e-9) in exec's program, which these lanes now train through;
    # the monolithic program this was first written against rounded both alike.
    for name in ("eval_returns", "eval_steps", "finite"):
        assert same(getattr(never, name), getattr(off, name)), name
    assert same(never.losses["value_loss"], off.losses["value_loss"])
    for name in never.losses:
        np.testing.assert_allclose(never.losses[name], off.losses[name], rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_per_element_gradient_clipping_is_another_program_and_clips_elements():
    base = PPOConfig(**PPO_TINY, max_grad_norm=1e-3)
    per_element = PPOConfig(**PPO_TINY, max_grad_norm=1e-3, grad_clip_mode="per_element")
    assert jax.tree.structure(base) != jax.tree.structure(per_element)
    a = trained("ppo", "gymnax.pendulum", PPO_BUDGET, [base])[0]
    b = trained("ppo", "gymnax.pendulum", PPO_BUDGET, [per_element])[0]
    assert not same(at(a, 0).losses, at(b, 0).losses) and np.all(b.finite)


@pytest.mark.slow
def test_same_activation_is_the_shared_one_and_an_own_one_changes_one_network():
    shared = PPOConfig(**PPO_TINY, activation="tanh")
    spelled = PPOConfig(**PPO_TINY, activation="tanh", actor_activation="tanh",
                        critic_activation="tanh")
    relu_critic = PPOConfig(**PPO_TINY, activation="tanh", critic_activation="relu")
    results = [trained("ppo", "gymnax.pendulum", PPO_BUDGET, [c])[0]
               for c in (shared, spelled, relu_critic)]
    assert same(results[0], results[1])
    assert not same(results[0].losses, results[2].losses)
    from hyperlax.train.algos.ppo import eval_spec
    assert eval_spec(relu_critic) == eval_spec(shared)  # the evaluation sees the actor only


# --- DQN ---------------------------------------------------------------------------------------

# A slowly following target net (tau 0.01 every step), so that online and target nets soon
# disagree on the best next action: where double and single Q differ.
DQN_TINY = dict(num_envs=4, rollout_length=4, train_epochs=2, warmup_steps=32, buffer_size=256,
                replay_batch_size=16, target_update_period=1, tau=0.01, q_layer_sizes=[16],
                learning_rate=1e-2, epsilon_decay_fraction=0.2)
# 16 steps per iteration, 20 iterations per point: warm-up ends early in the first point;
# double and single Q part ways within it (in a shorter run the two nets still agreed on
# every argmax).
DQN_BUDGET = Budget(total_timesteps=960, num_evaluations=3, eval_episodes=2)


@pytest.fixture(scope="module")
def dqn_lanes():
    configs = [DQNConfig(**DQN_TINY),
               DQNConfig(**DQN_TINY, double_q=False),
               DQNConfig(**DQN_TINY, max_abs_reward=0.5),   # CartPole pays 1 per step
               DQNConfig(**DQN_TINY, max_abs_reward=2.0)]   # above every reward: no effect
    assert len({jax.tree.structure(c) for c in configs}) == 1  # one program
    return trained("dqn", "gymnax.cartpole", DQN_BUDGET, configs)


@pytest.mark.slow
def test_double_q_and_reward_clipping_change_training(dqn_lanes):
    default, single_q, clipped, _ = dqn_lanes
    for other in (single_q, clipped):
        assert not same(default.losses, other.losses)
        assert np.all(other.finite)
    # clipped rewards halve the TD targets' reward term: a visibly different loss from the
    # first point on (the first gradient steps have the target net equal to the online one,
    # where double and single Q agree)
    assert at(clipped, 0).losses["q_loss"] != at(default, 0).losses["q_loss"]


@pytest.mark.slow
def test_a_reward_bound_above_every_reward_is_bit_identical_to_none(dqn_lanes):
    default, _, _, loose = dqn_lanes
    assert same(default, loose)


@pytest.mark.slow
def test_dueling_is_another_program_that_learns():
    dueling = DQNConfig(**DQN_TINY, dueling=True)
    assert jax.tree.structure(dueling) != jax.tree.structure(DQNConfig(**DQN_TINY))
    result = trained("dqn", "gymnax.cartpole", DQN_BUDGET, [dueling])[0]
    assert np.all(result.finite) and np.all(result.losses["q_loss"][..., 1:] > 0)


# --- SAC ---------------------------------------------------------------------------------------

SAC_TINY = dict(num_envs=2, rollout_length=2, train_epochs=1, warmup_steps=16, buffer_size=256,
                replay_batch_size=16, actor_layer_sizes=[16], critic_layer_sizes=[16],
                alpha_lr=1e-2, init_alpha=0.5)
SAC_BUDGET = Budget(total_timesteps=96, num_evaluations=3, eval_episodes=1)


@pytest.mark.slow
def test_a_fixed_temperature_stays_init_alpha_and_a_learned_one_moves():
    configs = [SACConfig(**SAC_TINY), SACConfig(**SAC_TINY, learn_alpha=False)]
    assert jax.tree.structure(configs[0]) == jax.tree.structure(configs[1])
    learned, fixed = trained("sac", "gymnax.pendulum", SAC_BUDGET, configs)
    assert np.all(fixed.losses["alpha"] == np.float32(0.5))
    assert np.all(learned.losses["alpha"][..., 1:] != np.float32(0.5))
    assert not same(learned.losses["q_loss"], fixed.losses["q_loss"])


@pytest.mark.slow
def test_observation_normalization_is_another_program_that_trains():
    normalized = SACConfig(**SAC_TINY, normalize_observations=True)
    assert jax.tree.structure(normalized) != jax.tree.structure(SACConfig(**SAC_TINY))
    a = trained("sac", "gymnax.pendulum", SAC_BUDGET, [SACConfig(**SAC_TINY)])[0]
    b = trained("sac", "gymnax.pendulum", SAC_BUDGET, [normalized])[0]
    assert np.all(b.finite) and not same(a.losses, b.losses)


# --- the compiler: scalar options add no structure; the torso needs images ---------------------

@pytest.mark.parametrize("recipe, env, space", [
    ("ppo_mlp_fixed_net", "gymnax.pendulum", {"clip_value_loss": "[true, false]"}),
    ("dqn_mlp_small", "gymnax.cartpole", {"double_q": "[true, false]",
                                          "max_abs_reward": "[0.0, 1.0]"}),
    ("sac_mlp_small", "gymnax.pendulum", {"learn_alpha": "[true, false]"}),
])
def test_sampling_scalar_options_adds_no_structure(write_manifest, recipe, env, space):
    lines = "\n".join(f'{name} = {{ dist = "categorical", values = {values} }}'
                      for name, values in space.items())
    # a grid enumerates the manifest's own space only: every combination of the options
    plan, _ = compile_manifest(write_manifest(f"""\
[sweep]
name = "flags"
recipe = "{recipe}"
recipe_space = "include"
env = "{env}"
sampling = "grid"

[space]
{lines}
"""))
    assert len(plan.samples) == 2 ** len(space)
    assert len({s.structure for s in plan.samples}) == 1


def test_the_compiler_refuses_a_cnn_torso_without_image_observations(write_manifest, tmp_path):
    path = write_manifest("""\
[sweep]
name = "cnn"
recipe = "dqn_mlp_small"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 2

[fixed]
"network.torso" = "cnn"
""")
    result = CliRunner().invoke(main, ["plan", str(path), "-o", str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "fixed.network.torso: 'cnn' needs image observations" in result.output
    assert "shape (4,)" in result.output


@pytest.mark.slow
def test_a_cnn_torso_compiles_and_trains_on_minatar(write_manifest):
    plan, _ = compile_manifest(write_manifest("""\
[sweep]
name = "cnn"
recipe = "dqn_mlp_small"
recipe_space = "include"
env = "gymnax.breakout_minatar"
num_samples = 2

[space]
"network.torso" = { dist = "categorical", values = ["mlp", "cnn"] }
"""))
    assert {s.values["network.torso"] for s in plan.samples} == {"mlp", "cnn"}
    config = PPOConfig(num_envs=2, rollout_length=8, update_epochs=1, num_minibatches=1,
                       actor_layer_sizes=[16], critic_layer_sizes=[16], torso="cnn")
    result = trained("ppo", "gymnax.breakout_minatar",
                     Budget(total_timesteps=16, num_evaluations=1, eval_episodes=1), [config])[0]
    assert np.all(result.finite)
