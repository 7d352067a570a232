"""hyperlax report: one row per sample with the right values, partial sweeps reported as
partial, the [fixed] block that pins the best, plots written, and located errors."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_sweep
from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan, plan_id
from hyperlax.exec.outputs import EntryResult, SubBatchResult, write_entry
from hyperlax.storage.sweepdir import MARKER, SWEEP_RECORD, Owner, SweepDir


PNGS = ["curves.png", "hyperparams.png", "overview.png"]


def tiny_plan(tmp: Path, n=4, sweep_extra="", space="", name="s.toml"):
    manifest = tmp / name
    manifest.write_text(tiny_sweep(n=n, sweep_extra=sweep_extra, space_extra=space))
    plan, _ = compile_manifest(manifest)
    data = encode_plan(plan)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    return plan, plan_id(plan), data, plan_file


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """One executed 4-sample sweep in 2 entries; every test copies it before changing it."""
    from hyperlax.exec.local_exec import execute

    tmp = tmp_path_factory.mktemp("executed")
    plan, pid, data, plan_file = tiny_plan(tmp)
    root = tmp / "out"
    execute(plan, pid, data, root)
    return plan, pid, plan_file, root


@pytest.fixture(scope="module")
def reported(executed, tmp_path_factory):
    plan, pid, plan_file, root = executed
    report_dir = tmp_path_factory.mktemp("report")
    result = invoke("report", plan_file, "--output-root", root, "-o", report_dir, "--top", 3)
    assert result.exit_code == 0, result.output
    return result.output, report_dir


def test_results_csv_has_one_row_per_sample_with_its_values(executed, reported):
    plan, _, _, root = executed
    _, report_dir = reported
    rows = read_csv(report_dir / "results.csv")
    assert [int(r["sample"]) for r in rows] == [0, 1, 2, 3]
    summaries = {}
    for entry in plan.entries:
        summary = json.loads((root.joinpath(*entry.path.split("/")) / "summary.json").read_text())
        summaries.update({s["sample"]: (entry.path, summary) for s in summary["samples"]})
    for row in rows:
        i = int(row["sample"])
        for name, value in plan.samples[i].values.items():
            assert float(row[name]) == value  # exact: floats are written to round-trip
        assert row["num_envs"] == "4" and row["network.actor.layer_sizes"] == "[16]"
        assert int(row["seed"]) == plan.samples[i].seed and row["replicates"] == "1"
        path, summary = summaries[i]
        record = next(s for s in summary["samples"] if s["sample"] == i)
        assert row["entry"] == path and row["status"] == "ok" == record["status"]
        assert float(row["final_return"]) == record["final_return"]
        assert float(row["best_return"]) == record["best_return"]
        assert float(row["final_return_std"]) == 0.0  # one replicate
        assert int(row["steps"]) == 128
        assert float(row["wall_seconds"]) == summary["wall_seconds"]
    ranked = sorted(rows, key=lambda r: (-float(r["final_return"]), int(r["sample"])))
    assert [int(r["rank"]) for r in ranked] == [1, 2, 3, 4]


def test_final_return_is_the_last_evaluation(executed, reported):
    plan, _, _, root = executed
    rows = {int(r["sample"]): r for r in read_csv(reported[1] / "results.csv")}
    for entry in plan.entries:
        with np.load(root.joinpath(*entry.path.split("/")) / "curves.npz") as npz:
            for k, i in enumerate(npz["sample"]):
                assert float(rows[int(i)]["final_return"]) == pytest.approx(
                    float(npz["returns"][k, 0, -1]))


def test_terminal_shows_top_and_a_pasteable_fixed_block(executed, reported, tmp_path):
    plan, pid, _, _ = executed
    output, report_dir = reported
    rows = read_csv(report_dir / "results.csv")
    best = min(rows, key=lambda r: int(r["rank"]))
    assert "complete: 2/2 entries done" in output
    assert "top 3 of 4 finished samples by final return" in output
    block = output[output.index("# sample "):output.index("\nwrote ")]
    fixed = tomllib.loads(block)["fixed"]
    values = plan.sample_values(int(best["sample"]))
    assert fixed["actor_lr"] == values["actor_lr"] and fixed["critic_lr"] == values["critic_lr"]
    assert fixed["network.actor.layer_sizes"] == [16] and fixed["num_envs"] == 4
    # Pasted into a follow-up manifest, it pins exactly the best sample's configuration.
    follow = tiny_sweep(n=1).split("[fixed]")[0] + block
    (tmp_path / "follow.toml").write_text(follow)
    follow_plan, _ = compile_manifest(tmp_path / "follow.toml")
    assert follow_plan.sampled == []
    for name, value in fixed.items():
        assert follow_plan.constants[name] == value
    assert f"sample {best['sample']} of plan {pid[:12]}" in block


def test_plots_are_written_and_not_empty(reported):
    _, report_dir = reported
    for name in PNGS:
        path = report_dir / name
        width, height = png_size(path)
        assert width >= 600 and height >= 400 and path.stat().st_size > 10_000, name
    from matplotlib.image import imread

    pixels = imread(report_dir / "overview.png")
    assert pixels.std() > 0.05  # drawn on, not a blank page
    document = json.loads((report_dir / "report.json").read_text())
    assert sorted(Path(f).name for f in document["files"]) == sorted(
        ["results.csv", "report.json", *PNGS])
    assert not list(report_dir.glob(".*.tmp"))


def test_json_format(executed):
    plan, pid, plan_file, root = executed
    result = invoke("report", plan_file, "--output-root", root, "--format", "json",
                    "--no-plots", "--metric", "best", "-o", root.parent / "json-report")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["plan_id"] == pid and document["complete"] is True
    assert document["samples"] == {"ok": 4, "diverged": 0, "missing": 0}
    assert document["metric"] == "best" and len(document["rows"]) == 4
    best = document["best"]
    assert best["sample"] == document["top"][0]
    assert best["fixed"]["actor_lr"] == plan.samples[best["sample"]].values["actor_lr"]
    assert not (root.parent / "json-report" / "overview.png").exists()


def test_report_of_a_sweep_directory_defaults_into_it(executed, tmp_path):
    _, _, _, root = executed
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    result = invoke("report", copy, "--no-plots")  # the directory: its plan.msgpack
    assert result.exit_code == 0, result.output
    assert len(read_csv(copy / "report" / "results.csv")) == 4


def test_partial_sweep_is_reported_as_partial(executed, tmp_path):
    plan, _, plan_file, root = executed
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    interrupted = copy.joinpath(*plan.entries[1].path.split("/"))
    (interrupted / MARKER).unlink()  # as if killed before its marker
    result = invoke("report", plan_file, "--output-root", copy)
    assert result.exit_code == 0, result.output
    assert "PARTIAL: 1/2 entries done, 1 partial, 0 pending" in result.output
    assert "2 ok, 0 diverged, 2 missing of 4" in result.output
    assert f"partial  {plan.entries[1].path}" in result.output
    assert "missing samples: 2-3" in result.output
    assert "top 2 of 2 finished samples" in result.output
    rows = read_csv(copy / "report" / "results.csv")
    assert len(rows) == 4
    for row in rows:
        missing = int(row["sample"]) in plan.entries[1].samples
        assert row["status"] == ("missing" if missing else "ok")
        assert (row["final_return"] == "") == missing and (row["rank"] == "") == missing
        # the values of a missing sample are still the plan's
        assert float(row["actor_lr"]) == plan.samples[int(row["sample"])].values["actor_lr"]
    for name in PNGS:
        assert (copy / "report" / name).stat().st_size > 10_000

    shutil.rmtree(interrupted)  # never started
    result = invoke("report", plan_file, "--output-root", copy, "--format", "json",
                    "--no-plots")
    document = json.loads(result.stdout)
    assert document["complete"] is False
    assert document["entries"] == {"done": 1, "partial": 0, "pending": 1, "damaged": 0}
    assert document["unfinished_entries"] == [
        {"path": plan.entries[1].path, "state": "pending", "problem": ""}]


def test_changed_entry_files_are_not_trusted(executed, tmp_path):
    plan, _, plan_file, root = executed
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    summary = copy.joinpath(*plan.entries[0].path.split("/")) / "summary.json"
    summary.write_text(summary.read_text().replace('"ok"', '"ok" '))
    result = invoke("report", plan_file, "--output-root", copy, "--no-plots")
    assert result.exit_code == 0, result.output
    assert "damaged" in result.output and "checksum" in result.output
    assert {r["status"] for r in read_csv(copy / "report" / "results.csv")
            if int(r["sample"]) in plan.entries[0].samples} == {"missing"}


@pytest.mark.parametrize("name", ["curves.csv", "samples.json", "curves.npz"])
def test_every_file_of_an_entry_is_checked_not_only_the_ones_read(executed, tmp_path, name):
    """As ``status --verify``: a file the report does not read (curves.csv, samples.json) that
    changed after completion makes its entry damaged and its samples missing."""
    plan, _, plan_file, root = executed
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    edited = copy.joinpath(*plan.entries[0].path.split("/")) / name
    edited.write_bytes(edited.read_bytes() + b"\n")
    result = invoke("report", plan_file, "--output-root", copy, "--no-plots", "--format",
                    "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["complete"] is False
    assert document["entries"]["damaged"] == 1 and document["entries"]["done"] == 1
    [damaged] = document["unfinished_entries"]
    assert damaged["path"] == plan.entries[0].path and damaged["state"] == "damaged"
    assert f"{name} changed after the entry completed (checksum differs)" in damaged["problem"]
    rows = read_csv(copy / "report" / "results.csv")
    for row in rows:
        missing = int(row["sample"]) in plan.entries[0].samples
        assert row["status"] == ("missing" if missing else "ok")
    text = invoke("report", plan_file, "--output-root", copy, "--no-plots")
    assert f"damaged  {plan.entries[0].path}" in text.output, text.output
    assert "missing samples: 0-1" in text.output


def test_bad_input_is_a_located_error(executed, tmp_path):
    plan, pid, plan_file, root = executed
    result = invoke("report", tmp_path / "nope.msgpack")
    assert result.exit_code == 2 and "nope.msgpack: no such plan file" in result.output
    assert "Traceback" not in result.output

    result = invoke("report", plan_file, "--output-root", tmp_path / "missing")
    assert result.exit_code == 2 and "no such sweep directory" in result.output
    assert "hint: run the plan first: hyperlax exec" in result.output

    other = tmp_path / "other"
    other.mkdir()
    (other / SWEEP_RECORD).write_text(json.dumps({"plan_id": "f" * 64}))
    result = invoke("report", plan_file, "--output-root", other)
    assert result.exit_code == 2 and "belongs to another plan (ffffffffffff)" in result.output

    empty = tmp_path / "claimed"
    SweepDir(empty).claim(plan_file.read_bytes(), Owner.of(plan, pid))  # exec started, no more
    result = invoke("report", plan_file, "--output-root", empty)
    assert result.exit_code == 2
    assert "no completed entries yet (0/2 entries done, 0 partial, 2 pending)" in result.output
    assert f"hint: run the plan first: hyperlax exec {plan_file}" in result.output
    assert not (empty / "report").exists()


# --- a synthetic sweep: replicates, divergence and a categorical hyperparameter, no JAX --------

def fake_sweep(tmp: Path):
    """Entry outputs written by the runtime's own writer from made-up curves: sample i's
    replicate r returns (i + 1) * 10 + r * 2 at the last evaluation; sample 3 diverges."""
    space = '"network.activation" = { dist = "categorical", values = ["tanh", "relu"] }'
    plan, pid, data, plan_file = tiny_plan(tmp, n=6, sweep_extra="seeds_per_sample = 3",
                                           space=space)
    sweep, owner = SweepDir(tmp / "out"), Owner.of(plan, pid)
    sweep.claim(data, owner)
    steps = np.array([64, 128])
    for entry in plan.entries:
        subs = []
        for sb in entry.sub_batches:
            returns = np.array([[[5.0, (i + 1) * 10 + r * 2.0] for r in range(3)]
                                for i in sb.samples])
            finite = np.ones_like(returns, dtype=bool)
            if 3 in sb.samples:
                k = sb.samples.index(3)
                returns[k, 1, 1], finite[k, 1, 1] = np.nan, False
            subs.append(SubBatchResult(samples=sb.samples, eval_steps=steps, returns=returns,
                                       losses={}, finite=finite, steps_per_run=128,
                                       train_seconds=0.5, compile_seconds=1.0))
        write_entry(sweep, plan, owner, entry, EntryResult(sub_batches=subs, seconds=2.0))
    return plan, plan_file, tmp / "out"


def test_replicates_divergence_and_categoricals(tmp_path):
    plan, plan_file, root = fake_sweep(tmp_path)
    assert len(plan.structures) == 2  # tanh and relu
    result = invoke("report", plan_file, "--output-root", root, "--top", 2)
    assert result.exit_code == 0, result.output
    assert "5 ok, 1 diverged, 0 missing of 6" in result.output
    assert "diverged samples (non-finite return): 3" in result.output
    rows = {int(r["sample"]): r for r in read_csv(root / "report" / "results.csv")}
    for i, row in rows.items():
        assert row["replicates"] == "3" and row["network.activation"] in ("tanh", "relu")
        assert row["network.activation"] == plan.samples[i].values["network.activation"]
        if i == 3:
            assert row["status"] == "diverged" and row["rank"] == ""
            assert row["diverged_at_step"] == "128"
            assert float(row["final_return"]) == 42.0  # the replicates that finished
            assert float(row["best_return"]) == pytest.approx(np.mean([40.0, 5.0, 44.0]))
            continue
        finals = [(i + 1) * 10 + r * 2.0 for r in range(3)]
        assert row["status"] == "ok"
        assert float(row["final_return"]) == pytest.approx(np.mean(finals))
        assert float(row["final_return_std"]) == pytest.approx(np.std(finals))
    assert rows[5]["rank"] == "1" and rows[4]["rank"] == "2" and rows[0]["rank"] == "5"
    block = result.output[result.output.index("# sample 5"):result.output.index("\nwrote ")]
    assert tomllib.loads(block)["fixed"]["network.activation"] == \
        plan.samples[5].values["network.activation"]
    for name in PNGS:
        assert (root / "report" / name).stat().st_size > 10_000


@pytest.mark.subprocess
def test_report_imports_no_jax(executed, tmp_path):
    _, _, plan_file, root = executed
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hyperlax.cli.main import main\n"
        "assert 'matplotlib' not in sys.modules\n"
        f"r = CliRunner().invoke(main, ['report', {str(plan_file)!r}, '--output-root', "
        f"{str(root)!r}, '-o', {str(tmp_path / 'r')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'matplotlib' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'flax', 'optax', 'gymnax'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
