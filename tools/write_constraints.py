"""Write constraints.txt: the exact version of every package installed in a virtual environment,
for ``pip install -c constraints.txt`` (``make demo``, ``make test``). ``make constraints``
runs it on a fresh environment holding hyperlax with every extra at the newest versions
pyproject.toml's ranges allow; then ``make test`` checks the suite with them before the file is
committed (docs/development.md#the-constraints-file).

    python tools/write_constraints.py PYTHON   # PYTHON: the environment's interpreter

hyperlax itself (installed editable) is left out, and so is any line pip writes that is not
``name==version`` (a direct URL, a VCS checkout): a constraints file pins versions only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$")
HEADER = """\
# The exact versions `make demo` and `make test` install (pip install -c constraints.txt):
# the versions the test suite passed with. Refresh with `make constraints`, then run
# `make test` before committing (docs/development.md#the-constraints-file). Users who
# `pip install hyperlax` into their own environment get pyproject.toml's ranges instead.
"""


def pinned_lines(freeze: str) -> list[str]:
    """The ``name==version`` lines of ``pip freeze`` output, hyperlax left out, sorted by name."""
    out = [line.strip() for line in freeze.splitlines()]
    out = [line for line in out if PINNED.match(line)
           and line.split("==")[0].lower() != "hyperlax"]
    return sorted(out, key=lambda line: line.lower())


def main(python: str) -> None:
    freeze = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout
    lines = pinned_lines(freeze)
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n", "utf-8")
    print(f"wrote {len(lines)} pins to {ROOT / 'constraints.txt'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
