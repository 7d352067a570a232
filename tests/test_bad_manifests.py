"""Every file in tests/bad_manifests/ is a mistake a user could make. Each must give exit
status 2, the located message on its first line (`# expect: ...`), no traceback, and no plan
file, and must not touch an existing plan at the output path."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main

CORPUS = sorted((Path(__file__).parent / "bad_manifests").glob("*.toml"))


def test_corpus_has_at_least_30_distinct_cases():
    expectations = {p.read_text().splitlines()[0] for p in CORPUS}
    assert len(CORPUS) >= 30 and len(expectations) == len(CORPUS)


@pytest.mark.parametrize("manifest", CORPUS, ids=lambda p: p.stem)
def test_bad_manifest_is_refused_with_located_message(manifest, tmp_path):
    first = manifest.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    expected = first[len("# expect: "):]
    output = tmp_path / "plan.msgpack"
    output.write_bytes(b"previous plan")
    result = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(output)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert f"error: {manifest.name}" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error
    assert output.read_bytes() == b"previous plan"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.msgpack"]


def test_missing_manifest_file(tmp_path):
    result = CliRunner().invoke(main, ["plan", str(tmp_path / "nope.toml"), "-o",
                                       str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2
    assert "no such manifest file" in result.output
    assert not (tmp_path / "p.msgpack").exists()


def test_broken_user_recipe_is_reported_against_the_recipe_file(tmp_path):
    (tmp_path / "mine.toml").write_text(
        'algorithm = "ppo"\n[settings]\ntotal_timesteps = 1000\nnum_evaluations = 1\n'
        'eval_episodes = 1\n[space]\nactor_lr = { dist = "log_uniform", low = -1.0, '
        'high = 1.0 }\n')
    (tmp_path / "sweep.toml").write_text('[sweep]\nname = "x"\nrecipe = "mine.toml"\nrecipe_space = "include"\n'
                                         'env = "gymnax.cartpole"\nnum_samples = 2\n')
    result = CliRunner().invoke(main, ["plan", str(tmp_path / "sweep.toml"), "-o",
                                       str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2
    assert "error: mine.toml: space.actor_lr.low: must be > 0 for log_uniform" in result.output
