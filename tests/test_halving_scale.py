"""Successive halving scaled out: several execs started together on one sweep, and --shard
K/N, give the decisions (rungs/rung_*.json, byte for byte) and the outputs (bit for bit) of a
single exec; a decision is published once, whoever decides at the same time; a shard waiting
for the other shards stops within seconds on SIGTERM.

The sweep is test_halving's: 8 PPO samples, rungs at 1, 2 and 4 evaluations, eta 2, batches
of 2 (rung 0: 4 entries, rung 1: 2, rung 2: 1).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hyperlax.exec.halving import decide as H
from hyperlax.exec.local_exec import execute
from hyperlax.storage.atomic import StorageError
from hyperlax.storage.sweepdir import CLAIM_SUFFIX, MARKER, Owner, SweepDir
from concurrency_helpers import race
from process_helpers import ExecProcess
from test_crash import untimed
from test_halving import make_plan

pytestmark = pytest.mark.subprocess

TIMEOUT = 400  # seconds for a whole exec; two share the machine's 2 cores


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The plan, its file, and one plain exec of it."""
    tmp = tmp_path_factory.mktemp("halving_scale")
    plan, pid, data = make_plan(tmp)
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    execute(plan, pid, data, tmp / "single")
    return plan, pid, plan_file, tmp / "single"


def assert_same_sweep(root: Path, reference: Path, plan, pid: str) -> None:
    """The same decisions, byte for byte, and every rung entry's outputs bit for bit:
    arrays equal, summaries equal apart from timings, every other file byte for byte."""
    decisions = sorted(p.name for p in (reference / "rungs").glob("rung_*.json"))
    assert decisions == sorted(p.name for p in (root / "rungs").glob("rung_*.json"))
    for name in decisions:
        assert (root / "rungs" / name).read_bytes() == (reference / "rungs" / name).read_bytes()
    owner = Owner.of(plan, pid)
    views = H.rung_views(plan, root, owner)
    assert all(v.entries is not None for v in views)
    for view in views:
        for entry in view.entries:
            a, b = (r.joinpath(*entry.path.split("/")) for r in (root, reference))
            names = sorted(p.name for p in a.iterdir())
            assert names == sorted(p.name for p in b.iterdir()), entry.path
            for name in names:
                if name.endswith(".npz"):
                    with np.load(a / name) as x, np.load(b / name) as y:
                        assert sorted(x.files) == sorted(y.files)
                        for key in x.files:
                            assert np.array_equal(x[key], y[key], equal_nan=True), (a, key)
                elif name == "summary.json":
                    assert untimed(a / name) == untimed(b / name), a
                elif name != MARKER:  # the marker records when it was written
                    assert (a / name).read_bytes() == (b / name).read_bytes(), (a, name)
            assert SweepDir(root).verify(entry.path, owner, entry.index) == []
    assert not list(root.rglob(f"*{CLAIM_SUFFIX}")) and not list(root.rglob("*.staged"))
    assert not list(root.rglob("*.tmp"))


