"""hyperlax exec: outputs, markers, resume, determinism, batch independence, compile counts,
and refusal of foreign directories and bad plans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import hyperlax
import pytest
from click.testing import CliRunner

from conftest import tiny_sweep
from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan, plan_id, results_id
from hyperlax.exec.local_exec import execute
from hyperlax.exec.runner import CompiledRunner
from hyperlax.exec.outputs import sample_summary
from hyperlax.storage.sweepdir import MARKER, SWEEP_RECORD


def tiny_plan(tmp_path: Path, n=4, mode="batched", batch=2, extra="", space="", name="s.toml"):
    manifest = tmp_path / name
    manifest.write_text(tiny_sweep(n=n, mode=mode, batch=batch, fixed_extra=extra,
                                    space_extra=space))
    plan, _ = compile_manifest(manifest)
    return plan, plan_id(plan), encode_plan(plan)


def curves(root: Path, plan) -> dict[int, np.ndarray]:
    out = {}
    for entry in plan.entries:
        with np.load(root.joinpath(*entry.path.split("/")) / "curves.npz") as data:
            for k, i in enumerate(data["sample"]):
                out[int(i)] = data["returns"][k]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted exec of the tiny 4-sample plan, shared by several tests."""
    tmp = tmp_path_factory.mktemp("ref")
    plan, pid, data = tiny_plan(tmp)
    report = execute(plan, pid, data, tmp / "out")
    return plan, pid, data, tmp / "out", report


def test_exec_writes_outputs_and_markers(reference):
    plan, pid, _, root, report = reference
    assert report.ran == 2 and report.skipped == 0 and report.compiles == 1
    record = json.loads((root / SWEEP_RECORD).read_text())
    assert record == {"plan_id": pid, "results_id": results_id(plan)}
    for entry in plan.entries:
        directory = root.joinpath(*entry.path.split("/"))
        marker = json.loads((directory / MARKER).read_text())
        assert marker["plan_id"] == pid and marker["results_id"] == results_id(plan)
        assert set(marker["files"]) == {
            "samples.json", "curves.npz", "curves.csv", "summary.json", "provenance.json"}
        provenance = json.loads((directory / "provenance.json").read_text())
        assert provenance["hyperlax"] == hyperlax.__version__
        assert provenance["backend"] == "cpu" and provenance["jax"] and provenance["cpu"]
        assert "brax" not in provenance  # a gymnax plan
        summary = json.loads((directory / "summary.json").read_text())
        assert [s["sample"] for s in summary["samples"]] == entry.samples
        assert all(s["status"] == "ok" and s["steps"] == 128 for s in summary["samples"])
        samples = json.loads((directory / "samples.json").read_text())
        assert samples[0]["values"]["actor_lr"] == plan.samples[entry.samples[0]].values[
            "actor_lr"]
        with np.load(directory / "curves.npz") as npz:
            assert npz["returns"].shape == (len(entry.samples), 1, 2)
            assert list(npz["eval_steps"]) == [64, 128]
        rows = (directory / "curves.csv").read_text().splitlines()
        assert rows[0].startswith("sample,replicate,step,return")
        assert len(rows) == 1 + len(entry.samples) * 2


def test_status_reports_done(reference, tmp_path):
    plan, pid, data, root, _ = reference
    (tmp_path / "p.msgpack").write_bytes(data)
    result = CliRunner().invoke(main, ["status", str(tmp_path / "p.msgpack"),
                                       "--output-root", str(root)])
    assert result.exit_code == 0
    assert "2/2 done, 0 partial, 0 pending" in result.output


def test_rerun_skips_everything(reference):
    plan, pid, data, root, _ = reference
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = execute(plan, pid, data, root)
    assert report.skipped == 2 and report.ran == 0 and report.compiles == 0
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_determinism_same_plan_same_results(reference, tmp_path):
    plan, pid, data, root, _ = reference
    execute(plan, pid, data, tmp_path / "again")
    a, b = curves(root, plan), curves(tmp_path / "again", plan)
    assert all(np.array_equal(a[i], b[i]) for i in a)


