"""``hyperlax search`` (and the seed's ``optuna-hp-search``) with exec's options for where a
round runs: bad values exit 2 before JAX or Optuna is imported, the options reach every round's
exec and its resume hint, ``--shard`` is refused with the reason (rounds depend on each
other), and a search over 2 forced CPU devices (a subprocess: XLA_FLAGS must be set before JAX
is imported) tells every trial."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from conftest import TINY_RECIPE
from hyperlax.exec.options import ExecOptions
from test_search import MANIFEST, invoke, study

OPTIONS = ["--devices", "2", "--claim-timeout", "60", "--compile-workers", "1",
           "--ray=head:6379", "--ray-cpus", "2", "--ray-gpus", "0.5", "--ray-retries", "5"]
PARSED = ExecOptions(devices="2", claim_timeout_given=60.0, compile_workers_given=1,
                     ray_address="head:6379", ray_cpus=2.0, ray_gpus=0.5, ray_retries=5)


@pytest.fixture
def manifest(write_manifest):
    write_manifest(TINY_RECIPE, "tiny.toml")
    return write_manifest(MANIFEST, "search.toml")


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["search", "optuna-hp-search"])
@pytest.mark.parametrize("option,value,message", [
    ("--devices", "0", "--devices: '0': expected 'all' or a positive number of devices"),
    ("--devices", "x", "--devices: 'x': expected 'all' or a positive number of devices"),
    ("--ray-cpus", "-1", "Invalid value for '--ray-cpus'"),
    ("--claim-timeout", "0", "Invalid value for '--claim-timeout'"),
    ("--shard", "0/2", "--shard: a search's rounds depend on each other"),
])
def test_bad_option_values_exit_2_before_jax_or_optuna(tmp_path, manifest, command, option,
                                                        value, message):
    args = [str(manifest)] if command == "search" else ["--output-root", str(tmp_path / "s")]
    code = ("import sys; from hyperlax.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\n"
            "finally:\n    print(sorted({'jax', 'optuna'} & set(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, command, *args, option, value],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    located = f"error: {command}: {message}" if option == "--devices" else message
    assert located in done.stderr, done.stderr
    assert done.stderr.rstrip().endswith("[]"), done.stderr  # neither was imported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.toml", "tiny.toml"]


def captured(monkeypatch) -> list:
    """run_search replaced by a stand-in that records the request it is given."""
    import hyperlax.search.run as run

    requests: list = []
    monkeypatch.setattr(run, "run_search", lambda request, echo: requests.append(request) or 0)
    return requests


# OPTIONS as the resume hint repeats them
RESUMED_OPTIONS = (" --devices 2 --claim-timeout 60 --compile-workers 1 --ray=head:6379 "
                   "--ray-cpus 2 --ray-gpus 0.5 --ray-retries 5")


def test_the_options_reach_the_rounds_and_the_resume_hint(monkeypatch, manifest, tmp_path):
    requests = captured(monkeypatch)
    result = invoke("search", manifest, "--output-root", tmp_path / "out", *OPTIONS)
    assert result.exit_code == 0, result.output
    request = requests[0]
    assert request.options == PARSED
    assert request.resume.startswith(f"hyperlax search {manifest} --output-root "
                                     f"{tmp_path / 'out'} ")
    assert request.resume.endswith(RESUMED_OPTIONS)
    result = invoke("optuna-hp-search", "--output-root", tmp_path / "seed", "--storage",
                    "s.db", *OPTIONS)
    assert result.exit_code == 0, result.output
    request = requests[1]
    assert request.options == PARSED
    assert request.resume.startswith(f"python -m hyperlax.cli optuna-hp-search --resume-from "
                                     f"{tmp_path / 'seed'} --storage s.db ")
    assert request.resume.endswith(RESUMED_OPTIONS)


def test_devices_reach_the_rounds_exec(manifest, tmp_path):
    """One CPU device here: --devices 2 is refused by the round's exec, which shows that the
    option travels to it (the sharded search below has 2)."""
    result = invoke("search", manifest, "--output-root", tmp_path / "out", "--devices", "2")
    assert result.exit_code == 2, result.output
    assert "--devices: 2 devices asked for, 1 available (cpu)" in result.output


@pytest.mark.subprocess
def test_a_search_over_two_cpu_devices_tells_every_trial(manifest, tmp_path):
    root = tmp_path / "out"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-m", "hyperlax", "search", str(manifest),
                           "--output-root", str(root), "--devices", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    record = study(root)
    told = [t for r in record["rounds"] for t in r["told"]]
    assert [len(r["trials"]) for r in record["rounds"]] == [2, 2]
    assert [t["state"] for t in told] == ["complete"] * 4
    assert all(len(t["values"]) == 1 and math.isfinite(t["values"][0]) for t in told)
    assert "search complete: 4 trials in 2 rounds" in done.stdout
