"""exec --ray without the Ray extra installed: refused with the extra to install, before
anything is trained or written. (test_ray.py needs Ray; this is the one test of the driver's
Ray module that runs without a cluster.)"""

from __future__ import annotations

import sys

from click.testing import CliRunner

from hyperlax.cli.main import main
from test_exec import tiny_plan


def test_exec_ray_without_ray_names_the_extra(tmp_path, monkeypatch):
    _, _, data = tiny_plan(tmp_path)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root",
                                       str(tmp_path / "out"), "--ray", ""])
    assert result.exit_code == 2, result.output
    assert "--ray: Ray is not installed" in result.output
    assert "pip install 'hyperlax[ray]'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
