"""Stopping exec: SIGINT or SIGTERM at any moment (start-up, JAX import, tracing, compile,
training, writing) ends a ``hyperlax exec`` process within seconds, with 130 / 143 and the
resume hint, never swallowed and never a crash; what it leaves verifies, and the resume
command completes the sweep.

Where the process is comes from ``exec_points`` traced in the exec subprocess (it prints
``EXEC_POINT <point> <entry>``, tests/exec_points.py); stops land at a seeded random
delay after such a point, so each phase is hit however fast or loaded the machine is.
"""

from __future__ import annotations

import queue
import random
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan
from hyperlax.storage.sweepdir import CLAIM_SUFFIX, SweepDir
import exec_points
from process_helpers import ExecProcess
from conftest import tiny_sweep
from test_exec import tiny_plan

BOUND = 10.0          # seconds from the signal to the exit; generous for a loaded 2-core machine
START_TIMEOUT = 240   # seconds to reach the anchor point
CRASH_SIGNS = ("Traceback", "Exception ignored", "pure virtual", "Segmentation fault",
               "Fatal Python error", "core dumped")


@dataclass
class Stopped:
    code: int
    latency: float        # seconds from the (last) signal to the exit
    stderr: str


class Exec(ExecProcess):
    """``hyperlax exec`` in a subprocess that traces its exec points."""

    def __init__(self, plan_file: Path, root: Path, compile_cache: Path | None = None,
                 args: tuple[str, ...] = ()):
        env = exec_points.environment(trace_points=True)
        if compile_cache is not None:  # through the environment: the hint stays the same
            env["HYPERLAX_COMPILE_CACHE"] = str(compile_cache)
        self.started = time.monotonic()
        super().__init__(plan_file, root, env, args)

    def wait_for(self, anchor: str) -> None:
        """Until stderr traces the point ``<anchor>`` (``start``: at once)."""
        if anchor != "start":
            self.wait_line(lambda line: line.startswith(f"{exec_points.AT} {anchor}"), anchor,
                           START_TIMEOUT)

    def stop(self, *signals: tuple[float, int]) -> Stopped:
        """Send each (delay, signal) in turn; the exit status, the latency from the last signal
        sent to the exit, and all of stderr."""
        sent = time.monotonic()
        for delay, signum in signals:
            time.sleep(delay)
            assert self.proc.poll() is None, (
                "exec finished before the signal:\n" + "".join(self.stderr) + self._rest())
            self.proc.send_signal(signum)
            sent = time.monotonic()
        try:
            code = self.proc.wait(timeout=BOUND + 30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("exec did not end after the signal:\n"
                                 + "".join(self.stderr) + self._rest()) from None
        latency = time.monotonic() - sent
        return Stopped(code, latency, "".join(self.stderr) + self._rest())

    def _rest(self) -> str:
        rest = []
        while True:
            try:
                line = self.lines.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                break
            rest.append(line)
        self.stderr.extend(rest)
        return "".join(rest)



def assert_clean_stop(result: Stopped, signum: int) -> None:
    context = f"latency {result.latency:.2f}s, stderr:\n{result.stderr}"
    assert result.code == 128 + signum, context
    assert result.latency < BOUND, context
    assert f"interrupted by {signal.Signals(signum).name}" in result.stderr, context
    assert "resume with: hyperlax " in result.stderr, context
    for sign in CRASH_SIGNS:
        assert sign not in result.stderr, context


def assert_consistent(plan_file: Path, root: Path, plan, result: Stopped) -> None:
    """Every marked entry verifies, no temporary is left, and the hint's count is the truth."""
    if root.exists():
        status = CliRunner().invoke(main, ["status", str(plan_file), "--output-root",
                                           str(root), "--verify"])
        assert status.exit_code == 0, status.output
        assert not [p for p in root.rglob("*.tmp")]
    done = sum(SweepDir(root).state(e.path) == "done" for e in plan.entries)
    counted = re.search(r"interrupted by SIG\w+: (\d+) of (\d+) entries complete",
                        result.stderr)
    if counted:
        assert (int(counted[1]), int(counted[2])) == (done, len(plan.entries)), result.stderr


def resume_command(stderr: str) -> list[str]:
    line = stderr[stderr.rindex("resume with: "):].splitlines()[0]
    words = shlex.split(line[len("resume with: "):])
    assert words[:2] == ["hyperlax", "exec"], line
    return words[1:]


@pytest.fixture(scope="module")
def three_entries(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stops")
    plan, _, data = tiny_plan(tmp, n=6, batch=2)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    return plan, plan_file


# (anchor point, delay range in seconds, a fresh compile cache): each phase of an exec.
PHASES = [
    ("start", (0.0, 0.3), False),                   # interpreter, CLI import, start-up
    ("start", (0.3, 2.0), False),                   # exec set-up, JAX import
    ("entry-start 0", (0.0, 0.5), False),           # tracing (cached compile)
    ("compile 0", (0.2, 1.5), False),               # lowering, loading the cached program
    ("compile 0", (1.0, 4.0), True),                # a real XLA compile (seconds, in C++)
    ("train 0", (0.0, 0.02), False),                # training call, its results
    ("train 1", (0.0, 0.02), False),
    ("after-file:samples.json 0", (0.0, 0.01), False),  # writing files
    ("after-file:curves.csv 1", (0.0, 0.01), False),
    ("before-marker 0", (0.0, 0.005), False),       # the marker
    ("before-marker 1", (0.0, 0.005), False),
    ("entry-start 1", (0.0, 0.01), False),          # between entries
]
STOPS = [(anchor, round(random.Random(i).uniform(*span), 3), fresh,
          random.Random(100 + i).choice([signal.SIGINT, signal.SIGTERM]))
         for i, (anchor, span, fresh) in enumerate(PHASES)]
LATENCIES: list[float] = []


@pytest.mark.parametrize("anchor, delay, fresh, signum", STOPS,
                         ids=[f"{a.replace(' ', '@')}+{d}s-{signal.Signals(s).name}"
                              f"{'-fresh' if f else ''}" for a, d, f, s in STOPS])
def test_stop_at_a_random_moment(three_entries, tmp_path, anchor, delay, fresh, signum):
    plan, plan_file = three_entries
    root = tmp_path / "out"
    run = Exec(plan_file, root, compile_cache=tmp_path / "cache" if fresh else None)
    try:
        run.wait_for(anchor)
        result = run.stop((delay, signum))
    finally:
        run.kill()
    LATENCIES.append(result.latency)
    print(f"stop {anchor}+{delay}s {signal.Signals(signum).name}: exit {result.code} after "
          f"{result.latency:.2f}s")
    assert_clean_stop(result, signum)
    assert_consistent(plan_file, root, plan, result)
    resumed = CliRunner().invoke(main, resume_command(result.stderr))
    assert resumed.exit_code == 0, resumed.output
    assert all(SweepDir(root).state(e.path) == "done" for e in plan.entries)


@pytest.fixture(scope="module")
def long_training(tmp_path_factory):
    """One entry whose training call lasts well over BOUND seconds (~30 s idle)."""
    tmp = tmp_path_factory.mktemp("long")
    manifest = tmp / "long.toml"
    manifest.write_text(tiny_sweep()
                        .replace("total_timesteps = 128", "total_timesteps = 8_000_000"))
    plan, _ = compile_manifest(manifest)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(encode_plan(plan))
    return plan, plan_file


@pytest.mark.parametrize("second", [False, True], ids=["one-signal", "second-signal"])
def test_a_stop_during_a_long_training_call_ends_it_within_seconds(long_training, tmp_path,
                                                                   second):
    """The main thread is blocked in XLA, where Python signal handlers do not run: the stop
    watcher ends the process after its grace period, or at once on a second signal."""
    plan, plan_file = long_training
    root = tmp_path / "out"
    run = Exec(plan_file, root)
    try:
        run.wait_for("train 0")
        trained = time.monotonic()
        signals = [(1.0, signal.SIGINT)] + ([(0.3, signal.SIGINT)] if second else [])
        result = run.stop(*signals)
    finally:
        run.kill()
    print(f"long training, {len(signals)} signal(s): exit {result.code} after "
          f"{result.latency:.2f}s")
    assert_clean_stop(result, signal.SIGINT)
    assert "interrupted by SIGINT: 0 of 1 entries complete" in result.stderr
    assert time.monotonic() - trained < 20  # far less than the training call takes
    if second:
        assert result.latency < 1.5, result.stderr  # not the watcher's grace period
    assert SweepDir(root).state(plan.entries[0].path) != "done"
    assert not list(root.rglob(f"*{CLAIM_SUFFIX}")), "the stopped worker's claim is released"
    assert_consistent(plan_file, root, plan, result)


def test_stop_latencies_summary():
    """Not a check: prints the random stops' latencies (pytest -s)."""
    if LATENCIES:
        ordered = sorted(LATENCIES)
        print(f"{len(ordered)} stops: median {ordered[len(ordered) // 2]:.2f}s, "
              f"max {ordered[-1]:.2f}s")
