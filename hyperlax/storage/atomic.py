"""Generic crash-safe file I/O: atomic writes, publish-once files, checksums, JSON bytes, and
the error a failed disk operation becomes. JAX-free."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError


class StorageError(HyperlaxError):
    """Reading or writing the sweep directory failed (disk full, read-only, permissions): not
    the user's input, so ``exec`` exits with status 1, not 2. Whatever was being written is
    not marked complete."""

    exit_status = 1


def storage_error(where: Path, exc: OSError, doing: str, then: str = "") -> StorageError:
    """The located error a failed disk operation on ``where`` becomes. Its hint names the cause
    the errno tells (disk full, permissions, something in the way, ...) and then ``then``,
    what to do once that is fixed."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None and str(exc.filename) != str(where):
        reason += f" ({exc.filename})"
    hint = cause_hint(where, exc)
    return StorageError(str(where), f"{doing}: {reason}", f"{hint}, then {then}" if then else hint)


_QUOTA = getattr(errno, "EDQUOT", None)
_FORBIDDEN = {errno.EACCES, errno.EPERM}
_IN_THE_WAY = {errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EISDIR}


def cause_hint(where: Path, exc: OSError) -> str:
    """What to fix, as far as ``exc`` tells: not 'free disk space' for a permission error."""
    if isinstance(exc, NotRegularFileError):
        return f"move {exc.filename} out of the way (it is not a regular file)"
    if exc.errno == errno.ENOSPC:
        return "free disk space"
    if _QUOTA is not None and exc.errno == _QUOTA:
        return "free disk space within your quota (or have it raised)"
    if exc.errno in _FORBIDDEN:
        return f"fix the permissions of {where} and the directories above it"
    if exc.errno == errno.EROFS:
        return ("the file system is mounted read-only: remount it writable or use an output "
                "root on another file system")
    if exc.errno in _IN_THE_WAY:
        blocker = _blocker(Path(exc.filename) if exc.filename is not None else where)
        if blocker is None:
            blocker = _blocker(where)
        what = (f"{blocker} ({describe_kind(blocker)})" if blocker is not None
                else "a file or a symbolic link")
        return (f"something that is not a directory is in the way of {where}: "
                f"move {what} away")
    return f"check the disk and the permissions of {where}"


def _blocker(path: Path) -> Path | None:
    """The first component of ``path``, from the top, that exists and is not a plain
    directory (a file, a symbolic link, a FIFO, ...): what keeps a directory from being made
    or used there."""
    path = Path(os.path.abspath(path))
    for candidate in [*reversed(path.parents), path]:
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode) and candidate != path and candidate.is_dir():
            # a link to a directory above the target works as one; keep walking
            continue
        if not stat.S_ISDIR(mode):
            return candidate
    return None


def describe_kind(path: Path, follow: bool = False) -> str:
    """'a regular file', 'a FIFO', 'a directory', 'a symbolic link', ... for messages."""
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except OSError:
        return "missing"
    return _kind(mode)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


class NotRegularFileError(OSError):
    """The target of a write exists and is not a regular file (a FIFO, a device, a directory,
    a socket, a dangling symbolic link or a link to one of those): it is never replaced. An
    OSError, so every caller that turns a failed write into a located message handles it."""

    def __init__(self, path: Path, what: str):
        super().__init__(errno.EINVAL, f"it {what}, not a regular file: refusing to replace it",
                         str(path))


def write_target(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself when it is missing or a regular
    file; the file a symbolic link points to, when that is a regular file (the link is kept
    and written through). Anything else raises NotRegularFileError, without opening it (so a
    FIFO never blocks)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if stat.S_ISREG(mode):
        return path
    if not stat.S_ISLNK(mode):
        raise NotRegularFileError(path, f"is {_kind(mode)}")
    real = Path(os.path.realpath(path))
    try:
        target_mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise NotRegularFileError(path, f"is a dangling symbolic link (to {os.readlink(path)})"
                                  ) from None
    if not stat.S_ISREG(target_mode):
        raise NotRegularFileError(path, f"is a symbolic link to {_kind(target_mode)} ({real})")
    return real


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never
    a part: write a temporary file in the same directory, fsync it, rename it over ``path``,
    then fsync the directory so the rename itself survives a crash.

    Only a regular file is ever replaced: a symbolic link is written through (the file it
    points to is replaced atomically, the link stays), and a FIFO, a device, a directory, a
    socket or a link to none of a regular file raise NotRegularFileError (an OSError)."""
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    path = write_target(path)
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
