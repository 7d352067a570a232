"""Loaded at start-up by every Python process whose PYTHONPATH has this directory (an exec or
a Ray cluster started by a test with ``exec_points.environment``): installs the exec points
the environment asks for (``tests/exec_points.py``)."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests/, for exec_points

import exec_points  # noqa: E402

exec_points.install_from_environment()
