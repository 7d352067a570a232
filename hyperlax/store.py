"""Files on disk: atomic writes, the sweep directory's ownership record, entry markers.
Shared by exec, status and report. JAX-free."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError


class StorageError(HyperlaxError):
    """Reading or writing the sweep directory failed (disk full, read-only, permissions): not
    the user's input, so ``exec`` exits with status 1, not 2. Whatever was being written is
    not marked complete."""

    exit_status = 1


def storage_error(where: Path, exc: OSError, doing: str, hint: str) -> StorageError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None and str(exc.filename) != str(where):
        reason += f" ({exc.filename})"
    return StorageError(str(where), f"{doing}: {reason}", hint)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never
    a part: write a temporary file in the same directory, fsync it, rename it over ``path``,
    then fsync the directory so the rename itself survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would, so results
        # on a shared machine are as readable as the user's umask allows.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the sweep directory ----------------------------------------------------------------------
#
#   <output root>/
#     hyperlax-sweep.json     which plan owns this directory (written once, first exec)
#     plan.msgpack            a copy of that plan
#     <recipe>/<env>/samples/batch_00000/
#       samples.json curves.npz curves.csv summary.json
#       success.txt           written last: the entry is complete; checksums of the files above
#     <recipe>/<env>/samples/batch_00000.claim
#                             while a worker runs the entry: who (host, pid), kept fresh by
#                             heartbeats (its mtime); removed once the marker is written

SWEEP_RECORD = "hyperlax-sweep.json"
PLAN_COPY = "plan.msgpack"
MARKER = "success.txt"
ENTRY_FILES = ["samples.json", "curves.npz", "curves.csv", "summary.json"]
CLAIM_SUFFIX = ".claim"
STAGING_PREFIX = ".hyperlax-staging-"
DEFAULT_CLAIM_TIMEOUT = 300.0  # seconds without a heartbeat before a claim is stale
TAKEOVER_LOCK_STALE = 60.0     # a takeover takes milliseconds; its lock, older, is a crash's


def _is_claim_leftover(name: str) -> bool:
    """What a first exec killed while claiming a directory can leave: the plan copy, the
    temporary files of atomic_write (``.<name>.<random>.tmp``) for it or the sweep record, and
    the private staging directory the record is prepared in."""
    return name == PLAN_COPY or name.startswith(STAGING_PREFIX) or (
        name.endswith(".tmp") and name.startswith((f".{PLAN_COPY}.", f".{SWEEP_RECORD}.")))


def _publish_new(staged: Path, target: Path) -> bool:
    """Make the complete file ``staged`` appear at ``target`` only if nothing is there yet:
    True if it did, False if ``target`` already existed. ``os.link`` is atomic and fails with
    EEXIST, so of several processes racing (on one machine or over NFS) exactly one wins, and
    readers never see a partly written file. Whether this call won is read from the staged
    file's link count, not from link's return value: over NFS, a retransmitted link can report
    EEXIST for a link that was made. ``staged`` (a name no one else uses) is left in place for
    the caller."""
    try:
        os.link(staged, target)
    except FileExistsError:
        if os.stat(staged).st_nlink < 2:
            return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS,
                             errno.EXDEV):
            raise
        # A file system without hard links: an exclusive create, then the bytes. A reader may
        # briefly see the file empty; claims treat an unreadable claim by its age alone.
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(staged.read_bytes())
            f.flush()
            os.fsync(f.fileno())
    fsync_dir(target.parent)
    return True


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SweepDir:
    def __init__(self, root: Path):
        self.root = root

    def owner(self) -> str | None:
        """The plan id recorded in this directory, or None when there is no record."""
        record = self.root / SWEEP_RECORD
        try:
            return json.loads(record.read_text("utf-8"))["plan_id"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HyperlaxError(str(record), f"unreadable sweep record ({exc})",
                                "this directory's ownership is unknown; use another output "
                                "root or restore the file") from None

    def check_owner(self, plan_id: str) -> None:
        """Refuse a directory that belongs to another plan or to something else entirely."""
        owner = self.owner()
        if owner is not None and owner != plan_id:
            raise HyperlaxError(str(self.root), f"belongs to another plan ({owner[:12]}), not "
                                                f"this one ({plan_id[:12]}); nothing was touched",
                                "pass --output-root to run this plan elsewhere, or run the plan "
                                "that owns it")
        if owner is None and self.root.exists() and not all(
                _is_claim_leftover(p.name) for p in self.root.iterdir()):
            if self.owner() is not None:  # another worker claimed it just now: look again
                return self.check_owner(plan_id)
            raise HyperlaxError(str(self.root), "is not empty and is not a hyperlax sweep "
                                                "directory; nothing was touched",
                                "pass --output-root with a new or empty directory")

    def claim(self, plan_bytes: bytes, plan_id: str) -> None:
        """Record that this directory belongs to ``plan_id``, with a copy of the plan.

        Safe when several workers start on one directory at once: the record is written whole
        into a private staging directory, then hard-linked into place, which succeeds for
        exactly one of them; the others read the winner's record and go on if it names their
        plan, or refuse the directory if it does not. The plan copy is written after the
        record, and only by workers of the owning plan (rewritten if a kill left it missing),
        so a worker that lost the race for another plan never touches it."""
        self.check_owner(plan_id)
        won = False
        if self.owner() is None:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
            try:
                staging.mkdir()
                atomic_write(staging / SWEEP_RECORD, _json_bytes({"plan_id": plan_id}))
                won = _publish_new(staging / SWEEP_RECORD, self.root / SWEEP_RECORD)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self.check_owner(plan_id)  # whoever won (maybe since the first look), it is this plan
        if won or not (self.root / PLAN_COPY).is_file():
            atomic_write(self.root / PLAN_COPY, plan_bytes)  # same bytes from every worker

    def entry_dir(self, entry_path: str) -> Path:
        return self.root.joinpath(*entry_path.split("/"))

    def claim_path(self, entry_path: str) -> Path:
        directory = self.entry_dir(entry_path)
        return directory.with_name(directory.name + CLAIM_SUFFIX)

    def read_entry_claim(self, entry_path: str) -> ClaimInfo | None:
        return read_claim(self.claim_path(entry_path))

    def try_claim_entry(self, entry_path: str, entry_index: int,
                        timeout: float = DEFAULT_CLAIM_TIMEOUT
                        ) -> tuple[EntryClaim | None, ClaimInfo | None]:
        """(our claim, None) when this worker now holds the entry, or (None, the holder's
        claim) when another worker does and its claim is not stale. A stale claim is taken
        over. The caller must look at the entry's state again once it holds the claim: another
        worker may have completed it in the meantime."""
        path = self.claim_path(entry_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        doc = {"host": HOST, "pid": os.getpid(), "pid_namespace": PID_NAMESPACE,
               "token": token, "entry": entry_index, "claimed_at": round(time.time(), 3)}
        staged = path.with_name(f".{path.name}.{token}.tmp")
        for _ in range(10):  # each pass either ends or saw the claim change under it
            info = read_claim(path)
            if info is not None:
                if not info.stale(timeout):
                    return None, info
                if not self._remove_stale(info, token):
                    continue
            try:
                staged.write_bytes(_json_bytes(doc))
                won = _publish_new(staged, path)
            finally:
                staged.unlink(missing_ok=True)
            if won:
                return EntryClaim(path, token, timeout), None
        info = read_claim(path)
        return None, info

    @staticmethod
    def _remove_stale(info: ClaimInfo, token: str) -> bool:
        """Remove the stale claim ``info``, unless it changed since it was read; True when it
        did. Takeovers of one entry are serialized by a short-lived lock file
        (``.<claim>.takeover``, exclusive create; one left by a worker that died in those few
        milliseconds is cleared after TAKEOVER_LOCK_STALE seconds). Under it, the claim is read
        again, renamed aside (atomic) and checked once more: a claim that is not the one
        judged stale (its heartbeat came, or it is a new holder's) is put back."""
        lock = info.path.with_name(f".{info.path.name}.takeover")
        staged = lock.with_name(f"{lock.name}.{token}.tmp")
        try:
            staged.write_bytes(_json_bytes({"host": HOST, "pid": os.getpid()}))
            locked = _publish_new(staged, lock)
        finally:
            staged.unlink(missing_ok=True)
        if not locked:
            try:
                if time.time() - lock.stat().st_mtime > TAKEOVER_LOCK_STALE:
                    lock.unlink()
            except FileNotFoundError:
                pass
            return False
        try:
            again = read_claim(info.path)
            if again is None or again.raw != info.raw or again.mtime != info.mtime:
                return False
            aside = info.path.with_name(f".{info.path.name}.{token}.stale")
            try:
                os.rename(info.path, aside)
            except FileNotFoundError:
                return False
            try:
                if aside.read_bytes() != info.raw or aside.stat().st_mtime != info.mtime:
                    try:
                        os.link(aside, info.path)
                    except FileExistsError:
                        pass
                    return False
                return True
            finally:
                aside.unlink(missing_ok=True)
        finally:
            lock.unlink(missing_ok=True)

    def state(self, entry_path: str) -> str:
        """'done' (marker present), 'partial' (directory without marker) or 'pending'."""
        directory = self.entry_dir(entry_path)
        if (directory / MARKER).exists():
            return "done"
        return "partial" if directory.exists() else "pending"

    def fresh_entry_dir(self, entry_path: str) -> Path:
        """An empty directory for an entry about to run: partial outputs of an earlier,
        interrupted attempt are removed so they are never mixed with the new ones."""
        directory = self.entry_dir(entry_path)
        if directory.exists():
            # The marker goes first: a kill halfway through the removal must not leave a
            # marker vouching for files that are gone.
            (directory / MARKER).unlink(missing_ok=True)
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        return directory

    def complete(self, entry_path: str, plan_id: str, entry_index: int,
                 files: list[str]) -> None:
        """Write the marker last, with checksums of the files it vouches for."""
        directory = self.entry_dir(entry_path)
        names = sorted(files)
        marker = {"plan_id": plan_id, "entry": entry_index,
                  "files": {name: sha256_file(directory / name) for name in names},
                  "bytes": {name: (directory / name).stat().st_size for name in names}}
        atomic_write(directory / MARKER, _json_bytes(marker))

    def read_marker(self, entry_path: str) -> dict[str, Any]:
        return json.loads((self.entry_dir(entry_path) / MARKER).read_text("utf-8"))

    def verify(self, entry_path: str, plan_id: str, entry_index: int | None = None) -> list[str]:
        """Problems with a complete entry: its marker is damaged or belongs elsewhere, or a file
        it vouches for is missing, truncated or changed since completion. [] when intact.
        Raises OSError when a file exists but cannot be read."""
        directory = self.entry_dir(entry_path)
        try:
            marker = json.loads((directory / MARKER).read_text("utf-8"))
        except FileNotFoundError:
            return [f"{MARKER} is missing"]
        except (UnicodeDecodeError, ValueError):
            return [f"{MARKER} is damaged (not JSON)"]
        files = marker.get("files") if isinstance(marker, dict) else None
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            return [f"{MARKER} is damaged (no file checksums)"]
        problems = []
        if marker.get("plan_id") != plan_id:
            problems.append(f"{MARKER} belongs to another plan "
                            f"({str(marker.get('plan_id'))[:12]})")
        if entry_index is not None and marker.get("entry") != entry_index:
            problems.append(f"{MARKER} is for entry {marker.get('entry')!r}, not {entry_index}")
        missing = [n for n in ENTRY_FILES if n not in files]
        if missing:
            problems.append(f"{MARKER} does not vouch for {', '.join(missing)}")
        sizes = marker.get("bytes") if isinstance(marker.get("bytes"), dict) else {}
        for name, digest in sorted(files.items()):
            path = directory / name
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                problems.append(f"{MARKER} names an odd file {name!r}")
                continue
            if not path.is_file():
                problems.append(f"{name} is missing")
                continue
            size, recorded = path.stat().st_size, sizes.get(name)
            if sha256_file(path) == digest:
                continue
            if isinstance(recorded, int) and size < recorded:
                problems.append(f"{name} is truncated ({size} of {recorded} bytes)")
            else:
                problems.append(f"{name} changed after the entry completed (checksum differs)")
        return problems


# --- entry claims: several workers on one sweep directory --------------------------------------
#
# A worker runs an entry only while it holds the entry's claim, ``<entry dir>.claim``: a small
# JSON file (host, pid, pid namespace, a random token, the entry, when it was claimed) that
# appears atomically and whole (hard link of a staged file; exactly one of several racing
# workers gets it). While the entry runs, a thread touches the file every
# ``heartbeat_interval(timeout)`` seconds; its mtime is the heartbeat. A claim is stale, and
# any worker may take it over, when its heartbeat is older than the claim timeout, or at once
# when its holder is a process on this machine (same host name and pid namespace) that no
# longer exists. The claim is removed after the entry's marker is written, or when the worker
# stops (Ctrl-C, SIGTERM, an error). A SIGKILLed worker leaves it behind, stale.

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
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
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        host, pid = str(doc["host"]), int(doc["pid"])
        namespace, token = str(doc.get("pid_namespace", "")), str(doc["token"])
    except (ValueError, KeyError, TypeError):
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

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_interval(self.timeout)):
            try:
                if self.held():
                    os.utime(self.path)
            except OSError:
                pass  # a passing hiccup of the file system; the next beat tries again

    def __enter__(self) -> EntryClaim:
        self._thread = threading.Thread(target=self._beat, name="hyperlax-claim-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            if self.held():
                self.path.unlink()
        except OSError:
            pass  # left behind, it goes stale: never worse than a crash


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, _json_bytes(obj))


json_bytes = _json_bytes
