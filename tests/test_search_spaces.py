"""A search's manifest and space: [search] validated like every section (exit 2, located, no
traceback, nothing written), our distributions mapped onto Optuna's and back, the ones that
cannot map refused, plan and search kept apart, and neither JAX nor Optuna imported to refuse
a bad search. No training here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.manifest.distributions import Distribution
from hyperlax.search import spaces

optuna = pytest.importorskip("optuna")

RECIPE = """\
algorithm = "ppo"
[settings]
total_timesteps = 128
num_evaluations = 2
eval_episodes = 2
[defaults]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [8]
"network.critic.layer_sizes" = [8]
[space]
actor_lr = { dist = "log_uniform", low = 1e-4, high = 1e-2 }
"""

SWEEP = """\
[sweep]
name = "s"
recipe = "r.toml"
recipe_space = "include"
env = "gymnax.cartpole"
output_root = "out"
"""


def dist(**table) -> Distribution:
    return msgspec.convert(table, Distribution)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "r.toml").write_text(RECIPE)
    path = tmp_path / "search.toml"
    path.write_text(text)
    return path


def search(tmp_path: Path, text: str, *args: str):
    manifest = write(tmp_path, text)
    return CliRunner().invoke(main, ["search", str(manifest), "--output-root",
                                     str(tmp_path / "out"), *args])


# --- the mapping -----------------------------------------------------------------------------

def test_each_distribution_maps_onto_its_optuna_distribution():
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)

    space = {
        "a": dist(dist="uniform", low=0.1, high=0.9),
        "b": dist(dist="log_uniform", low=1e-5, high=1e-2),
        "c": dist(dist="int_uniform", low=2, high=8),
        "d": dist(dist="int_log_uniform", low=1, high=64),
        "e": dist(dist="quantized", low=4, high=20, step=4),
        "f": dist(dist="quantized", low=0.9, high=0.995, step=0.01),
        "g": dist(dist="categorical", values=["tanh", "relu"]),
        "h": dist(dist="categorical", values=[[64, 64], [128]]),
    }
    out = spaces.distributions(space)
    assert out["a"] == FloatDistribution(0.1, 0.9)
    assert out["b"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert out["c"] == IntDistribution(2, 8)
    assert out["d"] == IntDistribution(1, 64, log=True)
    assert out["e"] == IntDistribution(4, 20, step=4)
    assert out["f"] == FloatDistribution(0.9, 0.99, step=0.01)  # the last grid point
    assert out["g"] == CategoricalDistribution(["tanh", "relu"])
    assert out["h"] == CategoricalDistribution(["[64, 64]", "[128]"])
    values = spaces.to_values({"a": 0.5, "b": 1e-3, "c": 3, "d": 7, "e": 8,
                               "f": 0.9400000000000001, "g": "relu", "h": "[64, 64]"}, space)
    assert values == {"a": 0.5, "b": 1e-3, "c": 3, "d": 7, "e": 8, "f": 0.94, "g": "relu",
                      "h": [64, 64]}


def test_optuna_asks_inside_every_distribution():
    space = {"f": dist(dist="quantized", low=0.9, high=0.995, step=0.01),
             "h": dist(dist="categorical", values=[[64, 64], [128]]),
             "d": dist(dist="int_log_uniform", low=1, high=64)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    grid = {round(0.9 + k * 0.01, 2) for k in range(10)}
    for _ in range(30):
        trial = study.ask(fixed_distributions=spaces.distributions(space))
        values = spaces.to_values(trial.params, space)
        assert values["f"] in grid and values["h"] in ([64, 64], [128])
        assert 1 <= values["d"] <= 64 and isinstance(values["d"], int)
        study.tell(trial, 0.0)


def test_distributions_optuna_cannot_express_are_refused_with_their_place():
    space = {"n": dist(dist="normal", mean=0.5, std=0.1, low=0.0, high=1.0),
             "ln": dist(dist="log_normal", mean=-5.0, std=1.0, low=1e-4, high=1e-2),
             "w": dist(dist="categorical", values=[1, 2], weights=[3, 1]),
             "ok": dist(dist="uniform", low=0.0, high=1.0)}
    problems = dict(spaces.space_problems(space, {"w": "recipe space"}))
    assert "normal has no Optuna distribution" in problems["space.n.dist"]
    assert "uniform with low = 0.0, high = 1.0" in problems["space.n.dist"]
    assert "log_uniform" in problems["space.ln.dist"]
    assert "remove weights" in problems["space.w.weights"]
    assert "recipe's space" in problems["space.w.weights"]
    assert len(problems) == 3


# --- validation through the command line --------------------------------------------------

BAD = [
    ("method = \"bo\"\ntrials = 4", "search.method: invalid value 'bo'; one of tpe, nsgaii"),
    ("trials = 0", "search.trials: must be >= 1, got 0"),
    ("trials = 4\ncolour = 1", "search.colour: unknown key"),
    ("trials = 4\nobjectives = [{ metric = \"peak\" }]",
     "search.objectives[0].metric: invalid value 'peak'; one of final_return, best_return, auc"),
    ("trials = 4\nobjectives = [{ metric = \"auc\" }, { metric = \"auc\" }]",
     "search.objectives[1]: repeats auc"),
    ("method = \"nsgaii\"\ntrials = 4\ntrials_per_round = 1",
     "search.trials_per_round: nsgaii breeds each round from the last one"),
    ("trials = 4\nstudy_name = \"a b\"", "search.study_name: 'a b' must be"),
]


@pytest.mark.parametrize("body,expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_bad_search_section_is_refused_with_located_message(tmp_path, body, expected):
    result = search(tmp_path, SWEEP + "[search]\n" + body + "\n")
    assert result.exit_code == 2, result.output
    assert f"error: search.toml: {expected}" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,expected", [
    ('[space]\ngamma = { dist = "normal", mean = 0.95, std = 0.01, low = 0.9, high = 0.99 }\n',
     "space.gamma.dist: normal has no Optuna distribution"),
    ('[space]\n"network.activation" = { dist = "categorical", values = ["tanh", "relu"], '
     'weights = [1, 2] }\n', "space.network.activation.weights: Optuna's categorical"),
    ('[fixed]\nactor_lr = 1e-3\n', "space: a search needs hyperparameters to search"),
    ('[[samples]]\nactor_lr = 1e-3\n', "search: a manifest that lists its samples"),
])
def test_spaces_a_search_cannot_use_are_refused(tmp_path, extra, expected):
    result = search(tmp_path, SWEEP + extra + "[search]\ntrials = 4\n")
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_search_settings_that_conflict_are_refused(tmp_path):
    text = SWEEP.replace('output_root = "out"', 'sampling = "grid"\nnum_samples = 3') + \
        "[search]\ntrials = 4\n"
    result = search(tmp_path, text)
    assert result.exit_code == 2
    assert "sweep.sampling: 'grid': a search asks Optuna" in result.output
    result = search(tmp_path, SWEEP.replace('output_root = "out"', "num_samples = 3")
                    + "[search]\ntrials = 4\n")
    assert "sweep.num_samples: is 3, but a search runs search.trials = 4" in result.output


def test_rungs_and_checkpoints_are_refused_not_dropped(tmp_path):
    text = SWEEP.replace('output_root = "out"', 'output_root = "out"\nrungs = [2, 4]\n'
                         'checkpoint_every = 1') + "[search]\ntrials = 4\n"
    result = search(tmp_path, text)
    assert result.exit_code == 2
    assert "sweep.rungs: successive halving does not combine with a search" in result.output
    assert "sweep.checkpoint_every: a search's rounds do not checkpoint" in result.output


def test_plan_and_search_keep_to_their_own_manifests(tmp_path):
    manifest = write(tmp_path, SWEEP + "[search]\ntrials = 4\n")
    result = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "search: this manifest declares a search" in result.output
    assert f"hint: run it with: hyperlax search {manifest.name}" in result.output
    assert not (tmp_path / "p").exists()
    result = search(tmp_path, SWEEP + "num_samples = 4\n")
    assert result.exit_code == 2 and "missing section [search]" in result.output


def test_a_directory_holding_something_else_is_refused_untouched(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    result = search(tmp_path, SWEEP + "[search]\ntrials = 4\n")
    assert result.exit_code == 2
    assert "is not empty and is not a hyperlax search directory" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_missing_optuna_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = search(tmp_path, SWEEP + "[search]\ntrials = 4\n")
    assert result.exit_code == 2
    assert "needs Optuna, which is not installed" in result.output
    assert "pip install 'hyperlax[optuna]'" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.subprocess
def test_refusing_a_bad_search_imports_neither_jax_nor_optuna(tmp_path):
    manifest = write(tmp_path, SWEEP + "[search]\ntrials = 0\n")
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hyperlax.cli.main import main\n"
        f"r = CliRunner().invoke(main, ['search', {str(manifest)!r}])\n"
        "assert r.exit_code == 2, r.output\n"
        "r = CliRunner().invoke(main, ['optuna-hp-search', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'flax', 'optax', 'gymnax', 'optuna', 'sqlalchemy'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_seed_front_end_reads_list_flags_and_names_bad_objectives(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "m.toml"
    result = CliRunner().invoke(main, [
        "optuna-hp-search", "--algo-and-network-config", str(recipe), "--env-config",
        "gymnax.cartpole", "--n-trials", "6", "--sampler", "nsgaii",
        "--objective-names", "peak_performance", "normalized_auc",
        "--objective-directions", "maximize", "minimize", "--optuna-study-batch-size", "3",
        "--runner-hparam-batch-size", "2", "--emit-manifest", str(out)])
    assert result.exit_code == 0, result.output
    from hyperlax.manifest.format import decode_manifest

    manifest = decode_manifest(out.read_text(), "m.toml")
    assert manifest.search.method == "nsgaii" and manifest.search.trials == 6
    assert manifest.search.trials_per_round == 3 and manifest.sweep.batch_size == 2
    assert [(o.metric, o.direction) for o in manifest.search.objectives] == [
        ("best_return", "maximize"), ("auc", "minimize")]
    result = CliRunner().invoke(main, ["optuna-hp-search", "--objective-names", "stability_score",
                                       "--output-root", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--objective-names: unknown objective 'stability_score'" in result.output
    result = CliRunner().invoke(main, ["optuna-hp-search", "--objective-names", "a,b",
                                       "--objective-names", "final_return"])
    assert result.exit_code == 2 and "3 objectives" in result.output
    result = CliRunner().invoke(main, ["optuna-hp-search", "--algo-and-network-config",
                                       str(recipe), "--sampler", "nsgaii",
                                       "--emit-manifest", str(tmp_path / "n.toml")])
    assert result.exit_code == 2
    assert "--optuna-study-batch-size: nsgaii breeds each round" in result.output


def test_two_searches_never_share_a_directory(tmp_path):
    import os

    from hyperlax.search.run import _lock

    held = _lock(tmp_path / "out")  # as a running search holds it
    try:
        result = search(tmp_path, SWEEP + "[search]\ntrials = 4\n")
    finally:
        os.close(held)
    assert result.exit_code == 2
    assert "another hyperlax search is running in this directory" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["search.lock"]
