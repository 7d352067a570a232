"""Compile ahead in parallel, train in evaluation chunks, say what happens within seconds.

- The compile-ahead pool (``runtime.programs``): compile order, the window, dropping after the
  last use, counts (with a fake compiler: no JAX compile).
- Parallel compilation gives bit-identical results to serial compilation (fresh caches).
- A stop while programs compile in parallel ends exec cleanly (130 / 143) within seconds.
- Exec's chunked training (init, then one call per evaluation chunk) is deterministic.
- A stop between chunks is acted on at once; exec's first line comes before JAX is imported.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.exec import progress as progress_module
from hyperlax.cli.main import main
from hyperlax.exec.progress import Progress
from hyperlax.exec.runner import CompiledRunner
from hyperlax.exec.programs import ProgramCache
from hyperlax.exec.runner import CompiledRunner
from hyperlax.exec.schedule import ProgramKey, Use, chunk_group
from hyperlax.storage.sweepdir import SweepDir
import exec_points
from test_exec import tiny_plan
from test_stops import Exec, assert_clean_stop, assert_consistent, resume_command

ACTIVATION = '"network.activation" = { dist = "categorical", values = ["tanh", "relu"] }'
ROOT = Path(__file__).resolve().parent.parent


# --- the pool, with a fake compiler ----------------------------------------------------------

class FakeCompiler:
    def __init__(self, seconds: float = 0.01):
        self.seconds = seconds
        self.calls: list[tuple[ProgramKey, str]] = []
        self.lock = threading.Lock()

    def __call__(self, key, part, samples):
        with self.lock:
            self.calls.append((key, part))
        time.sleep(self.seconds)
        return (key, part)


def K(s: int) -> ProgramKey:
    return ProgramKey(s, 2, 1)


def test_pool_compiles_ahead_in_first_use_order_within_a_window_and_drops_after_last_use():
    fake = FakeCompiler()
    cache = ProgramCache(fake, ("init", "chunk"), workers=2, window=3)
    order = [0, 0, 1, 2, 1, 3, 4, 5]  # the structures of the sub-batches, in run order
    try:
        for i, s in enumerate(order):
            cache.want(Use(K(t), [t]) for t in order[i:])
            assert len(cache.keys()) <= 3
            assert K(s) in cache.keys()
            parts, _ = cache.get(K(s), [s])
            assert parts == {"init": (K(s), "init"), "chunk": (K(s), "chunk")}
            if s not in order[i + 1:]:  # its last use: gone at the next want
                cache.want(Use(K(t), [t]) for t in order[i + 1:])
                assert K(s) not in cache.keys()
    finally:
        cache.close()
    compiled = list(dict.fromkeys(k.structure for k, _ in fake.calls))
    assert compiled == [0, 1, 2, 3, 4, 5]          # each once, in first-use order
    assert cache.compiles == 6
    assert cache.compile_seconds() > 0


def test_pool_drops_a_program_whose_next_use_is_beyond_the_window_and_compiles_it_again():
    fake = FakeCompiler()
    cache = ProgramCache(fake, ("init", "chunk"), workers=1, window=2)
    order = [0, 1, 2, 3, 0]
    try:
        for i, s in enumerate(order):
            cache.want(Use(K(t), [t]) for t in order[i:])
            cache.get(K(s), [s])
    finally:
        cache.close()
    assert [k.structure for k, p in fake.calls if p == "init"] == [0, 1, 2, 3, 0]
    assert cache.compiles == 5


def test_pool_without_workers_compiles_on_demand_once_and_drops_after_last_use():
    fake = FakeCompiler(0.0)
    cache = ProgramCache(fake, ("init", "chunk"), workers=0)
    assert cache.get(K(0), [0])[0]["chunk"] == (K(0), "chunk")
    assert cache.get(K(0), [0])[1] == 0.0      # cached: no compile seconds the second time
    assert cache.compiles == 1 and len(fake.calls) == 2
    cache.want([Use(K(1), [1]), Use(K(2), [2]), Use(K(1), [1])])
    assert cache.keys() == [] and len(fake.calls) == 2  # nothing compiled ahead
    cache.get(K(1), [1])
    cache.get(K(2), [2])
    cache.want([Use(K(1), [1])])
    assert cache.keys() == [K(1)]


def test_chunk_group():
    assert chunk_group(10) == 1 and chunk_group(100) == 1
    assert chunk_group(1000) == 10 and chunk_group(101) == 101 and chunk_group(300) == 3


# --- progress ------------------------------------------------------------------------------

def test_progress_off_a_terminal_logs_at_a_sane_rate(monkeypatch):
    stream = io.StringIO()
    p = Progress(stream)
    p.announce("exec: 2 of 2 entries to run", programs=3)
    p.start(total=2, skipped=0, steps_total=1000)
    for done in (1, 2, 3):
        p.compiled(done, float(done))
    p.entry_started(type("E", (), {"path": "a/b"})())
    for _ in range(50):
        p.chunk(10, {0: -5.0, 1: float("nan")})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "exec: 2 of 2 entries to run"
    assert "compiled 1/3 programs (1.0s)" in lines and "compiled 3/3 programs (3.0s)" in lines
    assert not any("compiled 2/3" in line for line in lines)   # within LOG_SECONDS
    assert sum("training" in line for line in lines) == 0      # the last line was just now
    monkeypatch.setattr(progress_module, "LOG_SECONDS", 0.0)
    p.chunk(10, {0: -4.0})
    assert "a/b: training; entries 0/2  steps 510/1.0k" in stream.getvalue()
    assert "best return -4.0" in stream.getvalue()


# --- real programs -------------------------------------------------------------------------

@pytest.mark.slow
def test_chunked_training_is_deterministic(tmp_path):
    plan, _, _ = tiny_plan(tmp_path, n=2, batch=2, name="c.toml")
    runner = CompiledRunner(plan)
    chunked = runner.run(0, [0, 1], 2)
    again = runner.run(0, [0, 1], 2)
    assert runner.calls == plan.settings.num_evaluations == 2
    assert chunked.eval_steps.tolist() == [64, 128]
    for a, b in [(chunked.returns, again.returns), (chunked.finite, again.finite),
                 *[(chunked.losses[k], again.losses[k]) for k in chunked.losses]]:
        assert np.array_equal(a, b)


def _curves(root: Path, plan) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for entry in plan.entries:
        with np.load(root.joinpath(*entry.path.split("/")) / "curves.npz") as data:
            out[entry.path] = {k: data[k] for k in data.files}
    return out


@pytest.mark.slow
def test_parallel_compilation_is_bit_identical_to_serial(tmp_path):
    plan, _, data = tiny_plan(tmp_path, n=6, mode="grouped", batch=2, space=ACTIVATION)
    assert len(plan.structures) == 2
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    results = {}
    for workers in (1, 2):
        root = tmp_path / f"out{workers}"
        result = CliRunner().invoke(main, [
            "exec", str(plan_file), "--output-root", str(root), "--compile-workers",
            str(workers), "--compile-cache", str(tmp_path / f"cache{workers}")])
        assert result.exit_code == 0, result.output
        assert f"programs to compile ({workers} compile worker" in result.output
        assert "compile: 2 programs in" in result.output and "steps/s overall" in result.output
        results[workers] = _curves(root, plan)
    for path, arrays in results[1].items():
        for name, values in arrays.items():
            assert np.array_equal(values, results[2][path][name]), (path, name)


@pytest.fixture(scope="module")
def two_structures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ahead")
    plan, _, data = tiny_plan(tmp, n=4, mode="grouped", batch=2, space=ACTIVATION)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    return plan, plan_file


@pytest.mark.stops
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_stop_during_parallel_compilation_exits_cleanly(two_structures, tmp_path, signum):
    plan, plan_file = two_structures
    root = tmp_path / "out"
    run = Exec(plan_file, root, compile_cache=tmp_path / "fresh-cache",
               args=("--compile-workers", "2"))
    try:
        run.wait_for("compile")
        run.wait_for("compile")   # a second part is compiling too (2 workers)
        result = run.stop((0.5, signum))
    finally:
        run.kill()
    assert f"{exec_points.AT} train" not in result.stderr   # stopped while compiling
    assert_clean_stop(result, signum)
    assert_consistent(plan_file, root, plan, result)
    if signum == signal.SIGTERM:
        resumed = CliRunner().invoke(main, resume_command(result.stderr))
        assert resumed.exit_code == 0, resumed.output
        assert all(SweepDir(root).state(e.path) == "done" for e in plan.entries)


@pytest.mark.stops
@pytest.mark.subprocess
def test_a_stop_between_chunks_is_acted_on_at_once(tmp_path):
    manifest = tmp_path / "many.toml"
    tiny_plan(tmp_path, n=2, batch=2, name="m.toml")
    text = (tmp_path / "m.toml").read_text()
    manifest.write_text(text.replace("total_timesteps = 128", "total_timesteps = 409_600")
                        .replace("num_evaluations = 2", "num_evaluations = 100"))
    from hyperlax.compiler import compile_manifest
    from hyperlax.plan.format import encode_plan

    plan, _ = compile_manifest(manifest)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(encode_plan(plan))
    run = Exec(plan_file, tmp_path / "out")
    try:
        for _ in range(5):
            run.wait_for("chunk")
        result = run.stop((0.0, signal.SIGINT))
    finally:
        run.kill()
    assert_clean_stop(result, signal.SIGINT)
    assert result.latency < 1.5, result.stderr   # a safe point, not the watcher's grace period


FIRST_LINE = """\
import sys, time
from hyperlax.exec import run_plan
def stop_here(*args, **kwargs):
    print("JAX IMPORTED:", "jax" in sys.modules, file=sys.stderr, flush=True)
    raise SystemExit(0)
run_plan._dispatch = stop_here
from hyperlax.cli.main import main
main(["exec", sys.argv[1], "--output-root", sys.argv[2]])
"""


@pytest.mark.subprocess
def test_the_first_line_comes_before_jax_is_imported(two_structures, tmp_path):
    plan, plan_file = two_structures
    done = subprocess.run([sys.executable, "-c", FIRST_LINE, str(plan_file),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ})
    lines = done.stderr.splitlines()
    n = len(plan.entries)
    assert lines[0].startswith(f"exec: {n} of {n} entries to run, "), done.stderr
    assert "; 2 programs to compile (" in lines[0], done.stderr
    assert "JAX IMPORTED: False" in lines, done.stderr
