"""Every file in tests/bad_plans/ is a damaged or hostile plan (most edited on purpose with their
plan id recomputed; see tools/make_bad_plans.py). Every command that reads a plan refuses each one
with exit status 2 and its located message, before anything is created or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main

CORPUS_DIR = Path(__file__).parent / "bad_plans"
EXPECTED = json.loads((CORPUS_DIR / "expected.json").read_text())


def test_corpus_is_complete_and_distinct():
    files = sorted(p.name for p in CORPUS_DIR.glob("*.msgpack"))
    assert files == sorted(EXPECTED) and len(files) >= 20
    assert len(set(EXPECTED.values())) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("command", ["exec", "status", "show", "report"])
def test_bad_plan_is_refused_before_anything_is_written(name, command, tmp_path):
    plan = tmp_path / "plan.msgpack"
    plan.write_bytes((CORPUS_DIR / name).read_bytes())
    out = tmp_path / "out"
    args = [command, str(plan)] + (["--output-root", str(out)] if command != "show" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert EXPECTED[name] in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.msgpack"]


def test_a_manifest_passed_as_a_plan_says_so(tmp_path):
    manifest = tmp_path / "sweep.toml"
    manifest.write_text('[sweep]\nname = "a"\nrecipe = "ppo_mlp_small"\nrecipe_space = "include"\n')
    for command in ("exec", "show", "status"):
        result = CliRunner().invoke(main, [command, str(manifest)])
        assert result.exit_code == 2
        assert "this is a sweep manifest (TOML), not a plan file" in result.output
        assert f"hyperlax plan {manifest}" in result.output
