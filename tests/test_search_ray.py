"""``hyperlax search --ray`` against a real local Ray cluster (test_ray's: 2 CPUs on
127.0.0.1, its files in a temporary directory): every round's entries run as Ray tasks, the
search connects once for all its rounds, and it tells exactly the values the same search
tells without Ray (same machine, same plans: bit-identical results), so Optuna asks the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytest.importorskip("optuna")
pytestmark = [pytest.mark.ray, pytest.mark.subprocess]

from test_ray import TIMEOUT, cluster  # noqa: E402,F401  (cluster: a fixture)
from test_search import searched, study  # noqa: E402,F401  (searched: a fixture)


def test_a_search_on_ray_tells_what_it_tells_without_ray(cluster, searched):  # noqa: F811
    tmp, reference, _ = searched
    root = tmp / "ray"
    done = subprocess.run([sys.executable, "-m", "hyperlax", "search", str(tmp / "search.toml"),
                           "--output-root", str(root), "--ray", cluster["address"]],
                          env=cluster["env"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("ray: connected: 2 CPUs") == 1, done.stderr  # once per search
    assert done.stderr.count("(in the Ray tasks)") == 2, done.stderr      # each round on Ray
    assert study(root)["rounds"] == study(reference)["rounds"]
