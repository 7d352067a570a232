"""Recipe defaults per environment: a recipe's [defaults."<env id>"] sub-table holds values tuned
for that env. They apply in that env only, under a manifest's [fixed] and [space]; a bad sub-table
is the recipe author's error, located in the recipe; `hyperlax init` writes them out."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.errors import HyperlaxError
from hyperlax.manifest.format import decode_recipe
from hyperlax.manifest.recipes import builtin_recipes, split_defaults
from hyperlax.manifest.resolve import resolve_file

RECIPE = """\
algorithm = "ppo"
[settings]
total_timesteps = 10_000
num_evaluations = 2
eval_episodes = 2
[defaults]
ent_coef = 0.02
"network.activation" = "relu"
{extra}
"""
CARTPOLE = """\
[defaults."gymnax.cartpole"]
ent_coef = 0.005
num_envs = 4
"""


def manifest(tmp_path: Path, env: str, body: str = "", recipe: str = "r.toml") -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'[sweep]\nname = "t"\nrecipe = "{recipe}"\nrecipe_space = "include"\nenv = "{env}"\n{body}')
    return path


def write_recipe(tmp_path: Path, extra: str) -> None:
    (tmp_path / "r.toml").write_text(RECIPE.format(extra=extra))


def test_an_envs_own_defaults_apply_in_that_env_only(tmp_path):
    write_recipe(tmp_path, CARTPOLE)
    cartpole = resolve_file(manifest(tmp_path, "gymnax.cartpole"))
    assert cartpole.constants["ent_coef"] == 0.005 and cartpole.constants["num_envs"] == 4
    assert cartpole.sources["ent_coef"] == "env default"
    # the shared defaults still apply where the env's table is silent
    assert cartpole.constants["network.activation"] == "relu"
    assert cartpole.sources["network.activation"] == "recipe default"
    acrobot = resolve_file(manifest(tmp_path, "gymnax.acrobot"))
    assert acrobot.constants["ent_coef"] == 0.02 and acrobot.sources["ent_coef"] == "recipe default"
    assert acrobot.constants["num_envs"] == 8 and acrobot.sources["num_envs"] == "default"


def test_fixed_and_space_win_over_env_defaults(tmp_path):
    write_recipe(tmp_path, CARTPOLE)
    resolved = resolve_file(manifest(tmp_path, "gymnax.cartpole", """num_samples = 2