@pytest.mark.slow
def test_resume_after_interruption(reference, tmp_path):
    plan, pid, data, root, _ = reference
    out = tmp_path / "out"
    execute(plan, pid, data, out, entries=[0])  # "interrupted" after the first entry
    partial = out.joinpath(*plan.entries[1].path.split("/"))
    partial.mkdir(parents=True)
    (partial / "curves.csv").write_text("half-written garbage")
    (partial / "stray.tmp").write_text("x")
    status = CliRunner().invoke(main, ["status", str(_write(tmp_path, data)),
                                       "--output-root", str(out)])
    assert "1/2 done, 1 partial, 0 pending" in status.output
    first = out.joinpath(*plan.entries[0].path.split("/"))
    first_bytes = {p.name: p.read_bytes() for p in first.iterdir()}
    report = execute(plan, pid, data, out)
    assert report.skipped == 1 and report.ran == 1
    assert not (partial / "stray.tmp").exists()
    assert {p.name: p.read_bytes() for p in first.iterdir()} == first_bytes
    a, b = curves(root, plan), curves(out, plan)
    assert all(np.array_equal(a[i], b[i]) for i in a)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "plan.msgpack"
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_batch_independence(tmp_path):
    plan, _, _ = tiny_plan(tmp_path, n=8, batch=8)
    runner = CompiledRunner(plan)
    alone = runner.run(0, [0], 1)
    in_batch = runner.run(0, [0, 1, 2, 3], 4)
    mates_a = runner.run(0, [0, 4, 5], 3)
    mates_b = runner.run(0, [0, 6, 7], 3)
    for name in alone.losses:
        np.testing.assert_allclose(alone.losses[name][0], in_batch.losses[name][0],
                                   rtol=1e-5, atol=1e-5)
        assert np.array_equal(mates_a.losses[name][0], mates_b.losses[name][0])
    np.testing.assert_allclose(alone.returns[0], in_batch.returns[0], rtol=1e-5)
    assert np.array_equal(mates_a.returns[0], mates_b.returns[0])
    assert runner.compiles == 3  # widths 1, 4 and 3


@pytest.mark.slow
def test_padding_lanes_do_not_change_results(tmp_path):
    plan, _, _ = tiny_plan(tmp_path, n=4, batch=4)
    runner = CompiledRunner(plan)
    exact = runner.run(0, [1, 2, 3], 3)
    padded = runner.run(0, [1, 2, 3], 4)
    assert padded.returns.shape[0] == 3
    for name in exact.losses:
        np.testing.assert_allclose(exact.losses[name], padded.losses[name], rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.slow
def test_grouped_mode_compiles_once_per_group(tmp_path):
    space = '"network.activation" = { dist = "categorical", values = ["tanh", "relu"] }'
    plan, pid, data = tiny_plan(tmp_path, n=6, mode="grouped", batch=2, space=space)
    assert len(plan.structures) == 2 and len(plan.entries) >= 3
    report = execute(plan, pid, data, tmp_path / "out")
    assert report.compiles == 2


@pytest.mark.slow
def test_sequential_one_structure_compiles_once(tmp_path):
    plan, pid, data = tiny_plan(tmp_path, n=3, mode="sequential", batch=1)
    report = execute(plan, pid, data, tmp_path / "out")
    assert report.ran == 3 and report.compiles == 1


@pytest.mark.slow
def test_replicates_use_their_own_seeds(tmp_path):
    plan, pid, data = tiny_plan(tmp_path, n=2, batch=2,
                                extra="", name="r.toml")
    manifest = tmp_path / "r.toml"
    manifest.write_text(manifest.read_text().replace("seed = 5", "seed = 5\nseeds_per_sample = 3"))
    plan, _ = compile_manifest(manifest)
    result = CompiledRunner(plan).run(0, [0, 1], 2)
    assert result.returns.shape == (2, 3, 2)
    losses = result.losses[sorted(result.losses)[0]]
    assert not np.array_equal(losses[0, 0], losses[0, 1])


def test_foreign_sweep_directory_is_refused_untouched(tmp_path):
    plan, pid, data = tiny_plan(tmp_path)
    plan_file = _write(tmp_path, data)
    other = tmp_path / "other"
    other.mkdir()
    (other / SWEEP_RECORD).write_text(json.dumps({"plan_id": "f" * 64}))
    (other / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(other)])
    assert result.exit_code == 2
    assert "belongs to another plan" in result.output
    assert sorted(p.name for p in other.iterdir()) == ["hyperlax-sweep.json", "keep.txt"]

    unrelated = tmp_path / "home"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(unrelated)])
    assert result.exit_code == 2 and "not a hyperlax sweep directory" in result.output
    assert [p.name for p in unrelated.iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "not a hyperlax plan file"),
    (lambda b: b"", "not a hyperlax plan file"),
    (lambda b: b"hello world", "not a hyperlax plan file"),
    (lambda b: b.replace(b"log_uniform", b"log_uniforn"), "plan id does not match"),
    (lambda b: b.replace(b"\xaeformat_version\x01", b"\xaeformat_version\x09"),
     "plan format version 9 is newer"),
])
def test_bad_plans_are_refused(tmp_path, damage, message):
    _, _, data = tiny_plan(tmp_path)
    bad = damage(data)
    assert bad != data
    plan_file = _write(tmp_path, bad)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_sample_summary_marks_divergence_with_its_step():
    steps = np.array([100, 200, 300])
    returns = np.array([[10.0, 20.0, 30.0], [10.0, np.nan, np.nan]])
    finite = np.array([[True, True, True], [True, False, False]])
    summary = sample_summary(3, steps, returns, finite, steps=300)
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 200
    assert summary["replicates"][0] == {"status": "ok", "diverged_at_step": None,
                                        "final_return": 30.0, "best_return": 30.0}
    assert summary["final_return"] == 30.0  # the mean over replicates that finished
