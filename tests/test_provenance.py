"""Results that say where they came from (issue 26): each entry's provenance.json, what status,
report and compare say about it, and ``status --recheck N``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from hyperlax.cli.main import main
from hyperlax.exec.provenance import cpu_model
from hyperlax.exec.recheck import ATOL, RTOL, compare_curves
from hyperlax.storage import provenance as P
from hyperlax.storage.sweepdir import MARKER

COMPAT = ROOT / "tests" / "compat"
HERE = {"hyperlax": "0.2.0", "python": "3.11.7", "jax": "0.10.2", "jaxlib": "0.10.2",
        "flax": "0.12.8", "optax": "0.2.8", "gymnax": "1.0.1", "numpy": "2.4.6",
        "backend": "cpu", "device_kind": "cpu", "xla_flags": None, "jax_enable_x64": False,
        "jax_default_matmul_precision": None, "jax_threefry_partitionable": True,
        "cpu": "AMD EPYC"}
GPU = {**HERE, "jax": "0.10.3", "backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"}


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_records_are_grouped_and_what_differs_is_named():
    assert P.groups([HERE, None, dict(HERE), GPU]) == [(HERE, 2), (GPU, 1)]
    assert P.differing_fields([HERE, dict(HERE), None]) == []
    assert P.differing_fields([HERE, GPU]) == ["jax", "backend", "device_kind"]
    assert P.mixed_warning([HERE, HERE], "entries") is None
    warning = P.mixed_warning([HERE, GPU, None], "entries")
    assert "2 different environments" in warning
    assert "jax 0.10.2 vs 0.10.3" in warning and "device_kind cpu vs NVIDIA H100" in warning
    lines = P.provenance_lines({"a": HERE, "b": GPU, "c": HERE, "d": None})
    assert lines[0].startswith("produced by (2 entries): hyperlax 0.2.0, Python 3.11.7, "
                               "jax 0.10.2")
    assert lines[1].startswith("produced by (1 entries)") and "gpu (NVIDIA H100" in lines[1]
    assert "unknown" in lines[2] and lines[3].startswith("warning:")
    assert P.provenance_lines({}) == []


def test_a_missing_or_unreadable_record_is_an_unknown_environment(tmp_path):
    assert P.read_provenance(tmp_path) is None
    (tmp_path / P.PROVENANCE_FILE).write_text("not json")
    assert P.read_provenance(tmp_path) is None
    (tmp_path / P.PROVENANCE_FILE).write_text("[1, 2]")
    assert P.read_provenance(tmp_path) is None
    (tmp_path / P.PROVENANCE_FILE).write_text(json.dumps({**HERE, "provenance": 1,
                                                          "later_field": 3}))
    assert P.read_provenance(tmp_path) == HERE  # fields this version does not know: ignored


def test_cpu_model_comes_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000\n")
    assert cpu_model(info) == "Test CPU 9000"


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_curves_are_identical_within_tolerance_or_different():
    rng = np.random.default_rng(0)
    returns = rng.normal(100, 50, (2, 1, 4)).astype(np.float32)
    loss = rng.normal(0, 1, (2, 1, 4)).astype(np.float32)
    base = dict(sample=np.arange(2), eval_steps=np.array([32, 64, 96, 128]),
                finite=np.ones((2, 1, 4), bool), returns=returns, loss_total=loss)
    recorded = npz(**base)
    assert compare_curves(recorded, npz(**base))[0] == "identical"
    close = npz(**{**base, "returns": returns * np.float32(1 + RTOL / 10)})
    verdict, detail = compare_curves(recorded, close)
    assert verdict == "within tolerance" and "not bit for bit" in detail
    far = npz(**{**base, "loss_total": loss + np.float32(100 * ATOL + 1e-3)})
    verdict, detail = compare_curves(recorded, far)
    assert verdict == "different" and "loss_total differs by up to" in detail
    diverged = base["finite"].copy()
    diverged[0, 0, 3] = False
    assert compare_curves(recorded, npz(**{**base, "finite": diverged})) == (
        "different", ": finite differs")


def copy_sweep(corpus: str, tmp_path: Path, name: str = "") -> tuple[Path, Path]:
    copy = tmp_path / (name or corpus)
    shutil.copytree(COMPAT / corpus, copy)
    record = next(copy.glob("runs/*/hyperlax-sweep.json"))
    return copy / "plan.msgpack", record.parent


def entries(root: Path) -> list[Path]:
    return sorted(m.parent for m in root.rglob(MARKER))


def test_status_of_an_old_sweep_says_its_environment_is_unknown(tmp_path):
    plan_file, root = copy_sweep("09-d23c19b-ppo-network-options", tmp_path)
    result = cli("status", plan_file, "--output-root", root, "--verify")
    assert result.exit_code == 0, result.output
    assert "produced by (1 complete entries): unknown (no provenance.json" in result.output
    assert "warning" not in result.output


def test_status_and_report_warn_when_entries_come_from_several_environments(tmp_path):
    plan_file, root = copy_sweep("08-0436edf-ppo-halving-checkpoints", tmp_path)
    done = entries(root)
    assert len(done) == 3
    for directory, record in zip(done, [HERE, GPU]):  # the third keeps no record
        (directory / P.PROVENANCE_FILE).write_text(json.dumps(record))
    status = cli("status", plan_file, "--output-root", root)
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert sum(line.startswith("produced by (1 complete entries)") for line in lines) == 3
    warning = [line for line in lines if line.startswith("warning:")]
    assert len(warning) == 1 and "jax 0.10.2 vs 0.10.3" in warning[0]
    assert "backend cpu vs gpu" in warning[0]

    report = cli("report", plan_file, "--output-root", root, "--no-plots")
    assert report.exit_code == 0, report.output
    assert "2 different environments" in report.output and "jax 0.10.2 vs 0.10.3" in report.output
    document = json.loads((root / "report" / "report.json").read_text())
    assert sorted(e["entries"] for e in document["environments"]) == [1, 1]
    assert "device_kind" in document["environment_warning"]


def test_compare_warns_when_sweeps_come_from_different_devices(tmp_path):
    sweeps = []
    for name, record in (("a", HERE), ("b", GPU)):
        _, root = copy_sweep("09-d23c19b-ppo-network-options", tmp_path, name)
        for directory in entries(root):
            (directory / P.PROVENANCE_FILE).write_text(json.dumps(record))
        sweeps.append(root)
    result = cli("compare", *sweeps, "--label", "a", "--label", "b", "-o", tmp_path / "cmp",
                 "--no-plots")
    assert result.exit_code == 0, result.output
    assert "device_kind cpu vs NVIDIA H100 80GB HBM3" in result.output
    document = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert "jax 0.10.2 vs 0.10.3" in document["environment_warning"]

    same = cli("compare", sweeps[0], sweeps[0], "-o", tmp_path / "same", "--no-plots")
    assert same.exit_code == 0 and "environments" not in same.output


def test_recheck_refuses_an_entry_that_does_not_exist(tmp_path):
    plan_file, root = copy_sweep("09-d23c19b-ppo-network-options", tmp_path)
    result = cli("status", plan_file, "--output-root", root, "--recheck", 7)
    assert result.exit_code != 0 and "entry 7 does not exist" in result.output


@pytest.mark.slow
def test_recheck_reruns_one_entry_without_touching_the_sweep(tmp_path):
    from hyperlax.exec.local_exec import execute
    from hyperlax.plan.format import plan_id
    from hyperlax.storage.sweepdir import Owner, SweepDir
    from test_exec import tiny_plan

    plan, pid, data = tiny_plan(tmp_path, n=2, batch=2)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    execute(plan, pid, data, root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    same = cli("status", plan_file, "--output-root", root, "--verify", "--recheck", 0)
    assert same.exit_code == 0, same.output
    assert "recheck of entry 0" in same.output and "identical (bit for bit)" in same.output
    assert "re-run with: the same environment" in same.output
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before

    # Recorded curves another environment would have trained: re-marked, so still intact.
    entry = plan.entries[0]
    curves = root.joinpath(*entry.path.split("/")) / "curves.npz"
    with np.load(curves) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    arrays["returns"] = arrays["returns"] + np.float32(1.0)
    curves.write_bytes(npz(**arrays))
    files = sorted(json.loads((curves.parent / MARKER).read_text())["files"])
    SweepDir(root).complete(entry.path, Owner.of(plan, plan_id(plan)), entry.index, files)
    other = cli("status", plan_file, "--output-root", root, "--recheck", 0)
    assert other.exit_code == 1, other.output
    assert "different: returns differs by up to 1" in other.output
