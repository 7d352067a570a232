"""Several workers on one plan and output root: --shard K/N array-job partitions, entry claims
(no entry runs in two places at once; a crashed worker's claim is taken over), and the sweep
directory claimed safely by workers that start together."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.errors import HyperlaxError
from hyperlax.plan.format import results_id
from hyperlax.storage.claims import HOST, PID_NAMESPACE, read_claim
from hyperlax.storage.sweepdir import CLAIM_SUFFIX, PLAN_COPY, SWEEP_RECORD, Owner, SweepDir
from test_crash import Exec, assert_same_results, states
from test_exec import tiny_plan
from concurrency_helpers import race


def exec_cli(plan_file: Path, root: Path, *args: str):
    return CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(root),
                                     *args])


def claims(root: Path) -> list[Path]:
    return sorted(root.rglob(f"*{CLAIM_SUFFIX}"))


# --- --shard K/N --------------------------------------------------------------------------

@pytest.mark.slow
def test_shards_partition_the_entries_by_index_mod_n(reference_run, tmp_path):
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    result = exec_cli(plan_file, root, "--shard", "0/2")
    assert result.exit_code == 0, result.output
    assert "shard 0/2: 2 of 3 entries (entry i belongs to shard i mod N)" in result.output
    assert "2 entries run, 0 skipped" in result.output
    assert states(root, plan) == ["done", "pending", "done"]
    result = exec_cli(plan_file, root, "--shard", "1/2")
    assert result.exit_code == 0, result.output
    assert "1 entries run, 0 skipped" in result.output
    assert_same_results(root, reference, plan, pid)
    assert claims(root) == []  # released once each marker was written


@pytest.mark.parametrize("shard, message", [
    ("2/2", "'2/2': K must be in 0..1; shards are numbered from 0"),
    ("-1/2", "'-1/2': K must be in 0..1"),
    ("0/0", "'0/0': N must be at least 1"),
    ("1", "'1': expected K/N, shard K of N (e.g. 0/4)"),
    ("a/b", "'a/b': expected K/N"),
])
def test_bad_shard_is_refused_before_anything_runs(tmp_path, shard, message):
    _, _, data = tiny_plan(tmp_path)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    result = exec_cli(plan_file, tmp_path / "out", "--shard", shard)
    assert result.exit_code == 2, result.output
    assert f"error: exec: --shard: {message}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


# --- two workers at once ------------------------------------------------------------------

def start_exec(plan_file: Path, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hyperlax", "exec", str(plan_file),
                             "--output-root", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ran_entries(stderr: str) -> list[str]:
    return re.findall(r"^(\S+): done in ", stderr, flags=re.M)


@pytest.mark.subprocess
def test_two_execs_started_together_run_disjoint_entries(tmp_path):
    plan, pid, data = tiny_plan(tmp_path, n=6, mode="sequential", batch=1)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    workers = [start_exec(plan_file, root) for _ in range(2)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    ran = [ran_entries(err) for _, err in outputs]
    every = sorted(ran[0] + ran[1])
    assert every == sorted(e.path for e in plan.entries), ran  # each entry run exactly once
    assert states(root, plan) == ["done"] * 6
    assert json.loads((root / SWEEP_RECORD).read_text()) == {"plan_id": pid,
                                                             "results_id": results_id(plan)}
    assert (root / PLAN_COPY).read_bytes() == data
    owner = Owner.of(plan, pid)
    assert all(SweepDir(root).verify(e.path, owner, e.index) == [] for e in plan.entries)
    assert claims(root) == [] and not list(root.rglob("*.tmp"))


@pytest.mark.stops
@pytest.mark.subprocess
def test_a_claimed_entry_waits_for_its_holder_and_a_dead_holder_is_taken_over(reference_run,
                                                                             tmp_path):
    """Worker A holds entry 1 (paused on it); worker B runs the rest, never entry 1, and waits.
    A is SIGKILLed: its claim names a dead process on this machine, so B takes over at once
    (no need to wait out the timeout) and finishes the sweep."""
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    a = Exec(plan_file, root, "entry-start@1")
    b = None
    try:
        a.wait_paused("entry-start@1")
        held = read_claim(SweepDir(root).claim_path(plan.entries[1].path))
        assert held is not None and (held.host, held.pid) == (HOST, a.proc.pid)
        assert held.pid_namespace == PID_NAMESPACE
        b = start_exec(plan_file, root)
        b_lines = stderr_lines(b)
        seen = wait_for_line(b_lines, f"waiting for 1 entries that other workers are running "
                                      f"({HOST}:{a.proc.pid})")
        assert states(root, plan) == ["done", "pending", "done"]  # B ran 2, not 1
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        out = finish(b)
        err = seen + drain(b_lines)
    finally:
        a.kill()
        if b is not None and b.poll() is None:
            b.kill()
    assert b.returncode == 0, err
    assert ran_entries(err) == [plan.entries[2].path, plan.entries[1].path]
    assert "2 entries run, 1 skipped" in out
    assert_same_results(root, reference, plan, pid)
    assert claims(root) == []


@pytest.mark.subprocess
def test_stale_claims_of_other_hosts_are_taken_over(reference_run, tmp_path):
    """Entry 0's claim is from a host that stopped heartbeating long ago: taken over at once.
    Entry 1's claim is fresh, so the exec waits for it; once it has had no heartbeat for
    --claim-timeout seconds, the exec takes it over.

    No step depends on how fast the machine is: the timeout is ten minutes, so the fresh claim
    stays fresh however long JAX takes to start and compile, and "no heartbeat for that long"
    is made by setting the claim's age with os.utime once the exec is seen waiting."""
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    sweep = SweepDir(root)
    sweep.claim(plan_file.read_bytes(), Owner.of(plan, pid))
    timeout = 600.0
    paths = [sweep.claim_path(plan.entries[i].path) for i in range(2)]
    for index, (path, age) in enumerate(zip(paths, [10 * timeout, 0.0])):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"host": "elsewhere", "pid": 4242, "token": f"t{index}",
                                    "entry": index}))
        os.utime(path, (time.time() - age, time.time() - age))
    worker = start_exec(plan_file, root, "--claim-timeout", f"{timeout:g}")
    lines = stderr_lines(worker)
    try:
        waiting = ("waiting for 1 entries that other workers are running (elsewhere:4242); "
                   f"their claims are taken over if they stop for {timeout:g}s")
        seen = wait_for_line(lines, waiting)
        # waiting, not running it: the fresh claim is still the other host's
        assert states(root, plan) == ["done", "pending", "done"], seen
        assert read_claim(paths[1]).token == "t1"
        assert ran_entries(seen) == [plan.entries[0].path, plan.entries[2].path]
        then = time.time() - 2 * timeout  # the other host has been silent for too long
        os.utime(paths[1], (then, then))
        out = finish(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    err = seen + drain(lines)
    assert worker.returncode == 0, err
    assert ran_entries(err) == [plan.entries[0].path, plan.entries[2].path,
                                plan.entries[1].path]
    assert "3 entries run, 0 skipped" in out
    assert_same_results(root, reference, plan, pid)
    assert claims(root) == []


def stderr_lines(proc: subprocess.Popen) -> queue.Queue:
    """``proc``'s stderr lines as they come (None at the end), read by a thread so that a test
    waiting for a line can give up at a deadline instead of blocking."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue, text: str, timeout: float = 240.0) -> str:
    """Everything read until a line containing ``text``; fails at the deadline or the end."""
    seen, deadline = "", time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {text!r} within {timeout:g}s:\n{seen}") from None
        if line is None:
            raise AssertionError(f"exec ended before {text!r}:\n{seen}")
        seen += line
        if text in line:
            return seen


def finish(proc: subprocess.Popen, timeout: float = 240.0) -> str:
    """Wait for ``proc`` (whose stderr a ``stderr_lines`` thread reads) and return its stdout,
    a few short lines."""
    proc.wait(timeout=timeout)
    return proc.stdout.read()


def drain(lines: queue.Queue) -> str:
    """The rest of the lines, once the process has ended."""
    rest = ""
    while (line := lines.get(timeout=30)) is not None:
        rest += line
    return rest


# --- workers setting up one sweep directory (the claim protocol: test_claims.py) ----------

def test_workers_racing_to_set_up_one_sweep_directory(tmp_path):
    plan_a, pid_a, data_a = tiny_plan(tmp_path, n=2, name="a.toml")
    plan_b, pid_b, data_b = tiny_plan(tmp_path, n=3, name="b.toml")
    a, b = Owner.of(plan_a, pid_a), Owner.of(plan_b, pid_b)
    same = tmp_path / "same"
    assert race(8, lambda i: SweepDir(same).claim(data_a, a)) == [None] * 8
    assert a.owns(SweepDir(same).record()) and (same / PLAN_COPY).read_bytes() == data_a
    assert sorted(p.name for p in same.iterdir()) == [SWEEP_RECORD, PLAN_COPY]

    mixed = tmp_path / "mixed"
    plans = [(data_a, a), (data_b, b)] * 4
    results = race(8, lambda i: SweepDir(mixed).claim(*plans[i]))
    record = SweepDir(mixed).record()
    owner = a if a.owns(record) else b
    assert owner.owns(record)
    for (data, who), result in zip(plans, results):
        if who == owner:
            assert result is None
        else:
            assert isinstance(result, HyperlaxError) and "belongs to another plan" in str(result)
    assert (mixed / PLAN_COPY).read_bytes() == (data_a if owner == a else data_b)