def start(plan_file: Path, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hyperlax", "exec", str(plan_file),
                             "--output-root", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_all(workers: list[subprocess.Popen]) -> list[tuple[str, str]]:
    try:
        outputs = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    return outputs


def test_two_execs_started_together_match_a_single_exec(single, tmp_path):
    """Two plain execs share every rung through the entries' claims; both reach each decision
    (one publishes it, the other reads it back) and go on to the same next rung."""
    plan, pid, plan_file, reference = single
    root = tmp_path / "out"
    outputs = finish_all([start(plan_file, root) for _ in range(2)])
    assert_same_sweep(root, reference, plan, pid)
    ran = [int(out.split(" entries run")[0].split()[-1]) for out, _ in outputs]
    assert sum(ran) == 4 + 2 + 1, outputs  # each rung entry run once, by one of them


def test_shards_match_a_single_exec(single, tmp_path):
    """Shard K runs, in every rung, the rung's entries k with k mod 2 = K, waits for the
    other shard's, and both read or make the same decision."""
    plan, pid, plan_file, reference = single
    root = tmp_path / "out"
    outputs = finish_all([start(plan_file, root, "--shard", f"{k}/2") for k in range(2)])
    assert_same_sweep(root, reference, plan, pid)
    for k, (out, err) in enumerate(outputs):
        assert f"shard {k}/2: in every rung, the rung's entry k when k mod N = K (2 of " \
               "rung 0's 4 entries)" in err
        # rung 0: 2 of 4 entries each; rung 1: 1 of 2 each; rung 2's only entry: shard 0
        assert f"{[4, 3][k]} entries run, 0 skipped" in out, out
        assert f"rung 1: 4 samples to 2 of 4 evaluations, 2 entries; shard {k}/2 runs 1 of " \
               "them" in err
        assert f"rung 2: 2 samples to 4 of 4 evaluations, 1 entries; shard {k}/2 runs " \
               f"{1 - k} of them" in err
    paths = {k: [e.path for e in plan.entries if e.index % 2 == k] for k in range(2)}
    for k, (_, err) in enumerate(outputs):
        for path in paths[1 - k]:
            assert f"{path}: done in " not in err  # never ran the other shard's entries


@pytest.mark.stops
def test_a_waiting_shard_stops_within_seconds(single, tmp_path):
    """Shard 0 alone runs its part of rung 0, then waits for shard 1's entries, naming them;
    SIGTERM ends it with 143 within seconds, and plain exec finishes the sweep."""
    plan, pid, plan_file, reference = single
    root = tmp_path / "out"
    shard = ExecProcess(plan_file, root, {}, ("--shard", "0/2"))
    try:
        others = ", ".join(e.path for e in plan.entries if e.index % 2 == 1)
        shard.wait_line(lambda line: f"rung 0: waiting for 2 entries of other shards "
                                     f"({others})" in line, "the wait", TIMEOUT)
        sent = time.monotonic()
        shard.proc.send_signal(signal.SIGTERM)
        code = shard.proc.wait(timeout=30)
        assert time.monotonic() - sent < 10
    finally:
        shard.kill()
    assert code == 143
    while (line := shard.lines.get(timeout=30)) is not None:
        shard.stderr.append(line)
    assert "interrupted by SIGTERM: rung 0 of 3 (from 0)" in "".join(shard.stderr)
    finish_all([start(plan_file, root)])
    assert_same_sweep(root, reference, plan, pid)


# --- deciders racing ------------------------------------------------------------------------

def test_racing_deciders_publish_one_decision(single, tmp_path):
    """Eight deciders at once, each with the decision made from rung 0's results: one file,
    written whole, which all of them return; a decider whose decision differs is refused,
    and the file it found is left as it was."""
    plan, pid, _, reference = single
    owner = Owner.of(plan, pid)
    entries = H.rung_entries(plan, 0)
    decision = H.read_decision(reference, plan, owner, 0, entries)
    root = tmp_path / "out"
    results = race(8, lambda i: H.publish_decision(root, plan, owner, decision, entries))
    assert all(isinstance(r, H.Decision) and H.same_decision(r, decision) for r in results), \
        results
    written = (root / H.decision_path(0)).read_bytes()
    assert written == (reference / H.decision_path(0)).read_bytes()
    assert sorted(p.name for p in (root / "rungs").iterdir()) == ["rung_0.json"]

    ranking = decision.ranking
    other = H.Decision(rung=0, evaluations=decision.evaluations, metric=decision.metric,
                       ranking=ranking[::-1], survivors=sorted(i for i, _ in ranking[::-1][:4]))
    with pytest.raises(StorageError, match="published a different decision for rung 0"):
        H.publish_decision(root, plan, owner, other, entries)
    assert (root / H.decision_path(0)).read_bytes() == written
    assert json.loads(written)["survivors"] == decision.survivors
