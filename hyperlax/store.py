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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never
    a part: write a temporary file in the same directory, fsync it, rename it over ``path``,
    then fsync the directory so the rename itself survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
        if owner is None and self.root.exists() and any(self.root.iterdir()):
            raise HyperlaxError(str(self.root), "is not empty and is not a hyperlax sweep "
                                                "directory; nothing was touched",
                                "pass --output-root with a new or empty directory")

    def claim(self, plan_bytes: bytes, plan_id: str) -> None:
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
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        return directory

    def complete(self, entry_path: str, plan_id: str, entry_index: int,
                 files: list[str]) -> None:
        """Write the marker last, with checksums of the files it vouches for."""
        directory = self.entry_dir(entry_path)
        marker = {"plan_id": plan_id, "entry": entry_index,
                  "files": {name: sha256_file(directory / name) for name in sorted(files)}}
        atomic_write(directory / MARKER, _json_bytes(marker))

    def read_marker(self, entry_path: str) -> dict[str, Any]:
        return json.loads((self.entry_dir(entry_path) / MARKER).read_text("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, _json_bytes(obj))
