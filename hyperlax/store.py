"""Files on disk: atomic writes, the sweep directory's ownership record, entry markers.
Shared by exec, status and report. JAX-free."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
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

SWEEP_RECORD = "hyperlax-sweep.json"
PLAN_COPY = "plan.msgpack"
MARKER = "success.txt"
ENTRY_FILES = ["samples.json", "curves.npz", "curves.csv", "summary.json"]


def _is_claim_leftover(name: str) -> bool:
    """What a first exec killed while claiming a directory can leave: the plan copy, and the
    temporary files of atomic_write (``.<name>.<random>.tmp``) for it or the sweep record."""
    return name == PLAN_COPY or (name.endswith(".tmp") and name.startswith(
        (f".{PLAN_COPY}.", f".{SWEEP_RECORD}.")))


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
            raise HyperlaxError(str(self.root), "is not empty and is not a hyperlax sweep "
                                                "directory; nothing was touched",
                                "pass --output-root with a new or empty directory")

    def claim(self, plan_bytes: bytes, plan_id: str) -> None:
        """Record that this directory belongs to ``plan_id``, with a copy of the plan. The copy
        goes first and the record last, so a kill in between leaves a directory that the next
        exec still accepts (check_owner ignores a lone plan copy and temporaries)."""
        self.check_owner(plan_id)
        if self.owner() is None:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.root / PLAN_COPY, plan_bytes)
            atomic_write(self.root / SWEEP_RECORD, _json_bytes({"plan_id": plan_id}))

    def entry_dir(self, entry_path: str) -> Path:
        return self.root.joinpath(*entry_path.split("/"))

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


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, _json_bytes(obj))


json_bytes = _json_bytes
