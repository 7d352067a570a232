"""The entry-claim lease protocol (``hyperlax.storage.claims``) on its own: one holder at a
time, takeover of stale claims (old heartbeat, or a dead holder on this machine), heartbeats,
release, and a holder learning that its claim was taken over.

No test depends on how fast the machine is: ages are set with os.utime, heartbeats are called
directly or awaited with a deadline of a minute, and timeouts are far from the ages used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperlax.storage.claims import (HOST, PID_NAMESPACE, TAKEOVER_LOCK_STALE, ClaimLost,
                                     heartbeat_interval, read_claim, try_claim)
from concurrency_helpers import race

LONG = 3600.0  # a timeout no test comes near: only explicit ages make a claim stale


def claim_file(tmp_path: Path) -> Path:
    return tmp_path / "a" / "batch_00000.claim"


def age(path: Path, seconds: float) -> None:
    """Make the claim's last heartbeat ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def foreign(path: Path, host: str = "elsewhere", pid: int = 4242, token: str = "theirs",
            namespace: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "pid_namespace": namespace,
                                "token": token, "entry": 0}))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: no process has this pid now
    return child.pid


def test_a_claim_names_its_holder_and_a_second_claimer_is_refused(tmp_path):
    path = claim_file(tmp_path)
    claim, holder = try_claim(path, 7, LONG)
    assert claim is not None and holder is None and claim.held()
    doc = json.loads(path.read_text())
    assert (doc["host"], doc["pid"], doc["pid_namespace"], doc["token"], doc["entry"]) == (
        HOST, os.getpid(), PID_NAMESPACE, claim.token, 7)
    again, holder = try_claim(path, 7, LONG)
    assert again is None and holder is not None and holder.token == claim.token
    assert holder.holder() == f"{HOST}:{os.getpid()}"
    claim.release()
    assert not path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == []  # no temporaries left


def test_a_claim_whose_heartbeat_is_too_old_is_taken_over(tmp_path):
    path = claim_file(tmp_path)
    foreign(path)
    claim, holder = try_claim(path, 0, 60.0)
    assert claim is None and holder.holder() == "elsewhere:4242" and not holder.stale(60.0)
    age(path, 600.0)
    assert read_claim(path).stale(60.0)
    claim, holder = try_claim(path, 0, 60.0)
    assert claim is not None and holder is None
    assert read_claim(path).token == claim.token
    claim.release()


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(tmp_path):
    path = claim_file(tmp_path)
    foreign(path, host=HOST, pid=dead_pid(), namespace=PID_NAMESPACE)
    assert read_claim(path).stale(LONG)  # fresh heartbeat, but nobody to send the next
    claim, holder = try_claim(path, 0, LONG)
    assert claim is not None and holder is None
    claim.release()


def test_a_live_holder_on_this_machine_or_a_dead_pid_elsewhere_is_not(tmp_path):
    path = claim_file(tmp_path)
    foreign(path, host=HOST, pid=os.getppid(), namespace=PID_NAMESPACE)
    assert try_claim(path, 0, LONG)[0] is None
    foreign(path, host=HOST, pid=dead_pid(), namespace="pid:[another namespace]")
    assert try_claim(path, 0, LONG)[0] is None  # same host name, another pid namespace
    foreign(path, host="elsewhere", pid=dead_pid(), namespace=PID_NAMESPACE)
    assert try_claim(path, 0, LONG)[0] is None


def test_an_unreadable_claim_is_judged_by_its_age_alone(tmp_path):
    path = claim_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # as seen mid-write on a file system without hard links
    claim, holder = try_claim(path, 0, 60.0)
    assert claim is None and holder.holder() == "an unknown worker"
    age(path, 600.0)
    claim, _ = try_claim(path, 0, 60.0)
    assert claim is not None
    claim.release()


def test_a_heartbeat_refreshes_only_a_claim_still_held(tmp_path):
    path = claim_file(tmp_path)
    claim, _ = try_claim(path, 0, 60.0)
    age(path, 50.0)
    claim.beat()
    assert read_claim(path).age < 25.0
    path.unlink()
    foreign(path)
    age(path, 600.0)
    claim.beat()  # not ours any more: left to go stale
    assert read_claim(path).age > 500.0


def test_the_heartbeat_thread_keeps_a_held_claim_fresh(tmp_path):
    assert heartbeat_interval(300.0) == 30.0 and heartbeat_interval(1.0) == 0.25
    assert heartbeat_interval(0.1) == 0.2
    path = claim_file(tmp_path)
    claim, _ = try_claim(path, 0, 1.0)  # a beat every 0.25 s
    with claim:
        age(path, 1000.0)
        deadline = time.monotonic() + 60.0  # however busy the machine is
        while read_claim(path).age > 500.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_claim(path).age < 500.0
    assert not path.exists()  # leaving the context released it


def test_a_holder_learns_its_claim_was_taken_over_and_leaves_the_new_one(tmp_path):
    path = claim_file(tmp_path)
    mine, _ = try_claim(path, 0, 60.0)
    mine.check()
    age(path, 600.0)  # as if this worker had hung
    theirs, _ = try_claim(path, 0, 60.0)
    assert theirs is not None and theirs.token != mine.token
    assert not mine.held()
    with pytest.raises(ClaimLost, match=f"taken over by {HOST}:{os.getpid()}"):
        mine.check()
    mine.release()
    assert read_claim(path).token == theirs.token  # releasing did not remove theirs
    theirs.release()
    with pytest.raises(ClaimLost, match="nobody"):
        mine.check()


def test_takeovers_are_serialized_by_a_lock_a_crashed_taker_does_not_keep(tmp_path):
    path = claim_file(tmp_path)
    foreign(path)
    age(path, 600.0)
    lock = path.with_name(f".{path.name}.takeover")
    lock.write_text("{}")  # another worker is taking it over right now
    claim, holder = try_claim(path, 0, 60.0)
    assert claim is None and holder.token == "theirs"
    os.utime(lock, (time.time() - 2 * TAKEOVER_LOCK_STALE,) * 2)  # that worker died there
    claim, _ = try_claim(path, 0, 60.0)
    assert claim is not None and not lock.exists()
    claim.release()


def test_one_of_many_racing_workers_gets_an_entry(tmp_path):
    path = claim_file(tmp_path)
    results = race(8, lambda i: try_claim(path, 0, 60.0))
    held = [claim for claim, _ in results if claim is not None]
    assert len(held) == 1
    holders = [info for _, info in results if info is not None]
    assert len(holders) == 7 and {h.token for h in holders} == {held[0].token}
    held[0].release()
    assert list(path.parent.iterdir()) == []


def test_one_of_many_racing_workers_takes_over_a_stale_claim(tmp_path):
    path = claim_file(tmp_path)
    foreign(path, host="gone", pid=1, token="old")
    age(path, 600.0)
    results = race(8, lambda i: try_claim(path, 0, 60.0))
    held = [claim for claim, _ in results if claim is not None]
    assert len(held) == 1, results
    assert read_claim(path).token == held[0].token
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
