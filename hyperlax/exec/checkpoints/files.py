"""Where an entry's mid-training checkpoints live on disk, and the record that vouches for each.
JAX-free: ``status`` reads the records; ``runtime.checkpoints`` makes and restores the data.

    <output root>/checkpoints/<entry path>/
      sub_batch_<k>.e<evaluations>.msgpack   the training carry of sub-batch k and its metrics
                                             so far (flax.serialization's msgpack)
      sub_batch_<k>.json                     the record, written last: whose results, which
                                             entry, sub-batch, samples and width, evaluations
                                             done, the data file's name, size and sha256

A save writes the data file (atomically, under a new name), then the record (atomically), then
removes the sub-batch's older data files: a kill at any moment leaves a record that names a
complete data file. A record that is missing, damaged, another plan's or another entry's, or
whose data fails its checksum, is ignored with a warning: the sub-batch starts from scratch.
The entry's whole checkpoint directory is removed once its marker is written.

The checkpoints live outside the entry's directory, which is emptied when its outputs are
written: so a kill while writing outputs still finds them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import hyperlax
from hyperlax.errors import HyperlaxError
from hyperlax.plan.check import CHECKPOINTS_DIR
from hyperlax.storage.paths import inside
from hyperlax.storage import atomic
from hyperlax.storage.atomic import json_bytes
from hyperlax.storage.read import read_bytes, read_json

CHECKPOINT_FORMAT = "hyperlax-checkpoint-1"


def checkpoint_path(entry_path: str) -> str:
    """The entry's checkpoint directory, relative to the output root."""
    return f"{CHECKPOINTS_DIR}/{entry_path}"


def checkpoint_dir(root: Path, entry_path: str) -> Path:
    """The entry's checkpoint directory; ValueError when a symlink on the way leads out of
    the output root (nothing is written or deleted through one)."""
    return inside(root, checkpoint_path(entry_path))


def record_name(sub_batch: int) -> str:
    return f"sub_batch_{sub_batch}.json"


def data_name(sub_batch: int, evaluations: int) -> str:
    return f"sub_batch_{sub_batch}.e{evaluations:06d}.msgpack"


def read_record(directory: Path, sub_batch: int, *, root: Path
                ) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None), (None, None) when there is none, or (None, why it is unusable): a
    FIFO, a device, an oversized or deeply nested record, or a link leading out of the output
    ``root`` is unusable, never read (so ``status`` never hangs on one)."""
    path = directory / record_name(sub_batch)
    if not os.path.lexists(path):
        return None, None
    try:
        record = read_json(path, "checkpoint record", within=root)
    except HyperlaxError as exc:
        return None, f"unreadable checkpoint record: {exc.render().splitlines()[0]}"
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        return None, f"{path}: not a hyperlax checkpoint record"
    return record, None


def expected(owner: Any, entry: Any, sub_batch: int, width: int) -> dict[str, Any]:
    """What a record must say to be this sub-batch's checkpoint."""
    sb = entry.sub_batches[sub_batch]
    return {"format": CHECKPOINT_FORMAT, "results_id": owner.results_id,
            "hyperlax_version": hyperlax.__version__, "entry": entry.index,
            "path": entry.path, "sub_batch": sub_batch, "structure": sb.structure,
            "samples": list(sb.samples), "width": width}


def record_problem(record: dict[str, Any], want: dict[str, Any], directory: Path) -> str | None:
    """Why ``record`` is not the checkpoint ``want`` describes, or None."""
    for key, value in want.items():
        if record.get(key) != value:
            what = {"results_id": "another plan's results",
                    "hyperlax_version": f"another hyperlax ({record.get(key)!r})"}.get(
                key, f"another {key} ({record.get(key)!r}, not {value!r})")
            return f"{directory / record_name(want['sub_batch'])}: a checkpoint of {what}"
    if not isinstance(record.get("calls"), int) or not isinstance(record.get("evaluations"),
                                                                  int):
        return f"{directory / record_name(want['sub_batch'])}: damaged checkpoint record"
    name = record.get("file")
    if not isinstance(name, str) or re.fullmatch(r"sub_batch_\d+\.e\d{6}\.msgpack", name) is None:
        return f"{directory / record_name(want['sub_batch'])}: names an odd data file"
    return None


def read_data(directory: Path, record: dict[str, Any], *, root: Path
              ) -> tuple[bytes | None, str | None]:
    """(the data file's bytes, None) when they match the record's checksum, else (None, why).
    Never more bytes than the record says it has are read."""
    path = directory / record["file"]
    size = record.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None, f"{path}: damaged checkpoint record (its size is {size!r})"
    try:
        data = read_bytes(path, "checkpoint", size, within=root)
    except HyperlaxError as exc:
        return None, f"cannot read the checkpoint: {exc.render().splitlines()[0]}"
    if len(data) != record.get("bytes") or hashlib.sha256(data).hexdigest() != record.get(
            "sha256"):
        return None, f"{path}: the checkpoint is corrupt (size or sha256 differs from its record)"
    return data, None


def write(directory: Path, want: dict[str, Any], calls: int, evaluations: int,
          data: bytes, *, root: Path) -> Path:
    """Save ``data`` as the sub-batch's checkpoint after ``evaluations`` (``calls`` calls);
    the data file, then its record, then older data files go. Nothing is written or deleted
    outside the output ``root`` (a link planted on the way, even above ``directory``, is an
    OutsideRootError). Raises OSError."""
    sub_batch = want["sub_batch"]
    name = data_name(sub_batch, evaluations)
    atomic.atomic_write(directory / name, data, within=root)
    record = {**want, "calls": calls, "evaluations": evaluations, "file": name,
              "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    atomic.atomic_write(directory / record_name(sub_batch), json_bytes(record), within=root)
    for old in directory.glob(f"sub_batch_{sub_batch}.e*.msgpack"):
        if old.name != name:
            atomic.remove_file(old, within=root)
    return directory / name


def remove(root: Path, entry_path: str) -> None:
    """Remove an entry's checkpoints (its outputs are complete), and the directories above
    them that this leaves empty, up to ``checkpoints/``."""
    try:
        directory = checkpoint_dir(root, entry_path)
    except ValueError:
        return  # a symlink out of the root: never delete through it
    if directory.is_symlink() or not directory.is_dir():
        return
    atomic.remove_tree(directory, within=root, ignore_errors=True)
    top = root / CHECKPOINTS_DIR
    parent = directory.parent
    while parent != top and top in parent.parents:
        if not atomic.remove_empty_dir(parent, within=root):
            break
        parent = parent.parent
    atomic.remove_empty_dir(top, within=root)


def progress(root: Path, entry: Any) -> list[int | None]:
    """Evaluations each of ``entry``'s sub-batches has checkpointed (None: none), from the
    records alone (the data is checked when exec restores it)."""
    try:
        directory = checkpoint_dir(root, entry.path)
    except ValueError:
        return [None] * len(entry.sub_batches)
    out: list[int | None] = []
    for k in range(len(entry.sub_batches)):
        record, _ = read_record(directory, k, root=root)
        evaluations = record.get("evaluations") if record else None
        out.append(evaluations if isinstance(evaluations, int) else None)
    return out


def size(root: Path) -> int:
    """Bytes under ``checkpoints/`` now."""
    top = root / CHECKPOINTS_DIR
    return sum(p.stat().st_size for p in top.rglob("*") if p.is_file()) if top.is_dir() else 0
