"""plan / show / check / init / schemas from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, SPECS
from hyperlax.cli.main import main
from hyperlax.manifest.recipes import builtin_recipes


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_plan_writes_file_and_summary(tmp_path):
    out = tmp_path / "plan.msgpack"
    result = run("plan", SPECS / "ppo_pendulum_64.toml", "-o", out)
    assert result.exit_code == 0, result.output
    assert "64 samples" in result.output and "4 entries" in result.output
    assert out.read_bytes() == (ROOT / "tests/golden/ppo_pendulum_64.plan.msgpack").read_bytes()


def test_show_text_json_and_samples(tmp_path):
    out = tmp_path / "plan.msgpack"
    run("plan", SPECS / "ppo_grouped_layers.toml", "-o", out)
    text = run("show", out)
    assert text.exit_code == 0
    assert "4 distinct structures" in text.output and "4 compiles" in text.output
    assert "network.actor.layer_sizes" in text.output
    data = json.loads(run("show", out, "--format", "json").output)
    assert data["summary"]["structures"] == 4 and len(data["entries"]) == 4
    csv_text = run("show", out, "--samples", "--format", "csv").output.splitlines()
    assert csv_text[0].startswith("sample,seed,structure,actor_lr")
    assert "network.actor.layer_sizes" in csv_text[0].split(",")
    assert len(csv_text) == 33
    rows = json.loads(run("show", out, "--samples", "--format", "json").output)
    assert [r["sample"] for r in rows] == list(range(32))


def test_check_passes_then_explains_a_change(tmp_path):
    manifest = tmp_path / "sweep.toml"
    manifest.write_text((SPECS / "quickstart.toml").read_text())
    out = tmp_path / "plan.msgpack"
    run("plan", manifest, "-o", out)
    ok = run("check", manifest, out)
    assert ok.exit_code == 0 and "up to date" in ok.output
    manifest.write_text(manifest.read_text().replace("num_samples = 8", "num_samples = 16"))
    changed = run("check", manifest, out)
    assert changed.exit_code == 1
    assert "settings.num_samples: 8 -> 16" in changed.output
    assert "samples: 8 -> 16" in changed.output


def test_check_refuses_a_corrupt_plan(tmp_path):
    bad = tmp_path / "plan.msgpack"
    bad.write_bytes(b"\x93garbage")
    result = run("check", SPECS / "quickstart.toml", bad)
    assert result.exit_code == 2 and "not a hyperlax plan file" in result.output


def test_init_writes_a_manifest_that_plans(tmp_path):
    env_of = {"ppo": "gymnax.pendulum", "dqn": "gymnax.cartpole", "sac": "gymnax.pendulum",
              "pqn": "gymnax.cartpole"}
    # a recipe whose defaults need image observations (network.torso = "cnn")
    image_env = {"pqn_minatar": "gymnax.breakout_minatar"}
    recipes = builtin_recipes()
    assert {"ppo_mlp", "ppo_mlp_small", "dqn_mlp", "sac_mlp_small"} <= set(recipes)
    for recipe in recipes:
        algorithm = next(a for a in env_of if recipe.startswith(a))
        env = image_env.get(recipe, env_of[algorithm])
        manifest = tmp_path / f"{recipe}.toml"
        result = run("init", "--recipe", recipe, "--env", env, "-o", manifest)
        assert result.exit_code == 0, result.output
        planned = run("plan", manifest, "-o", tmp_path / f"{recipe}.msgpack")
        assert planned.exit_code == 0, planned.output
        assert "[space]" in manifest.read_text()
    again = run("init", "-o", tmp_path / "ppo_mlp.toml")
    assert again.exit_code == 2 and "already exists" in again.output


def test_init_refuses_a_mismatched_env(tmp_path):
    result = run("init", "--recipe", "dqn_mlp", "--env", "gymnax.pendulum", "-o",
                 tmp_path / "x.toml")
    assert result.exit_code == 2 and "cannot act in gymnax.pendulum" in result.output
    assert not (tmp_path / "x.toml").exists()


@pytest.mark.subprocess
def test_schemas_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_schemas.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_specs_reference_the_schema():
    for spec in SPECS.glob("*.toml"):
        assert spec.read_text().startswith("#:schema ../schemas/manifest.schema.json"), spec


def test_help_lists_every_command():
    result = run("--help")
    for command in ("init", "plan", "show", "check", "exec", "status"):
        assert command in result.output


@pytest.mark.subprocess
def test_hyperparameter_docs_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
