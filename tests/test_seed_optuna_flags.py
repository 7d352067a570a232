"""The seed's `optuna-hp-search` takes every flag of the original's study command: the run
length (`--run-length-modifier`, so a trial need not train the recipe's whole budget),
`--num-seeds`, `--save-optuna-plots` (Optuna's own figures as PNGs), and the flags every seed
command shares (`--save-logs`, `--output-dir`). Each is accepted and does what a test can see:
in the emitted manifest, in a round's plan, in the search directory, on resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main
from hyperlax.manifest.format import parse_toml
from hyperlax.plan.read import read_plan

optuna = pytest.importorskip("optuna")

FIGURES = ["optimization_history.png", "parallel_coordinate.png", "param_importances.png"]


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def emitted(tmp_path: Path, *flags: object) -> tuple[object, str]:
    path = tmp_path / "search.toml"
    result = invoke("optuna-hp-search", "--algo-and-network-config", "ppo_mlp_small",
                    "--output-root", tmp_path / "s", "--emit-manifest", path, "--force", *flags)
    return result, path.read_text() if path.exists() else ""


def test_run_length_and_seeds_become_the_search_manifests_budget(tmp_path):
    result, plain = emitted(tmp_path)
    assert result.exit_code == 0, result.output
    sweep = parse_toml(plain, "plain")["sweep"]
    # no flags: the recipe's budget and one replicate, as before these flags existed
    assert not {"total_timesteps", "seeds_per_sample"} & set(sweep)
    assert "fixed" not in parse_toml(plain, "plain")

    result, text = emitted(tmp_path, "--run-length-modifier", "quick", "--num-seeds", 3)
    assert result.exit_code == 0, result.output
    manifest = parse_toml(text, "quick")
    assert (manifest["sweep"]["total_timesteps"], manifest["sweep"]["num_evaluations"],
            manifest["sweep"]["eval_episodes"], manifest["sweep"]["seeds_per_sample"]) == \
        (40, 4, 4, 3)
    assert manifest["fixed"]["rollout_length"] == 1   # quick's small structure
    assert "--run-length-modifier quick --num-seeds 3" in text.splitlines()[1]

    result, text = emitted(tmp_path, "--run-length-modifier", "long")
    assert parse_toml(text, "long")["sweep"]["seeds_per_sample"] == 4   # long's own seeds
    result, text = emitted(tmp_path, "--run_length_modifier", "5000")   # tyro's spelling
    manifest = parse_toml(text, "steps")
    assert manifest["sweep"]["total_timesteps"] == 5000 and "fixed" not in manifest
    assert "seeds_per_sample" not in manifest["sweep"]


def test_bad_run_length_and_the_shared_flags(tmp_path):
    result, _ = emitted(tmp_path, "--run-length-modifier", "1e6")
    assert result.exit_code == 2 and "--run-length-modifier" in result.output
    assert "write the integer out, e.g. 1000000" in result.output
    result, _ = emitted(tmp_path, "--num-seeds", 0)
    assert result.exit_code == 2 and "--num-seeds" in result.output
    _, plain = emitted(tmp_path)
    # --save-logs (the original's default is True) changes no manifest
    for value in ("True", "False"):
        result, text = emitted(tmp_path, "--save-logs", value)
        assert result.exit_code == 0 and text == plain, result.output
    result, text = emitted(tmp_path, "--output-dir", tmp_path / "elsewhere")
    assert result.exit_code == 0 and text == plain
    assert "--output-dir has no effect" in result.output and not (tmp_path / "elsewhere").exists()
    result, _ = emitted(tmp_path, "--save-optuna-plots", "maybe")
    assert result.exit_code == 2 and "--save-optuna-plots" in result.output


@pytest.mark.slow
def test_a_short_search_trains_the_run_length_and_draws_optunas_figures(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    root = tmp_path / "s"
    flags = ["optuna-hp-search", "--algo-and-network-config", tmp_path / "tiny.toml",
             "--env-config", "gymnax.cartpole", "--n-trials", 4,
             "--optuna-study-batch-size", 4, "--runner-hparam-batch-size", 4,
             "--run-length-modifier", 256, "--num-seeds", 2]
    result = invoke(*flags, "--output-root", root)
    assert result.exit_code == 0, result.output
    plan, _ = read_plan(root / "rounds" / "round_0000" / "plan.msgpack")
    assert (plan.settings.total_timesteps, plan.settings.seeds_per_sample) == (256, 2)
    assert "2,048 env steps" in result.output   # 4 trials x 2 seeds x 256, not the recipe's
    assert sorted(p.name for p in (root / "optuna_plots").iterdir()) == FIGURES
    assert all((root / "optuna_plots" / f).read_bytes()[:4] == b"\x89PNG" for f in FIGURES)
    assert "wrote 3 Optuna figures" in result.output
    # --save-logs (on by default): the search's lines, from its claim to its figures, in its
    # directory's hyperlax.log, each after its time
    log = [line[20:] for line in (root / "hyperlax.log").read_text().splitlines()]
    assert any("2,048 env steps" in line for line in log)
    assert log[-1] == result.output.splitlines()[-1] and "Optuna figures" in "".join(log)

    # the run length and seeds are the search's: resuming with others is refused
    for flag, value in (("--run-length-modifier", 512), ("--num-seeds", 3)):
        again = invoke("optuna-hp-search", "--resume-from", root, flag, value)
        assert again.exit_code == 2 and flag in again.output, again.output
    # the same ones, or none, resume; --save-optuna-plots False leaves the figures alone
    (root / "optuna_plots" / FIGURES[0]).unlink()
    again = invoke("optuna-hp-search", "--resume-from", root, "--num-seeds", 2,
                   "--save-optuna-plots", "False")
    assert again.exit_code == 0, again.output
    assert "all 4 trials asked and told" in again.output
    assert not (root / "optuna_plots" / FIGURES[0]).exists()
    assert "--run-length-modifier 256 --num-seeds 2" in (root / "search.toml").read_text()
