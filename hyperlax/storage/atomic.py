"""The one writer: every file or directory hyperlax creates, replaces or deletes goes through
this module (``tests/test_file_access.py`` fails on any other write in the package). JAX-free.

Writes are atomic (temporary file, fsync, rename, fsync of the directory) and publish-once files
are hard-linked into place. Every function takes ``within``: the directory the write must stay
in (the output root, a search or report directory, the directory the user named). With every
symbolic link on the way resolved, the written path must lie inside it, else an
OutsideRootError (a HyperlaxError: exit status 2, nothing written) names the link; only a
file the user named on the command line itself is written with ``within=None``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hyperlax.errors import HyperlaxError
from hyperlax.storage.paths import real_root as real_root_of


class OutsideRootError(HyperlaxError):
    """A write or delete that would leave its directory through a symbolic link planted inside
    it. Refused before anything is touched; exit status 2 (the directory is hostile input)."""


def inside_root(path: Path, within: Path, doing: str = "write") -> Path:
    """``path`` when, with every symbolic link on the way resolved, it is ``within`` itself or
    lies below it; an OutsideRootError otherwise. A missing tail is taken literally (it will
    be created as plain directories)."""
    real_root = real_root_of(within)
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise OutsideRootError(str(path), f"refusing to {doing} here: it leads to {real}, "
                                          f"outside {real_root}",
                               "remove the symbolic link (hyperlax never writes outside the "
                               "directory it was given), or use another output directory")
    return path


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


def atomic_write(path: Path, data: bytes, *, within: Path | None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never
    a part: write a temporary file in the same directory, fsync it, rename it over ``path``,
    then fsync the directory so the rename itself survives a crash.

    ``within``: the directory the write must not leave (checked before any directory is made,
    and again right before the rename); None only for a path the user named. Only a regular
    file is ever replaced: a symbolic link is written through (the file it points to is
    replaced atomically, the link stays) when it stays ``within``, and a FIFO, a device, a
    directory, a socket or a link to none of a regular file raise NotRegularFileError (an
    OSError)."""
    if within is not None:
        inside_root(path.parent, within)
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    target = write_target(path)
    if within is not None:
        inside_root(target, within)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would, so results
        # on a shared machine are as readable as the user's umask allows.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def make_dirs(path: Path, *, within: Path) -> Path:
    """``path`` and its missing parents as plain directories, refused (before any is made)
    where a symbolic link on the way leads out of ``within``. Returns ``path``."""
    inside_root(path, within, "make a directory")
    path.mkdir(parents=True, exist_ok=True)
    return inside_root(path, within, "make a directory")


def make_new_dir(path: Path, *, within: Path) -> Path:
    """A directory at ``path`` that did not exist (FileExistsError otherwise), parents made."""
    inside_root(path, within, "make a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    inside_root(path.parent, within, "make a directory")
    path.mkdir()
    return path


def remove_file(path: Path, *, within: Path, missing_ok: bool = True) -> None:
    """Unlink ``path`` (a symbolic link itself, never what it points to); its directory must
    lie ``within``."""
    inside_root(path.parent, within, "delete")
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def remove_tree(path: Path, *, within: Path, ignore_errors: bool = False) -> None:
    """Delete the directory ``path`` and everything in it, never through a symbolic link:
    ``path`` must lie strictly below ``within`` (its parent inside it) and not be a link itself (shutil.rmtree then
    removes links found inside as links, without following them)."""
    inside_root(path.parent, within, "delete")
    if os.path.islink(path):
        raise OutsideRootError(str(path), "refusing to delete through a symbolic link",
                               "remove the symbolic link, or use another output directory")
    shutil.rmtree(path, ignore_errors=ignore_errors)


def remove_empty_dir(path: Path, *, within: Path) -> bool:
    """``rmdir`` ``path`` when it is an empty directory below ``within``: True if it went."""
    inside_root(path.parent, within, "delete")
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def rename_within(source: Path, target: Path, *, within: Path) -> None:
    """``os.rename`` of ``source`` to ``target`` (same directory tree), both below ``within``;
    the rename acts on a link itself, never on what it points to."""
    inside_root(source.parent, within, "move a file")
    inside_root(target.parent, within, "move a file")
    os.rename(source, target)


def open_lock_file(path: Path, *, within: Path) -> int:
    """A descriptor of the lock file ``path`` (created if missing), for ``fcntl.flock``: never
    a symbolic link (O_NOFOLLOW) nor anything but a regular file (a FIFO is opened
    non-blocking, then refused), in a directory below ``within``."""
    make_dirs(path.parent, within=within)
    return _open_regular(path, os.O_RDWR)


def _open_regular(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags`` (created if missing), which must be a
    regular file: never opened through a symbolic link (O_NOFOLLOW), and anything else (a FIFO,
    opened non-blocking so it cannot hang, a device) closed and refused."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFileError(path, f"is {describe_kind(path)}")
    return fd


def append_text(path: Path, text: str, *, within: Path) -> None:
    """Append ``text`` (UTF-8) to the log file ``path``, created if missing, in a directory
    below ``within``: never through a symbolic link (O_NOFOLLOW) and never into anything but a
    regular file (a FIFO is opened non-blocking, then refused; with no reader it fails to
    open). Not atomic, as a log need not be: it only grows, O_APPEND puts each write at its
    end, and a reader may see the last line partly written. No fsync: a crash may lose the
    last lines of a log, never a result."""
    inside_root(path.parent, within)
    fd = _open_regular(path, os.O_WRONLY | os.O_APPEND)
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A new private directory in the system's temporary directory (mode 0700, a name no one
    else has), removed with everything in it on the way out."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_new(staged: Path, target: Path, *, within: Path) -> bool:
    """Make the complete file ``staged`` appear at ``target`` only if nothing is there yet:
    True if it did, False if ``target`` already existed. ``os.link`` is atomic and fails with
    EEXIST, so of several processes racing (on one machine or over NFS) exactly one wins, and
    readers never see a partly written file. Whether this call won is read from the staged
    file's link count, not from link's return value: over NFS, a retransmitted link can report
    EEXIST for a link that was made. ``staged`` (a name no one else uses) is left in place for
    the caller. Both must lie ``within``."""
    inside_root(staged.parent, within)
    inside_root(target.parent, within)
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
            with open(staged, "rb") as source:
                f.write(source.read())
            f.flush()
            os.fsync(f.fileno())
    fsync_dir(target.parent)
    return True


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON text (no NaN), newline-terminated, UTF-8."""
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8")
