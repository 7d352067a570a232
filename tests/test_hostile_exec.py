"""Hostile files where exec, status and report read their own records, and symbolic links
planted where they write (issue #23): halving decisions and checkpoint records that are FIFOs,
deeply nested, oversized, links to ``/dev/zero`` or out of the sweep, or tampered with their
checksum recomputed; ``rungs/``, ``report/``, a TensorBoard run directory and a benchmark's
sweep directory linked out of the directory hyperlax was given; rung budgets that divide by
zero or round to nothing. Each: a located message, its exit status, no traceback, within
seconds (FIFO cases run in a subprocess with a timeout), nothing written outside.

The corpus is ``tests/hostile_files/decisions`` and ``tests/hostile_files/checkpoint_records``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tiny_sweep
from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.exec.checkpoints import files as checkpoint_files
from hyperlax.exec.halving import decide as H
from hyperlax.plan.format import encode_plan, plan_id
from hyperlax.storage.atomic import OutsideRootError
from hyperlax.storage.sweepdir import Owner, SweepDir
from test_halving import MANIFEST, make_plan

CORPUS = Path(__file__).parent / "hostile_files"
DECISIONS = sorted((CORPUS / "decisions").glob("*.json"))
RECORDS = sorted((CORPUS / "checkpoint_records").glob("*.json"))


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """hyperlax in a subprocess: a FIFO that hung it would fail the test by the timeout,
    not hang the suite."""
    return subprocess.run([sys.executable, "-m", "hyperlax", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def refused(result, status: int, *words: str) -> str:
    output = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == status, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, (word, output)
    return output


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture(scope="module")
def halving(tmp_path_factory):
    """A finished halving sweep (8 -> 4 -> 2 samples) and its plan file; tests copy it."""
    from hyperlax.exec.local_exec import execute

    tmp = tmp_path_factory.mktemp("hostile_halving")
    plan, pid, data = make_plan(tmp)
    execute(plan, pid, data, tmp / "sweep")
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    return tmp / "sweep", plan_file, plan, pid


@pytest.fixture
def copy(halving, tmp_path):
    root, plan_file, plan, pid = halving
    target = tmp_path / "sweep"
    shutil.copytree(root, target, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return target, plan_file, plan, pid, outside


def decision_file(root: Path) -> Path:
    return root / H.decision_path(0)


# --- halving decisions -------------------------------------------------------------------------

@pytest.mark.parametrize("sample", DECISIONS, ids=lambda p: p.stem)
def test_a_hostile_decision_from_the_corpus_is_refused_by_status_and_exec(copy, sample):
    root, plan_file, *_ = copy
    shutil.copyfile(sample, decision_file(root))
    for command in ("status", "exec"):
        result = invoke(command, plan_file, "--output-root", root)
        refused(result, 1, "rung_0.json", "damaged rung decision", "delete it")


def test_a_decision_that_is_a_fifo_never_hangs_status_or_exec(copy):
    root, plan_file, *_ = copy
    path = decision_file(root)
    path.unlink()
    os.mkfifo(path)
    for command in ("status", "exec"):
        result = run_cli(command, plan_file, "--output-root", root, timeout=60)
        refused(result, 1, "rung_0.json", "FIFO", "damaged rung decision")


def test_an_oversized_decision_is_refused_before_it_is_read(copy):
    root, plan_file, *_ = copy
    with open(decision_file(root), "wb") as f:
        f.truncate(17 << 20)   # sparse: more than any record may have
    refused(invoke("status", plan_file, "--output-root", root), 1, "rung_0.json",
            "more than")


@pytest.mark.parametrize("target", ["/dev/zero", "outside"])
def test_a_decision_linked_out_of_the_sweep_is_refused(copy, target):
    root, plan_file, plan, pid, outside = copy
    path = decision_file(root)
    if target == "outside":   # the very same decision, moved out and linked back
        target = outside / "rung_0.json"
        shutil.move(path, target)
    else:
        path.unlink()
    path.symlink_to(target)
    for command in ("status", "exec"):
        result = run_cli(command, plan_file, "--output-root", root, timeout=60)
        refused(result, 2, "rung_0.json", "outside", "remove the symbolic link")


def _retamper(root: Path, edit) -> None:
    """Edit the decision, then recompute its checksum, as an attacker who read the code
    would."""
    path = decision_file(root)
    doc = json.loads(path.read_text())
    edit(doc)
    body = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = H._checksum(body)
    path.write_text(json.dumps(doc))


def test_a_decision_reordered_with_its_checksum_recomputed_is_caught(copy):
    """The last ranked sample moved to the top (values kept): its ranking no longer follows
    its values."""
    root, plan_file, plan, *_ = copy

    def promote_the_last(doc):
        ranking = doc["ranking"]
        ranking.insert(0, ranking.pop())
        for k, r in enumerate(ranking):
            r["rank"] = k + 1
        keep = plan.halving.rungs[1].samples
        doc["survivors"] = sorted(r["sample"] for r in ranking[:keep])

    _retamper(root, promote_the_last)
    for command in ("status", "exec", "report"):
        args = [command, plan_file, "--output-root", root]
        if command == "report":
            args += ["-o", root.parent / "rep"]
        refused(invoke(*args), 1, "rung_0.json", "not in the order of its values")


def test_a_decision_with_a_value_edited_and_the_checksum_recomputed_is_caught(copy):
    """The last sample's value raised to 99999 and moved to the top, so the ranking, the
    survivors and the checksum all agree: only its curves tell. exec checks them before
    anyone acts on the decision."""
    root, plan_file, plan, *_ = copy

    def boost_the_last(doc):
        ranking = doc["ranking"]
        last = ranking.pop()
        last["value"] = 99999.0
        ranking.insert(0, last)
        for k, r in enumerate(ranking):
            r["rank"] = k + 1
        keep = plan.halving.rungs[1].samples
        doc["survivors"] = sorted(r["sample"] for r in ranking[:keep])

    _retamper(root, boost_the_last)
    # the decision after rung 1 no longer fits the survivors it now names
    refused(invoke("exec", plan_file, "--output-root", root), 1, "damaged rung decision")
    # without it, rung 0's own values give the edit away, before rung 1 runs
    (root / H.decision_path(1)).unlink()
    before = tree(root)
    refused(invoke("exec", plan_file, "--output-root", root), 1, "rung_0.json",
            "not what their curves give")
    assert tree(root) == before


def test_rungs_linked_out_no_decision_is_written_outside(copy):
    """Rung 0 complete, no decision yet, ``rungs/`` a link to a directory outside: exec
    refuses before writing anything there."""
    root, plan_file, plan, pid, outside = copy
    shutil.rmtree(root / "rungs")
    (root / "rungs").symlink_to(outside, target_is_directory=True)
    result = run_cli("exec", plan_file, "--output-root", root, timeout=300)
    refused(result, 2, "outside", "remove the symbolic link")
    assert tree(outside) == []


def test_publishing_a_decision_through_a_planted_link_writes_nothing(copy):
    root, plan_file, plan, pid, outside = copy
    owner = Owner.of(plan, pid)
    entries = H.rung_entries(plan, 0)
    decision = H.read_decision(root, plan, owner, 0, entries)
    shutil.rmtree(root / "rungs")
    (root / "rungs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRootError):
        H.publish_decision(root, plan, owner, decision, entries)
    assert tree(outside) == []


# --- checkpoint records ------------------------------------------------------------------------

@pytest.fixture
def checkpointed(tmp_path):
    """A claimed sweep with checkpoints on and nothing run: its first entry's checkpoint
    directory, where tests plant records."""
    manifest = tmp_path / "s.toml"
    manifest.write_text(tiny_sweep(sweep_extra="checkpoint_every = 1"))
    plan, _ = compile_manifest(manifest)
    data, pid = encode_plan(plan), plan_id(plan)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    SweepDir(root).claim(data, Owner.of(plan, pid))
    directory = root / checkpoint_files.checkpoint_path(plan.entries[0].path)
    directory.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return root, plan_file, plan, directory, outside


def test_a_checkpoint_record_that_is_a_fifo_never_hangs_status(checkpointed):
    root, plan_file, plan, directory, _ = checkpointed
    os.mkfifo(directory / checkpoint_files.record_name(0))
    result = run_cli("status", plan_file, "--output-root", root, timeout=60)
    refused(result, 0, "pending")
    assert checkpoint_files.read_record(directory, 0, root=root)[1] is not None


@pytest.mark.parametrize("sample", RECORDS, ids=lambda p: p.stem)
def test_a_hostile_checkpoint_record_is_ignored_with_a_reason(checkpointed, sample):
    root, plan_file, plan, directory, _ = checkpointed
    shutil.copyfile(sample, directory / checkpoint_files.record_name(0))
    record, problem = checkpoint_files.read_record(directory, 0, root=root)
    assert record is None or checkpoint_files.record_problem(
        record, checkpoint_files.expected(Owner.of(plan, "x"), plan.entries[0], 0, 2),
        directory) is not None
    if record is None:
        assert "sub_batch_0.json" in problem
    refused(invoke("status", plan_file, "--output-root", root), 0, "pending")


@pytest.mark.parametrize("target", ["/dev/zero", "outside"])
def test_a_checkpoint_record_linked_out_is_not_read(checkpointed, target):
    root, plan_file, plan, directory, outside = checkpointed
    if target == "outside":
        target = outside / "sub_batch_0.json"
        target.write_text('{"format": "hyperlax-checkpoint-1", "evaluations": 3}')
    (directory / checkpoint_files.record_name(0)).symlink_to(target)
    record, problem = checkpoint_files.read_record(directory, 0, root=root)
    assert record is None and "outside" in problem
    assert checkpoint_files.progress(root, plan.entries[0]) == [None, ] * len(
        plan.entries[0].sub_batches)


def test_checkpoint_data_larger_than_its_record_says_is_not_read(checkpointed):
    root, _, _, directory, _ = checkpointed
    name = checkpoint_files.data_name(0, 1)
    with open(directory / name, "wb") as f:
        f.truncate(1 << 20)
    data, problem = checkpoint_files.read_data(directory, {"file": name, "bytes": 10,
                                                           "sha256": "0"}, root=root)
    assert data is None and "more than" in problem


def test_a_checkpoint_is_never_written_or_deleted_through_a_planted_link(checkpointed):
    """A link planted as the record (or an old data file) leading out: the save is refused,
    the file outside untouched, and an old data file linked out is not followed."""
    root, _, plan, directory, outside = checkpointed
    victim = outside / "victim"
    victim.write_text("keep me")
    (directory / checkpoint_files.record_name(0)).symlink_to(victim)
    want = checkpoint_files.expected(Owner.of(plan, "x"), plan.entries[0], 0, 2)
    with pytest.raises(OutsideRootError):
        checkpoint_files.write(directory, want, 1, 1, b"data", root=root)
    assert victim.read_text() == "keep me"
    # the checkpoint directory itself linked out of the root: refused too, not just
    # checked against itself
    shutil.rmtree(directory)
    directory.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRootError):
        checkpoint_files.write(directory, want, 1, 1, b"data", root=root)
    assert tree(outside) == ["victim"]
    checkpoint_files.remove(root, plan.entries[0].path)
    assert tree(outside) == ["victim"]


# --- report, TensorBoard -----------------------------------------------------------------------

def test_report_dir_linked_out_of_the_sweep_writes_nothing_outside(copy):
    root, plan_file, plan, pid, outside = copy
    (root / "report").symlink_to(outside, target_is_directory=True)
    result = invoke("report", plan_file, "--output-root", root)
    refused(result, 2, "outside", "remove the symbolic link")
    assert tree(outside) == []


def test_report_file_linked_out_writes_nothing_outside(copy):
    root, plan_file, plan, pid, outside = copy
    (root / "report").mkdir()
    victim = outside / "victim.csv"
    victim.write_text("keep me")
    (root / "report" / "results.csv").symlink_to(victim)
    result = invoke("report", plan_file, "--output-root", root, "--no-plots")
    refused(result, 2, "outside")
    assert victim.read_text() == "keep me"


def test_report_o_is_the_users_directory(copy, tmp_path):
    """-o names a directory of the user's: a link there is theirs to follow."""
    root, plan_file, plan, pid, outside = copy
    link = tmp_path / "mine"
    link.symlink_to(outside, target_is_directory=True)
    result = invoke("report", plan_file, "--output-root", root, "-o", link, "--no-plots")
    assert result.exit_code == 0, result.output
    assert "results.csv" in tree(outside)


