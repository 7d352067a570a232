"""exec --devices: a batch's sample axis split across local devices. Tested on 2 forced CPU
devices in a subprocess (XLA_FLAGS must be set before jax is imported): results equal the
unsharded run's to float tolerance, padding to a multiple of the device count is dropped, the
compiled program has no cross-device collectives (so a batched LAPACK QR, PPO's orthogonal
init, cannot deadlock in one), and the whole run finishes within a timeout rather than hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.exec.sharding import collectives, padded_width
from test_exec import tiny_plan

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""\
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import jax
    import numpy as np
    from click.testing import CliRunner
    from hyperlax.cli.main import main
    from hyperlax.exec.local_exec import execute
    from hyperlax.exec.runner import CompiledRunner
    from hyperlax.exec.sharding import collectives
    from test_exec import tiny_plan

    assert len(jax.devices()) == 2, jax.devices()
    tmp = Path({tmp!r})
    plan, pid, data = tiny_plan(tmp, n=3, batch=3)       # one entry, width 3
    assert [sb.width for sb in plan.entries[0].sub_batches] == [3]

    sharded = CompiledRunner(plan, devices=jax.devices())
    a = sharded.run(0, [0, 1, 2], 3)                      # padded to 4 lanes, 2 per device
    assert sharded.programs.keys() == [(0, 4, 2)], sharded.programs.keys()
    for part in sharded.programs.parts((0, 4, 2)).values():   # init and chunk
        found = collectives(part.as_text())
        assert not found, found
    b = CompiledRunner(plan).run(0, [0, 1, 2], 3)
    assert a.returns.shape == b.returns.shape == (3, 1, 2)
    np.testing.assert_allclose(a.returns, b.returns, rtol=1e-5, atol=1e-5)
    for name in b.losses:
        np.testing.assert_allclose(a.losses[name], b.losses[name], rtol=1e-4, atol=1e-5)
    print("RUNNER OK", flush=True)

    (tmp / "plan.msgpack").write_bytes(data)
    result = CliRunner().invoke(main, ["exec", str(tmp / "plan.msgpack"), "--output-root",
                                       str(tmp / "out"), "--devices", "all"])
    assert result.exit_code == 0, result.output
    entry = tmp / "out" / plan.entries[0].path
    with np.load(entry / "curves.npz") as npz:
        np.testing.assert_allclose(npz["returns"], b.returns, rtol=1e-5, atol=1e-5)
    print("EXEC OK", flush=True)
""")


@pytest.mark.subprocess
def test_sharded_over_two_cpu_devices_matches_unsharded(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SCRIPT.format(tests=str(HERE), tmp=str(tmp_path)))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    try:
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the sharded run hung (deadlock?):\n{exc.stderr}") from None
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RUNNER OK" in done.stdout and "EXEC OK" in done.stdout


def test_padded_width():
    assert [padded_width(w, 2) for w in (1, 2, 3, 4, 5)] == [2, 2, 4, 4, 6]
    assert [padded_width(w, 1) for w in (1, 3)] == [1, 3]
    assert padded_width(5, 4) == 8


def test_collectives_finds_cross_device_ops():
    assert collectives("%x = f32[4] all-gather(f32[2] %p), dimensions={0}") == ["all-gather"]
    assert collectives("%s = all-reduce-start(%p)\n%c = collective-permute(%q)") == [
        "all-reduce", "collective-permute"]
    assert collectives("%y = f32[4] add(%a, %b)") == []


def test_more_devices_than_available_is_bad_input(tmp_path):
    _, _, data = tiny_plan(tmp_path)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(out),
                                       "--devices", "64"])
    assert result.exit_code == 2, result.output
    assert "error: exec: --devices: 64 devices asked for, 1 available (cpu)" in result.output
    assert "xla_force_host_platform_device_count" in result.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--devices", "two"])
    assert result.exit_code == 2
    assert "--devices: 'two': expected 'all' or a positive number" in result.output
