"""Which modules of hyperlax the fast test tier leaves unexercised.

    PYTHONPATH=. python tools/fast_tier_modules.py            # the fast tier: -m "not slow"
    PYTHONPATH=. python tools/fast_tier_modules.py -m "not ray" tests/test_exec.py

Runs pytest in this process with the given arguments (default: the fast tier, `-m "not
slow"`, what `make test-fast` runs) and records the file of every Python function called, by a
global trace function that returns None (so no line tracing: one cheap call per function call;
the run is slower, not different). Then lists the modules of hyperlax that were never imported,
and the ones imported of which no function ran. A module without functions (constants,
Structs, re-exports) counts when imported; the `__main__` modules are left out (only `python -m`
runs them, in the subprocess tier). Processes the tests spawn are not seen: the fast
tier spawns none. Exits 1 when a module is listed (or pytest failed), 0 otherwise.
"""

from __future__ import annotations

import ast
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hyperlax"


def package_modules() -> dict[str, Path]:
    """Every module of hyperlax by dotted name, with its file."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def defines_functions(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
               for node in ast.walk(tree))


class CalledFiles:
    """A pytest plugin recording the file of every Python function called during the session,
    in every thread."""

    def __init__(self) -> None:
        self.files: set[str] = set()

    def _trace(self, frame, event, arg):
        self.files.add(frame.f_code.co_filename)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session) -> None:
        threading.settrace(self._trace)
        sys.settrace(self._trace)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        sys.settrace(None)
        threading.settrace(None)


def main(argv: list[str]) -> int:
    args = argv or ["-m", "not slow"]
    recorder = CalledFiles()
    status = pytest.main(["-q", "-p", "no:cacheprovider", *args], plugins=[recorder])
    called = {str(Path(name).resolve()) for name in recorder.files}

    never_imported, never_called = [], []
    for name, path in package_modules().items():
        if name.endswith("__main__"):
            continue  # `python -m` entry points: only the processes of the subprocess tier run them
        if name not in sys.modules:
            never_imported.append(name)
        elif defines_functions(path) and str(path.resolve()) not in called:
            never_called.append(name)
    total = len(package_modules())
    print(f"\n{total} modules of hyperlax; pytest {' '.join(args)}:")
    print(f"  never imported ({len(never_imported)}): {', '.join(never_imported) or '-'}")
    print(f"  imported, no function ran ({len(never_called)}): {', '.join(never_called) or '-'}")
    return 1 if never_imported or never_called or status != 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
