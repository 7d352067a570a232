"""Paths that come from a manifest, a recipe or a plan are input: before anything is written or
deleted, each must be a plain relative path that stays inside the output root. JAX-free.

``path_problem`` is the syntactic rule, applied when a plan is compiled and again when a plan
file is read (a plan can be edited and its id recomputed). ``inside`` is the filesystem rule,
applied by the runtime right before it writes or deletes: the path, with every symlink on the way
resolved, must lie strictly below the root.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from hyperlax.errors import HyperlaxError

MAX_PATH_CHARS = 1024


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative output path, or None. Safe: non-empty, '/'-separated,
    relative, no '.', '..' or empty components, no NUL or backslash, not the root itself."""
    if not isinstance(path, str) or not path:
        return "is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if "\0" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash; paths are '/'-separated"
    if path.startswith("/") or PurePosixPath(path).is_absolute() or (
            len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute; it must be relative to the output root"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return (f"{path!r} is not a plain relative path (no '.', '..' or empty components): "
                "it could leave the output root")
    return None


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, or ValueError when it is not strictly inside ``root`` once symlinks
    are resolved (a symlinked entry directory pointing elsewhere, say)."""
    problem = path_problem(relative)
    if problem:
        raise ValueError(f"{relative!r} {problem}")
    target = root.joinpath(*relative.split("/"))
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(target))
    if real == real_root or real_root not in real.parents:
        raise ValueError(f"{target} leads to {real}, outside the output root {real_root}")
    return target


def writable_inside(root: Path, relative: str, what: str = "write here",
                    where: Path | None = None) -> Path:
    """``inside``, as the refusal a user sees: a HyperlaxError located at ``where`` (default
    ``root``) saying it refuses to ``what``, with the fix."""
    try:
        return inside(root, relative)
    except ValueError as exc:
        raise HyperlaxError(str(where if where is not None else root),
                            f"refusing to {what}: {exc}",
                            "remove the symlink, or use another --output-root") from None


class PinnedRoot:
    """A root as it really was when it was pinned (every link on the way resolved then), to
    pass as the ``within`` of the reader and the writer: a directory at or above it that is
    swapped for a link later (while a sweep runs) leaves every path below it outside."""

    def __init__(self, root: Path):
        self.real = Path(os.path.realpath(root))

    def __fspath__(self) -> str:
        return str(self.real)

    def __str__(self) -> str:
        return str(self.real)


def real_root(within: Path | PinnedRoot) -> Path:
    """Where ``within`` really is: as pinned, or as it resolves now."""
    return within.real if isinstance(within, PinnedRoot) else Path(os.path.realpath(within))