[fixed]
num_envs = 16
[space]
ent_coef = { dist = "uniform", low = 0.0, high = 0.1 }
"""))
    assert resolved.constants["num_envs"] == 16 and resolved.sources["num_envs"] == "fixed"
    assert "ent_coef" in resolved.space and "ent_coef" not in resolved.constants


@pytest.mark.parametrize("extra, where, says", [
    ('[defaults."gymnax.nope"]\nent_coef = 0.1\n', 'defaults."gymnax.nope"', "unknown env"),
    ('[defaults."gymnax.simple_bandit"]\nent_coef = 0.1\n', 'defaults."gymnax.simple_bandit"',
     "cannot be learned"),
    ('[defaults."gymnax.cartpole"]\nent_cof = 0.1\n', 'defaults."gymnax.cartpole".ent_cof',
     "unknown hyperparameter"),
    ('[defaults."gymnax.cartpole"]\ngamma = 1.5\n', 'defaults."gymnax.cartpole".gamma',
     "must be <= 1"),
])
def test_a_bad_env_table_is_the_recipes_located_error(tmp_path, extra, where, says):
    write_recipe(tmp_path, extra)
    with pytest.raises(HyperlaxError) as exc:
        resolve_file(manifest(tmp_path, "gymnax.pendulum"))
    assert exc.value.source == "r.toml"
    assert any(loc == where and says in msg for loc, msg in exc.value.problems), \
        exc.value.problems


def test_an_env_the_algorithm_cannot_act_in_is_refused(tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE.replace('"ppo"', '"dqn"').replace(
        "ent_coef = 0.02\n", "").format(extra='[defaults."gymnax.pendulum"]\ngamma = 0.9\n'))
    with pytest.raises(HyperlaxError) as exc:
        resolve_file(manifest(tmp_path, "gymnax.cartpole"))
    assert exc.value.problems == [('defaults."gymnax.pendulum"', "gymnax.pendulum has a "
                                   "continuous action space, which this recipe's algorithm "
                                   "cannot act in")]


def test_the_cli_refuses_a_bad_env_table_with_exit_2(tmp_path):
    write_recipe(tmp_path, '[defaults."gymnax.nope"]\nent_coef = 0.1\n')
    result = CliRunner().invoke(main, ["plan", str(manifest(tmp_path, "gymnax.pendulum")),
                                       "-o", str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2, result.output
    assert 'r.toml: defaults."gymnax.nope": unknown env' in result.output
    assert "Traceback" not in result.output


def test_builtin_env_defaults_are_valid_and_cite_a_source():
    """Every built-in recipe's env tables resolve (the resolver checks names, values and envs),
    and each is introduced by a comment naming where its values come from."""
    for name in builtin_recipes():
        text = resources.files("hyperlax.recipes").joinpath(f"{name}.toml").read_text("utf-8")
        for env_id in split_defaults(decode_recipe(text, name).defaults)[1]:
            above = text.split(f'[defaults."{env_id}"]')[0].rstrip().splitlines()[-1]
            assert above.startswith("#"), (name, env_id)
    small = {"ppo_mlp_small": {"gymnax.cartpole", "gymnax.pendulum", "gymnax.acrobot"},
             "dqn_mlp_small": {"gymnax.cartpole", "gymnax.acrobot", "gymnax.mountain_car"},
             "sac_mlp_small": {"gymnax.pendulum", "gymnax.mountain_car_continuous"}}
    for name, envs in small.items():
        text = resources.files("hyperlax.recipes").joinpath(f"{name}.toml").read_text("utf-8")
        assert set(split_defaults(decode_recipe(text, name).defaults)[1]) == envs


@pytest.mark.parametrize("recipe, env", [("ppo_mlp_small", "gymnax.cartpole"),
                                         ("dqn_mlp_small", "gymnax.cartpole"),
                                         ("sac_mlp_small", "gymnax.pendulum")])
def test_init_writes_the_tuned_defaults_and_its_manifest_plans_with_them(tmp_path, recipe, env):
    out = tmp_path / "sweep.toml"
    result = CliRunner().invoke(main, ["init", "--recipe", recipe, "--env", env, "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert f"tuned for {env}" in text
    resolved = resolve_file(out)
    recipe_text = resources.files("hyperlax.recipes").joinpath(f"{recipe}.toml").read_text()
    tuned = split_defaults(decode_recipe(recipe_text, recipe).defaults)[1][env]
    for name, value in tuned.items():
        if name in resolved.space:
            assert f"# tuned for {env}: " in text  # beside its [space] line
        else:  # written into [fixed]: the plan's constant is the tuned value
            assert resolved.constants[name] == value and resolved.sources[name] == "fixed"


def test_show_records_env_defaults_as_constants(tmp_path):
    write_recipe(tmp_path, CARTPOLE)
    out = tmp_path / "p.msgpack"
    assert CliRunner().invoke(main, ["plan", str(manifest(tmp_path, "gymnax.cartpole")), "-o",
                                     str(out)]).exit_code == 0
    shown = CliRunner().invoke(main, ["show", str(out)]).output
    line = next(ln for ln in shown.splitlines() if ln.strip().startswith("ent_coef"))
    assert "env default" in line and "0.005" in line


# Brax's training colab trains each of these with one algorithm (Swimmer with neither); the
# accelerator-sized recipes carry them, sized as Brax runs them.
BRAX_PPO = {f"brax.{n}" for n in ("ant", "halfcheetah", "humanoid", "humanoidstandup",
                                  "inverted_pendulum", "inverted_double_pendulum", "pusher",
                                  "reacher")}
BRAX_SAC = {"brax.hopper", "brax.walker2d"}


def test_the_accelerator_recipes_carry_braxs_own_settings_for_its_envs():
    for name, envs in (("ppo_mlp", BRAX_PPO), ("sac_mlp", BRAX_SAC)):
        text = resources.files("hyperlax.recipes").joinpath(f"{name}.toml").read_text("utf-8")
        assert set(split_defaults(decode_recipe(text, name).defaults)[1]) == envs
        assert "google/brax, notebooks/training.ipynb" in text


@pytest.mark.parametrize("recipe, env, steps, expected", [
    # Brax's Ant: 4096 envs, unroll 5, batch 2048 x 32 minibatches: 5 x 2048 x 32 / 4096 = 80
    ("ppo_mlp", "brax.ant", 50_000_000, {"num_envs": 4096, "rollout_length": 80, "num_minibatches": 32,
                             "update_epochs": 4, "gamma": 0.97, "ent_coef": 1e-2,
                             "actor_lr": 3e-4, "clip_eps": 0.3}),
    ("sac_mlp", "brax.hopper", 6_553_600, {"num_envs": 128, "train_epochs": 64, "replay_batch_size": 512,
                                "warmup_steps": 8192, "gamma": 0.997, "q_lr": 6e-4,
                                "target_entropy_scale": 0.5}),
])
def test_a_brax_env_plans_with_braxs_settings(tmp_path, recipe, env, steps, expected):
    path = tmp_path / "sweep.toml"
    path.write_text(f'[sweep]\nname = "t"\nrecipe = "{recipe}"\nrecipe_space = "exclude"\n'
                    f'env = "{env}"\nnum_samples = 1\ntotal_timesteps = {steps}\n'
                    'num_evaluations = 10\n[space]\n')  # Brax's run length
    resolved = resolve_file(path)
    assert {k: resolved.constants[k] for k in expected} == expected
    assert {resolved.sources[k] for k in expected} == {"env default"}
    out = tmp_path / "plan.msgpack"
    result = CliRunner().invoke(main, ["plan", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
