"""Reading the files a user hands us (manifests, recipes, plan files, sample files): regular files
of bounded size only, refused at once otherwise. JAX-free.

A path may name a FIFO (``open`` would block until a writer comes), a device (``/dev/zero`` never
ends), a directory, or a file far larger than any manifest: each is refused in well under a
second with a message naming the path, before any byte is read. The file is opened with
``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so what is checked is what is
read even if the path is swapped meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hyperlax.errors import HyperlaxError

MAX_MANIFEST_BYTES = 4 << 20    # a manifest or recipe is a page of TOML; 4 MiB is generous
MAX_PLAN_BYTES = 1 << 30        # a million-sample plan is a few hundred MiB

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (``what`` names it in messages: "manifest",
    "recipe file", "plan file"), or a HyperlaxError: missing, not a regular file, over
    ``limit`` bytes, unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise HyperlaxError(str(path), f"no such {what}") from None
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
