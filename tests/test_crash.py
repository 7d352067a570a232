"""Nothing lost: exec killed (SIGKILL) at exact points, stopped by SIGINT / SIGTERM, or failing
to write (disk full, read-only), then resumed. Completed entries keep their bytes, the
interrupted one is redone, nothing is marked complete that is not, and the final results equal
an uninterrupted run's.

Exact points come from ``exec_points`` (tests/exec_points.py), installed in the exec
subprocess: it says it paused at the point and sleeps there until the test kills it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.errors import HyperlaxError
from hyperlax.storage import atomic, sweepdir
from hyperlax.storage.atomic import atomic_write
from hyperlax.storage.sweepdir import MARKER, Owner, SweepDir
import exec_points
from process_helpers import ExecProcess
from test_exec import tiny_plan

PAUSE_TIMEOUT = 240  # seconds; generous, the machine is shared


def entry_dir(root: Path, plan, index: int) -> Path:
    return root.joinpath(*plan.entries[index].path.split("/"))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def assert_same_results(root: Path, reference: Path, plan, pid: str) -> None:
    """curves.npz arrays equal; summary.json equal apart from timings."""
    for i in range(len(plan.entries)):
        a, b = entry_dir(root, plan, i), entry_dir(reference, plan, i)
        with np.load(a / "curves.npz") as x, np.load(b / "curves.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for name in x.files:
                assert np.array_equal(x[name], y[name], equal_nan=True), name
        assert untimed(a / "summary.json") == untimed(b / "summary.json")
        assert (a / "samples.json").read_bytes() == (b / "samples.json").read_bytes()
        assert (a / "curves.csv").read_bytes() == (b / "curves.csv").read_bytes()
        assert SweepDir(root).verify(plan.entries[i].path, Owner.of(plan, pid), i) == []


def untimed(path: Path) -> dict:
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if not k.endswith("seconds")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip(json.loads(path.read_text()))


class Exec(ExecProcess):
    """``hyperlax exec`` in a subprocess, paused at ``point`` (``exec_points``)."""

    def __init__(self, plan_file: Path, root: Path, point: str):
        super().__init__(plan_file, root, exec_points.environment(pause=point))

    def wait_paused(self, point: str) -> None:
        expected = f"{exec_points.PAUSED} {point.split('@')[0]}"
        self.wait_line(lambda line: line.strip() == expected, point, PAUSE_TIMEOUT)

    def send(self, signum: int) -> tuple[int, str]:
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=PAUSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        while (line := self.lines.get(timeout=30)) is not None:
            self.stderr.append(line)
        return code, "".join(self.stderr)



def killed_at(plan_file: Path, root: Path, point: str) -> None:
    run = Exec(plan_file, root, point)
    try:
        run.wait_paused(point)
        code, _ = run.send(signal.SIGKILL)
        assert code == -signal.SIGKILL
    finally:
        run.kill()


def resume(plan_file: Path, root: Path) -> str:
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(root)])
    assert result.exit_code == 0, result.output
    return result.output


def states(root: Path, plan) -> list[str]:
    sweep = SweepDir(root)
    return [sweep.state(e.path) for e in plan.entries]


@pytest.mark.stops
@pytest.mark.subprocess
def test_sigkill_at_every_stage_then_resume_loses_nothing(reference_run, tmp_path):
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"

    killed_at(plan_file, root, "compile")  # first run: nothing trained yet
    assert states(root, plan) == ["pending"] * 3

    killed_at(plan_file, root, "after-file:curves.npz@0")  # halfway through writing entry 0
    assert states(root, plan) == ["partial", "pending", "pending"]
    assert sorted(p.name for p in entry_dir(root, plan, 0).iterdir()) == [
        "curves.npz", "samples.json"]

    killed_at(plan_file, root, "before-marker@1")  # entry 1: every file, but no marker
    assert states(root, plan) == ["done", "partial", "pending"]
    first = snapshot(entry_dir(root, plan, 0))
    assert MARKER not in snapshot(entry_dir(root, plan, 1))

    killed_at(plan_file, root, "entry-start@2")  # between entries
    assert states(root, plan) == ["done", "done", "pending"]
    second = snapshot(entry_dir(root, plan, 1))
    assert snapshot(entry_dir(root, plan, 0)) == first

    output = resume(plan_file, root)
    assert "1 entries run, 2 skipped" in output
    assert states(root, plan) == ["done"] * 3
    assert snapshot(entry_dir(root, plan, 0)) == first
    assert snapshot(entry_dir(root, plan, 1)) == second
    assert_same_results(root, reference, plan, pid)
    assert not [p for p in root.rglob("*.tmp")]


@pytest.mark.stops
@pytest.mark.subprocess
@pytest.mark.parametrize("signum, point, done", [
    (signal.SIGTERM, "after-file:curves.csv@1", 1),
    (signal.SIGINT, "entry-start@2", 2),
])
def test_sigint_and_sigterm_stop_cleanly_with_a_resume_hint(reference_run, tmp_path, signum,
                                                            point, done):
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    run = Exec(plan_file, root, point)
    try:
        run.wait_paused(point)
        code, stderr = run.send(signum)
    finally:
        run.kill()
    assert code == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert (f"interrupted by {name}: {done} of 3 entries complete; resume with: hyperlax exec "
            f"{plan_file} --output-root {root}") in stderr
    assert "Traceback" not in stderr
    assert states(root, plan).count("done") == done
    assert not [p for p in root.rglob("*.tmp")]
    kept = snapshot(entry_dir(root, plan, 0))
    resume(plan_file, root)
    assert snapshot(entry_dir(root, plan, 0)) == kept
    assert_same_results(root, reference, plan, pid)


# --- disk errors, in-process ---------------------------------------------------------------

def failing_write(fail_when):
    """atomic_write that raises ENOSPC for the paths ``fail_when`` picks."""
    real = atomic.atomic_write

    def write(path: Path, data: bytes, *, within: Path | None) -> None:
        if fail_when(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data, within=within)
    return write


@pytest.fixture
def two_entries(tmp_path):
    plan, pid, data = tiny_plan(tmp_path, n=4, batch=2)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    return plan, plan_file, tmp_path / "out"


def exec_cli(plan_file: Path, root: Path, *args: str):
    return CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(root),
                                     *args])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["curves.csv", MARKER])
def test_disk_full_stops_exec_and_marks_nothing_it_should_not(two_entries, monkeypatch, name):
    plan, plan_file, root = two_entries
    second = plan.entries[1].path.split("/")[-1]
    monkeypatch.setattr(atomic, "atomic_write", failing_write(
        lambda p: p.name == name and p.parent.name == second))
    result = exec_cli(plan_file, root)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert (f"error: {entry_dir(root, plan, 1)}: cannot write this entry's outputs; it is not "
            "marked complete: No space left on device") in result.output
    assert "hint: free disk space" in result.output  # ENOSPC: the hint names the cause
    assert "then run the same command again" in result.output
    assert states(root, plan) == ["done", "partial"]
    first = snapshot(entry_dir(root, plan, 0))

    monkeypatch.undo()  # space freed
    result = exec_cli(plan_file, root)
    assert result.exit_code == 0, result.output
    assert states(root, plan) == ["done", "done"]
    assert snapshot(entry_dir(root, plan, 0)) == first


def test_disk_full_while_claiming_the_sweep_directory(two_entries, monkeypatch):
    plan, plan_file, root = two_entries
    monkeypatch.setattr(atomic, "atomic_write", failing_write(
        lambda p: p.name == sweepdir.SWEEP_RECORD))
    result = exec_cli(plan_file, root)
    assert result.exit_code == 1, result.output
    assert f"error: {root}: cannot set up the sweep directory: No space left on device" in \
        result.output
    assert not any(root.rglob(MARKER))
    monkeypatch.undo()  # a later exec of the same plan accepts the half-claimed directory
    assert SweepDir(root).record() is None
    SweepDir(root).check_owner(Owner("any plan", "any results"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_read_only_sweep_directory(two_entries):
    plan, plan_file, root = two_entries
    root.mkdir()
    root.chmod(0o555)
    try:
        result = exec_cli(plan_file, root)
    finally:
        root.chmod(0o755)
    assert result.exit_code == 1, result.output
    assert "cannot set up the sweep directory" in result.output
    assert "Traceback" not in result.output


def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_bytes(b"old")

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError):
        atomic_write(path, b"new", within=tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_claim_killed_halfway_does_not_lock_the_directory(tmp_path):
    """A first exec SIGKILLed after the plan copy (or mid-write of the record) leaves a plan
    copy and a temporary; the next exec must accept the directory, not call it foreign."""
    root = tmp_path / "out"
    root.mkdir()
    (root / sweepdir.PLAN_COPY).write_bytes(b"plan")
    (root / f".{sweepdir.SWEEP_RECORD}.abc123.tmp").write_bytes(b"{")
    SweepDir(root).check_owner(Owner("f" * 64, "e" * 64))
    (root / "thesis.tex").write_text("precious")
    with pytest.raises(HyperlaxError, match="not a hyperlax sweep directory"):
        SweepDir(root).check_owner(Owner("f" * 64, "e" * 64))
