"""README claims that were once false, checked against what the code does: the records of
summary.json, and what `make demo` / `make test` install."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT
from hyperlax.exec.outputs import sample_summary

README = (ROOT / "README.md").read_text()


def outputs_block(name: str) -> str:
    """The README's description of one output file (its lines in the Outputs listing)."""
    lines = README[README.index("### Outputs"):].splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip().startswith(name))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" " * 20):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_summary_json_records_are_the_ones_the_readme_lists():
    summary = sample_summary(0, np.array([10, 20]), np.array([[1.0, 2.0], [3.0, np.nan]]),
                             np.array([[True, True], [True, False]]), steps=20)
    text = outputs_block("summary.json")
    for key in summary:
        assert key.split("_std")[0] in text, key
    per_replicate = text.split("replicates:")[1]
    for key in summary["replicates"][0]:
        assert key in per_replicate, key
    assert set(summary["replicates"][0]) == {"status", "diverged_at_step", "final_return",
                                             "best_return"}
    assert "per replicate the same" not in text


def test_readme_does_not_claim_show_samples_prints_u():
    assert "(`hyperlax show --samples`) records both `u` and the value" not in README


def make_dry_run(tmp_path, target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_installs_the_base_package_and_make_test_the_extras(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    old = time.time() - 60
    for path in (tmp_path / "pyproject.toml", tmp_path / ".venv" / "bin" / "python"):
        os.utime(path, (old, old))

    demo = make_dry_run(tmp_path, "demo")
    assert "pip install --quiet -e .\n" in demo and "ray" not in demo and "dev" not in demo

    # after a demo, a test installs the extras
    (tmp_path / ".venv" / ".installed-base").touch()
    assert "pip install" not in make_dry_run(tmp_path, "demo")
    test = make_dry_run(tmp_path, "test")
    assert "pip install --quiet -e '.[dev,ray,brax]'" in test and "pytest" in test

    # after a test, neither installs again
    (tmp_path / ".venv" / ".installed-dev").touch()
    assert "pip install" not in make_dry_run(tmp_path, "demo")
    assert "pip install" not in make_dry_run(tmp_path, "test")

    # an edited pyproject.toml reinstalls
    os.utime(tmp_path / "pyproject.toml", (time.time() + 60, time.time() + 60))
    assert "pip install --quiet -e .\n" in make_dry_run(tmp_path, "demo")
    assert "'.[dev,ray,brax]'" in make_dry_run(tmp_path, "test")
