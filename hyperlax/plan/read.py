"""A plan file read from disk for a command to use: a regular file of bounded size
(``storage.read``), decoded and its id verified (``plan.format``), its content checked
(``plan.check``). Every command that takes a plan file reads it here. JAX-free.
"""

from __future__ import annotations

from pathlib import Path

from hyperlax.errors import HyperlaxError
from hyperlax.plan.check import check_plan
from hyperlax.plan.format import Plan, decode_plan
from hyperlax.storage.read import MAX_PLAN_BYTES, read_bytes


def read_plan(path: Path) -> tuple[Plan, str]:
    plan, pid, _ = read_plan_file(path)
    return plan, pid


def read_plan_file(path: Path) -> tuple[Plan, str, bytes]:
    """(plan, plan id, the file's bytes): the bytes that were verified, for callers that keep
    a copy, so the copy is exactly what was checked even if the file changes meanwhile. Only a
    regular file of bounded size is read; its content is checked as well as its id."""
    try:
        data = read_bytes(path, "plan file", MAX_PLAN_BYTES)
    except HyperlaxError as exc:
        if exc.problems == [("", "no such plan file")]:
            raise HyperlaxError(str(path), "no such plan file",
                                f"create one with: hyperlax plan <manifest> -o {path}") from None
        raise
    if _looks_like_toml(path, data):
        raise HyperlaxError(str(path), "this is a sweep manifest (TOML), not a plan file",
                            f"compile it first: hyperlax plan {path} -o plan.msgpack, then pass "
                            "plan.msgpack") from None
    plan, pid = decode_plan(data, str(path))
    check_plan(plan, str(path))
    return plan, pid, data


def _looks_like_toml(path: Path, data: bytes) -> bool:
    """A manifest handed to exec/show/status/report: a .toml name, or text that starts like
    TOML (a plan file starts with a msgpack map byte)."""
    if path.suffix == ".toml":
        return True
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"[", b"#")) or (b"=" in head.split(b"\n", 1)[0] and
                                             head[:1].isalpha())