def test_a_tensorboard_run_directory_linked_out_is_refused(copy, tmp_path):
    pytest.importorskip("tensorboardX")
    root, plan_file, plan, pid, outside = copy
    board = tmp_path / "board"
    board.mkdir()
    (board / "sample_00000").symlink_to(outside, target_is_directory=True)
    result = invoke("report", plan_file, "--output-root", root, "-o", tmp_path / "rep",
                    "--no-plots", "--tensorboard", board)
    refused(result, 2, "outside")
    assert tree(outside) == []


def test_an_entry_summary_that_is_a_fifo_makes_the_entry_damaged_not_a_hang(copy):
    root, plan_file, plan, *_ = copy
    summary = root / plan.entries[0].path / "summary.json"
    summary.unlink()
    os.mkfifo(summary)
    result = run_cli("report", plan_file, "--output-root", root, "-o",
                     root.parent / "rep", "--no-plots", timeout=120)
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr


# --- benchmark directories ---------------------------------------------------------------------

def test_benchmark_sweep_directory_linked_out_is_refused(tmp_path):
    manifest = tmp_path / "a.toml"
    manifest.write_text(tiny_sweep(name="a"))
    out, outside = tmp_path / "bench", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "a").symlink_to(outside, target_is_directory=True)
    result = invoke("benchmark", manifest, "--output-root", out)
    refused(result, 2, "outside", "remove the symbolic link")
    assert tree(outside) == []


