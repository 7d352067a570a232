"""The one reader: every file hyperlax reads from disk goes through this module, whether a user
handed it over (manifests, recipes, plan files, samples files) or hyperlax wrote it earlier
(markers, decisions, checkpoint records, study files): regular files of bounded size only,
refused at once otherwise, and decoded (JSON, npz) with located errors where hostile content
(deep nesting, a bomb of a member) would otherwise raise a traceback.
``tests/test_file_access.py`` fails on any other read in the package. JAX-free.

A path may name a FIFO (``open`` would block until a writer comes), a device (``/dev/zero`` never
ends), a directory, or a file far larger than any manifest: each is refused in well under a
second with a message naming the path, before any byte is read. The file is opened with
``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so what is checked is what is
read even if the path is swapped meanwhile.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError

MAX_MANIFEST_BYTES = 4 << 20    # a manifest or recipe is a page of TOML; 4 MiB is generous
MAX_PLAN_BYTES = 1 << 30        # a million-sample plan is a few hundred MiB
MAX_RECORD_BYTES = 16 << 20     # a marker, decision, claim or checkpoint record: a few KiB
MAX_CURVES_BYTES = 1 << 30      # an entry's curves.npz

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class MissingFileError(HyperlaxError):
    """The file to read does not exist: the one reader error callers often expect (no record
    yet, no decision yet) and handle apart from a damaged or hostile file."""


def read_bytes(path: Path, what: str, limit: int, *, within: Path | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (``what`` names it in messages: "manifest",
    "recipe file", "plan file"), or a HyperlaxError: missing, not a regular file, over
    ``limit`` bytes, unreadable, or (with ``within``, for files hyperlax wrote in a directory
    of its own) a symbolic link that leads out of ``within``."""
    if within is not None:
        _refuse_outside(path, within, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MissingFileError(str(path), f"no such {what}") from None
    except OSError as exc:
        raise HyperlaxError(str(path), f"cannot read the {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise HyperlaxError(str(path), f"the {what} is {kind}, not a regular file",
                                f"pass the path of a {what} on disk")
        if info.st_size > limit:
            raise HyperlaxError(str(path), f"the {what} is {info.st_size:,} bytes, more than "
                                           f"the {limit:,} a {what} may have",
                                "is this the right file?")
        chunks, total = [], 0
        while True:  # read to the end, but never past the limit (the file may grow)
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise HyperlaxError(str(path), f"the {what} grew past {limit:,} bytes while "
                                               "it was read")
        return b"".join(chunks)
    except OSError as exc:
        raise HyperlaxError(str(path), f"cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def decode_text(data: bytes, path: Path | str, what: str) -> str:
    """UTF-8 text, a leading byte-order mark accepted (editors on Windows write one); binary
    content is refused with the byte offset of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HyperlaxError(str(path), f"the {what} is not UTF-8 text (byte {exc.start} is "
                                       f"0x{data[exc.start]:02x})",
                            f"save the {what} as UTF-8 text") from None


def read_text(path: Path, what: str, limit: int = MAX_MANIFEST_BYTES) -> str:
    return decode_text(read_bytes(path, what, limit), path, what)


def _refuse_outside(path: Path, within: Path, what: str) -> None:
    from hyperlax.storage.paths import real_root as real_root_of

    real_root = real_root_of(within)
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise HyperlaxError(str(path), f"the {what} leads to {real}, outside {real_root}: "
                                       "hyperlax never reads its own files through a symbolic "
                                       "link that leaves their directory",
                            "remove the symbolic link and run the command again")


def decode_json(data: bytes | str, path: Path | str, what: str, type: Any = Any,
                hint: str = "restore the file, or remove it and run the command again",
                unique_keys: bool = False) -> Any:
    """``data`` decoded as JSON (into ``type``, a msgspec type, when given). Malformed text,
    the wrong shape, and hostile nesting (a RecursionError deep in any decoder) all become one
    located HyperlaxError, never a traceback. With ``unique_keys`` (a file a person writes), an
    object naming a key twice is refused too: every JSON decoder keeps the last silently."""
    import msgspec  # the decoder, here only: most readers of this module need none

    try:
        decoded = msgspec.json.decode(data, type=type)
        if unique_keys:
            _refuse_duplicate_keys(data, path, what, hint)
        return decoded
    except msgspec.ValidationError as exc:
        raise HyperlaxError(str(path), f"damaged {what}: {exc}", hint) from None
    except msgspec.DecodeError as exc:
        raise HyperlaxError(str(path), f"damaged {what} (not JSON: {exc})", hint) from None
    except RecursionError:
        raise HyperlaxError(str(path), f"damaged {what}: nested too deeply to be one hyperlax "
                                       "wrote", hint) from None


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _refuse_duplicate_keys(data: bytes | str, path: Path | str, what: str, hint: str) -> None:
    """Parsed again, by the standard library's decoder (the only one that shows every pair of
    an object); the text has just decoded, so only a repeated key raises here."""
    import json

    try:
        json.loads(data, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        raise HyperlaxError(str(path), f"the {what} names {exc.args[0]!r} twice in one object",
                            hint) from None
    except (ValueError, RecursionError):
        raise HyperlaxError(str(path), f"damaged {what}: nested too deeply to be one hyperlax "
                                       "wrote", hint) from None


def read_json(path: Path, what: str, *, limit: int = MAX_RECORD_BYTES, type: Any = Any,
              within: Path | None = None,
              hint: str = "restore the file, or remove it and run the command again") -> Any:
    """``read_bytes`` then ``decode_json``."""
    return decode_json(read_bytes(path, what, limit, within=within), path, what, type, hint)


def read_npz(path: Path, what: str, *, limit: int = MAX_CURVES_BYTES,
             within: Path | None = None) -> dict[str, Any]:
    """The arrays of the ``.npz`` file at ``path``: ``read_bytes`` then ``decode_npz``."""
    return decode_npz(read_bytes(path, what, limit, within=within), path, what, limit)


def decode_npz(data: bytes, path: Path | str, what: str,
               limit: int = MAX_CURVES_BYTES) -> dict[str, Any]:
    """The arrays of ``.npz`` bytes, loaded eagerly, without pickles: a HyperlaxError when they
    are not one, or when a member would unpack past ``limit`` bytes (a zip bomb)."""
    import numpy as np  # lazily: the compiler reads no arrays

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > limit:
            raise HyperlaxError(str(path), f"the {what} would unpack to {unpacked:,} bytes, "
                                           f"more than the {limit:,} it may have")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: np.asarray(npz[name]) for name in npz.files}
    except HyperlaxError:
        raise
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, RecursionError,
            MemoryError) as exc:
        raise HyperlaxError(str(path), f"damaged {what}: {exc}",
                            "restore the file, or remove it and run the command again") from None


MAX_HASHED_BYTES = 1 << 40  # streamed, so memory is no limit: a rung carry may be huge


def sha256_file(path: Path, limit: int = MAX_HASHED_BYTES) -> str:
    """The SHA-256 of the regular file at ``path``, read in blocks (never a FIFO: the same
    non-blocking open and fstat as read_bytes). OSError when it cannot be read, as callers
    that verify entries expect."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise OSError(errno.EINVAL, f"not a regular file of at most {limit:,} bytes", str(path))
        digest, total = hashlib.sha256(), 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"grew past {limit:,} bytes while it was read", str(path))
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)
