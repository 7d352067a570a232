"""Generic crash-safe file I/O: atomic writes, publish-once files, checksums, JSON bytes, and
the error a failed disk operation becomes. JAX-free."""

from __future__ import annotations

import errno
import hashlib
import json
import os
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


def publish_new(staged: Path, target: Path) -> bool:
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


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON text (no NaN), newline-terminated, UTF-8."""
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