def test_run_benchmark_directory_linked_out_is_refused(tmp_path, monkeypatch):
    from conftest import TINY_RECIPE

    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TINY_RECIPE)
    outside = tmp_path / "outside"
    outside.mkdir()
    flags = ["run-benchmark", "--benchmark-name", "B", "--algos", "tiny.toml",
             "--envs", "gymnax.cartpole", "--sweep-modes", "batched",
             "--num_samples_per_run", 2, "--hparam-batch-size", 2,
             "--num-agents-slash-seeds", 1]
    Path("out").mkdir()
    Path("out/B").symlink_to(outside, target_is_directory=True)   # the benchmark directory
    refused(invoke(*flags, "--output-root", "out"), 2, "outside")
    Path("out/B").unlink()
    Path("out/B").mkdir()   # one run's sweep directory
    Path("out/B/tiny_gymnax.cartpole_batched-N2-default").symlink_to(outside)
    refused(invoke(*flags, "--output-root", "out"), 2, "outside")
    refused(invoke(*flags, "--resume-from", "out/B"), 2, "outside")
    assert tree(outside) == []


# --- rung budgets ------------------------------------------------------------------------------

@pytest.mark.parametrize("rungs, words", [
    ('rungs = ["1/0", "1"]', ["sweep.rungs[0]", "divides by zero"]),
    ('rungs = ["1/99999999999999999999999", "1"]',
     ["sweep.rungs[0]", "less than one evaluation"]),
    ('rungs = [1e-300, "1"]', ["sweep.rungs[0]", "less than one evaluation"]),
    ('rungs = ["1/' + "9" * 5000 + '", "1"]', ["sweep.rungs[0]", "too many digits"]),
])
def test_a_rung_budget_that_cannot_be_trained_is_a_located_manifest_error(tmp_path, rungs,
                                                                          words):
    manifest = tmp_path / "sweep.toml"
    manifest.write_text(MANIFEST.format(rungs=rungs + "\n"))
    result = invoke("plan", manifest, "-o", tmp_path / "plan.msgpack")
    output = refused(result, 2, *words)
    assert "edited" not in output and not (tmp_path / "plan.msgpack").exists()
