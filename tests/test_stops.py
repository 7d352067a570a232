"""Stopping exec: SIGINT or SIGTERM at any moment (start-up, JAX import, tracing, compile,
training, writing) ends a ``hyperlax exec`` process within seconds, with 130 / 143 and the
resume hint, never swallowed and never a crash; what it leaves verifies, and the resume
command completes the sweep.

Where the process is comes from ``exec_points`` traced in the exec subprocess (it prints
``EXEC_POINT <point> <entry>``, tests/exec_points.py); stops land at a seeded random
delay after such a point, so each phase is hit however fast or loaded the machine is.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
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

pytestmark = [pytest.mark.stops, pytest.mark.subprocess]

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


# --- the first tenth of a second ----------------------------------------------------------

EARLY_DELAYS = (0.0, 0.02, 0.05, 0.1)
EARLY_REPEATS = 2     # per delay, signal and anchor: once per launcher
PACKAGE_DIR = str(Path(__file__).resolve().parents[1] / "hyperlax")


def console_entry() -> tuple[str, str]:
    """The ``hyperlax`` console script's module and function, as pyproject.toml declares it."""
    project = tomllib.loads((Path(PACKAGE_DIR).parent / "pyproject.toml").read_text())
    module, function = project["project"]["scripts"]["hyperlax"].split(":")
    return module, function


def console_script(directory: Path) -> list[str]:
    """The ``hyperlax`` console script written the way an installer writes it (an installed
    copy may predate the worktree's pyproject)."""
    module, function = console_entry()
    script = directory / "hyperlax"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
                      f"if __name__ == '__main__':\n    sys.exit({function}())\n")
    script.chmod(0o755)
    return [str(script)]


def catches_sigterm(pid: int) -> bool | None:
    """Whether the process has a handler for SIGTERM, which only hyperlax installs (Python
    does not): hyperlax's start-up handling is in place. None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def early_stop(launcher: list[str], plan_file: Path, root: Path, signum: int, delay: float,
               after_first_line: bool) -> tuple[str, bool, int, str]:
    """One exec stopped ``delay`` seconds after its start, or after hyperlax's handling is in
    place (``after_first_line``): what happened (``handled``, ``python-start``) and the
    exit status and stderr; asserts it is one of the outcomes the docs promise."""
    proc = subprocess.Popen([*launcher, "exec", str(plan_file), "--output-root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if after_first_line:
            deadline = time.monotonic() + START_TIMEOUT
            while not catches_sigterm(proc.pid):
                assert proc.poll() is None and time.monotonic() < deadline, "never started"
                time.sleep(0.001)
        time.sleep(delay)
        ours = bool(catches_sigterm(proc.pid))  # once in place, it stays until the end
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=BOUND + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code, name = proc.returncode, signal.Signals(signum).name
    context = (f"{shlex.join(launcher[-2:])} {name} at {'+' if after_first_line else ''}"
               f"{delay}s (handling in place: {ours}): exit {code}, stderr:\n{stderr}")
    if code == 128 + signum:
        # handled: the hint, no traceback; whatever exec wrote verifies and no claim is left
        assert f"interrupted by {name}" in stderr, context
        assert f"resume with: hyperlax exec {plan_file} --output-root {root}" in stderr, context
        for sign in CRASH_SIGNS:
            assert sign not in stderr, context
        if root.exists():
            assert not list(root.rglob(f"*{CLAIM_SUFFIX}")), context
        return "handled", ours, code, stderr
    # Before hyperlax's first line: Python's defaults, and nothing written
    assert not ours, "hyperlax's handling was in place: " + context
    assert not root.exists(), context
    assert PACKAGE_DIR not in stderr, "a traceback through hyperlax's code: " + context
    if signum == signal.SIGTERM or not stderr:
        assert code == -signum and not stderr, context    # ended by the signal, silently
    else:  # Python's KeyboardInterrupt, raised in the interpreter's own start-up
        assert code in (1, -signal.SIGINT), context
        assert stderr.rstrip().endswith("KeyboardInterrupt"), context
    return "python-start", ours, code, stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_in_the_first_tenth_of_a_second(three_entries, tmp_path, signum):
    """SIGINT and SIGTERM 0, 0.02, 0.05 and 0.1 s after exec is launched (console script and
    ``python -m``), and as long after hyperlax's first line: before that line Python's
    defaults apply, as the docs say (ended by the signal, or Python's KeyboardInterrupt in its
    own start-up); from it on, always 130 / 143 with the resume hint and no traceback."""
    plan, plan_file = three_entries
    launchers = [console_script(tmp_path), [sys.executable, "-m", "hyperlax"]]
    tally: dict[tuple[str, float, str], int] = {}
    for after_first_line in (False, True):
        for delay in EARLY_DELAYS:
            for repeat in range(EARLY_REPEATS):
                root = tmp_path / f"out-{after_first_line}-{delay}-{repeat}"
                outcome, *_ = early_stop(launchers[repeat % 2], plan_file, root, signum,
                                         delay, after_first_line)
                if after_first_line:
                    assert outcome == "handled"
                key = ("after first line" if after_first_line else "after launch", delay,
                       outcome)
                tally[key] = tally.get(key, 0) + 1
    print(f"{signal.Signals(signum).name}: " + "; ".join(
        f"{anchor} +{delay}s {outcome} x{n}" for (anchor, delay, outcome), n in tally.items()))



# Imports before the start-up handling is in place, through a finder that notes each import
IMPORTS_BEFORE_HANDLING = """
import json, signal, sys
seen = []
class Note:
    def find_spec(self, name, path=None, target=None):
        seen.append([name, signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL])
sys.meta_path.insert(0, Note())
from {module} import {function}
sys.argv = ["hyperlax", "--version"]
try:
    {function}()
except SystemExit:
    pass
print(json.dumps(seen))
"""


@pytest.mark.parametrize("launch", ["console script", "python -m"])
def test_the_entry_point_handles_stops_before_it_imports_the_cli(launch):
    """The console script (as pyproject.toml declares it) and ``python -m hyperlax`` install
    the start-up handling before they import anything heavy: only the package, the entry
    point and ``exec.starting`` come first; the CLI, click and every other hyperlax module
    after."""
    module, function = console_entry() if launch == "console script" else (
        "hyperlax.__main__", "run")
    out = subprocess.run([sys.executable, "-c", IMPORTS_BEFORE_HANDLING.format(
        module=module, function=function)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.splitlines()[-1])
    before = {name for name, handled in seen if not handled}
    after = {name for name, handled in seen if handled}
    ours = {n for n in before if n.split(".")[0] in ("hyperlax", "click", "msgspec", "jax")}
    assert ours <= {"hyperlax", "hyperlax.__main__", "hyperlax.exec", "hyperlax.exec.starting"}
    assert {"hyperlax.cli.main", "click"} <= after
