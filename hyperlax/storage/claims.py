"""Entry claims: the lease protocol by which several workers share one sweep directory.

A worker runs an entry only while it holds the entry's claim, a small JSON file (host, pid,
pid namespace, a random token, the entry, when it was claimed) that appears atomically and
whole (hard link of a staged file: exactly one of several racing workers gets it). While the
entry runs, a thread touches the file every ``heartbeat_interval(timeout)`` seconds; its mtime
is the heartbeat. A claim is stale, and any worker may take it over, when its heartbeat is
older than the claim timeout, or at once when its holder is a process on this machine (same
host name and pid namespace) that no longer exists. The claim is removed after the entry's
marker is written, or when the worker stops (Ctrl-C, SIGTERM, an error). A SIGKILLed worker
leaves it behind, stale. A holder whose claim was taken over learns it (``ClaimLost``) before
it empties or marks the entry. JAX-free.

Every file of the protocol (the claim, its staged copy, the takeover lock, a claim set aside)
lives in the claim's own directory, which the caller (``SweepDir.claim_path``) checked to lie
inside the output root; they are made and removed through the one writer with that directory
as ``within`` and read through the one reader.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hyperlax.errors import HyperlaxError
from hyperlax.storage.atomic import (atomic_write, json_bytes, make_dirs, publish_new,
                                     remove_file, rename_within)
from hyperlax.storage.read import MAX_RECORD_BYTES, MissingFileError, decode_json, read_bytes

_HELD: set[EntryClaim] = set()   # claims this process won and has not released
_HELD_LOCK = threading.Lock()

DEFAULT_CLAIM_TIMEOUT = 300.0  # seconds without a heartbeat before a claim is stale
TAKEOVER_LOCK_STALE = 60.0     # a takeover takes milliseconds; its lock, older, is a crash's


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


HOST = socket.gethostname()
PID_NAMESPACE = _pid_namespace()


def heartbeat_interval(timeout: float) -> float:
    """How often a held claim is refreshed: 30 s, or a quarter of a short timeout."""
    return max(0.2, min(30.0, timeout / 4))


def poll_interval(timeout: float) -> float:
    """How often a worker waiting for entries other workers hold looks again: every 2 s, or a
    quarter of a short timeout, so a holder that stopped is taken over soon after its claim
    goes stale."""
    return min(2.0, timeout / 4)


class WaitForOthers:
    """What a worker does while all it has left is held by other workers (entries they
    claimed, a rung's entries that other shards run): each call says what it waits for,
    unless that is what it said last, and sleeps ``poll_interval(timeout)``; the caller looks
    again after each. ``sleep``: exec passes its stoppable sleep (``exec.stopping``)."""

    def __init__(self, timeout: float, log: Callable[[str], None] | None,
                 sleep: Callable[[float], None] = time.sleep):
        self.timeout = timeout
        self.log = log
        self.sleep = sleep
        self._told = ""

    def __call__(self, message: str) -> None:
        if self.log and message != self._told:
            self.log(message)
            self._told = message
        self.sleep(poll_interval(self.timeout))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        status = read_bytes(Path(f"/proc/{pid}/stat"), "process status", 1 << 16)
        return status.rsplit(b")", 1)[1].split()[0] != b"Z"
    except (HyperlaxError, IndexError):
        return True


@dataclass(frozen=True)
class ClaimInfo:
    """What a claim file says, and how old its heartbeat is (``age``, seconds)."""

    path: Path
    host: str
    pid: int
    pid_namespace: str
    token: str
    age: float
    mtime: float
    raw: bytes

    def holder(self) -> str:
        return f"{self.host}:{self.pid}" if self.host else "an unknown worker"

    def stale(self, timeout: float) -> bool:
        if self.age > timeout:
            return True
        local = self.host == HOST and self.pid_namespace == PID_NAMESPACE and self.pid > 0
        return local and self.pid != os.getpid() and not _pid_alive(self.pid)


def read_claim(path: Path) -> ClaimInfo | None:
    """The claim at ``path``, or None when there is none. A claim that cannot be parsed (being
    written on a file system without hard links, or damaged) has no holder: only its age
    counts."""
    try:
        mtime = os.lstat(path).st_mtime
        raw = read_bytes(path, "claim", MAX_RECORD_BYTES)
    except (FileNotFoundError, MissingFileError):
        return None
    except HyperlaxError:  # a FIFO, a link to a device, a huge file: no holder, only an age
        raw = b""
    try:
        doc = decode_json(raw, path, "claim")
        host, pid = str(doc["host"]), int(doc["pid"])
        namespace, token = str(doc.get("pid_namespace", "")), str(doc["token"])
    except (HyperlaxError, ValueError, KeyError, TypeError):
        host, pid, namespace, token = "", 0, "", ""
    return ClaimInfo(path, host, pid, namespace, token, time.time() - mtime, mtime, raw)


class ClaimLost(Exception):
    """This worker's claim on an entry was taken over (it had looked stale): the entry is
    someone else's now, and this worker must not write it."""


class EntryClaim:
    """A claim this worker holds. Use as a context manager: heartbeats run inside, and the
    claim is released on the way out, whatever happens."""

    def __init__(self, path: Path, token: str, timeout: float):
        self.path = path
        self.token = token
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def held(self) -> bool:
        info = read_claim(self.path)
        return info is not None and info.token == self.token

    def check(self) -> None:
        """Raise ClaimLost unless this worker still holds the claim."""
        if not self.held():
            info = read_claim(self.path)
            by = info.holder() if info is not None else "nobody (it was removed)"
            raise ClaimLost(f"{self.path}: claim taken over by {by}")

    def beat(self) -> None:
        """One heartbeat: refresh the claim's mtime, if this worker still holds it."""
        if self.held():
            os.utime(self.path, follow_symlinks=False)

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(heartbeat_interval(self.timeout)):
            try:
                self.beat()
            except OSError:
                pass  # a passing hiccup of the file system; the next beat tries again

    def __enter__(self) -> EntryClaim:
        with _HELD_LOCK:
            _HELD.add(self)
        self._thread = threading.Thread(target=self._beat_until_stopped, daemon=True,
                                        name="hyperlax-claim-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        with _HELD_LOCK:
            _HELD.discard(self)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            if self.held():
                remove_file(self.path, within=self.path.parent, missing_ok=False)
        except OSError:
            pass  # left behind, it goes stale: never worse than a crash


def release_held() -> None:
    """Release every claim this process holds, without waiting for heartbeat threads: what a
    process about to end itself at once (``hyperlax.exec.stopping``) does. Best effort."""
    with _HELD_LOCK:
        held = list(_HELD)
        _HELD.clear()
    for claim in held:
        claim._stop.set()
        try:
            if claim.held():
                remove_file(claim.path, within=claim.path.parent, missing_ok=False)
        except OSError:
            pass


def try_claim(path: Path, entry_index: int, timeout: float = DEFAULT_CLAIM_TIMEOUT
              ) -> tuple[EntryClaim | None, ClaimInfo | None]:
    """Claim the entry whose claim file is ``path``: (our claim, None) when this worker now
    holds it, or (None, the holder's claim) when another worker does and its claim is not
    stale. A stale claim is taken over. The caller must look at the entry's state again once
    it holds the claim: another worker may have completed it in the meantime."""
    here = make_dirs(path.parent, within=path.parent)
    token = uuid.uuid4().hex
    doc = {"host": HOST, "pid": os.getpid(), "pid_namespace": PID_NAMESPACE,
           "token": token, "entry": entry_index, "claimed_at": round(time.time(), 3)}
    staged = path.with_name(f".{path.name}.{token}.tmp")
    for _ in range(10):  # each pass either ends or saw the claim change under it
        info = read_claim(path)
        if info is not None:
            if not info.stale(timeout):
                return None, info
            if not _remove_stale(info, token):
                continue
        try:
            atomic_write(staged, json_bytes(doc), within=here)
            won = publish_new(staged, path, within=here)
        finally:
            remove_file(staged, within=here)
        if won:
            claim = EntryClaim(path, token, timeout)
            with _HELD_LOCK:  # held from now on, before the caller enters it
                _HELD.add(claim)
            return claim, None
    return None, read_claim(path)


def _remove_stale(info: ClaimInfo, token: str) -> bool:
    """Remove the stale claim ``info``, unless it changed since it was read; True when it did.
    Takeovers of one entry are serialized by a short-lived lock file (``.<claim>.takeover``,
    exclusive create; one left by a worker that died in those few milliseconds is cleared
    after TAKEOVER_LOCK_STALE seconds). Under it, the claim is read again, renamed aside
    (atomic) and checked once more: a claim that is not the one judged stale (its heartbeat
    came, or it is a new holder's) is put back."""
    here = info.path.parent
    lock = info.path.with_name(f".{info.path.name}.takeover")
    staged = lock.with_name(f"{lock.name}.{token}.tmp")
    try:
        atomic_write(staged, json_bytes({"host": HOST, "pid": os.getpid()}), within=here)
        locked = publish_new(staged, lock, within=here)
    finally:
        remove_file(staged, within=here)
    if not locked:
        try:
            if time.time() - os.lstat(lock).st_mtime > TAKEOVER_LOCK_STALE:
                remove_file(lock, within=here, missing_ok=False)
        except FileNotFoundError:
            pass
        return False
    try:
        again = read_claim(info.path)
        if again is None or again.raw != info.raw or again.mtime != info.mtime:
            return False
        aside = info.path.with_name(f".{info.path.name}.{token}.stale")
        try:
            rename_within(info.path, aside, within=here)
        except FileNotFoundError:
            return False
        try:
            moved = read_claim(aside)
            if moved is None or moved.raw != info.raw or moved.mtime != info.mtime:
                publish_new(aside, info.path, within=here)  # put back, unless replaced
                return False
            return True
        finally:
            remove_file(aside, within=here)
    finally:
        remove_file(lock, within=here)
