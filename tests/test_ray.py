"""exec --ray against a real local Ray cluster (started here on 127.0.0.1, in a temporary
directory, stopped at the end): a plan completes with the same results as a plain exec, and a
worker SIGKILLed in the middle of an entry is retried and the sweep completes, nothing lost;
a successive-halving plan with checkpoints runs rung after rung, its worker killed after a
checkpoint resumes from it, and it ends with the decisions and outputs of a plain exec."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pytest

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.subprocess]

from hyperlax.exec.halving import decide as H  # noqa: E402

from hyperlax.exec.local_exec import execute  # noqa: E402
from hyperlax.storage.sweepdir import CLAIM_SUFFIX, MARKER  # noqa: E402
import exec_points  # noqa: E402
from conftest import ReferenceRun  # noqa: E402
from test_crash import assert_same_results, entry_dir, states  # noqa: E402
from test_halving import RUNGS, make_plan  # noqa: E402
from test_halving_scale import assert_same_sweep  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1. Its files go to a temporary directory
    (Ray writes ~/.ray and /tmp/ray by default); it runs in its own session, and is stopped by
    signalling that process group only. Its workers have the exec points installed, acting on
    what ``kill_request`` asks (``exec_points.pause_one``)."""
    tmp = tmp_path_factory.mktemp("ray")
    (tmp / "home").mkdir()
    request = tmp / "kill-request.json"
    env = {**os.environ, **exec_points.environment(request_file=request),
           "HOME": str(tmp / "home"), "RAY_USAGE_STATS_ENABLED": "0",
           # Ray otherwise swaps 127.0.0.1 for the machine's outward address
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # stop at once, no 30 s drain
    port = free_port()
    log = open(tmp / "ray-start.log", "w")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", f"--temp-dir={tmp / 'ray'}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (tmp / "ray-start.log").read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start failed:\n" + (tmp / "ray-start.log").read_text())
            time.sleep(0.5)
        yield {"address": f"127.0.0.1:{port}", "env": env, "request": request}
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=45)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of this group is left
        except ProcessLookupError:
            pass
        head.wait()
        log.close()


def ray_exec(cluster, plan_file: Path, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperlax", "exec", str(plan_file), "--output-root", str(root),
         "--ray", cluster["address"], "--ray-retries", "2"],
        env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def kill_request(cluster, victim_dir: Path, point: str) -> Iterator[None]:
    """While inside: the first task of any worker to reach ``point`` writes ``victim`` into
    ``victim_dir`` and pauses there, for the test to SIGKILL it."""
    cluster["request"].write_text(json.dumps({"point": point, "victim_dir": str(victim_dir)}))
    try:
        yield
    finally:
        cluster["request"].unlink()


def wait_for_victim(driver: subprocess.Popen, hook: Path, deadline: float, what: str,
                    ready: Callable[[], bool] = lambda: True) -> tuple[int, int]:
    """(pid, entry index) of the worker ``kill_request`` chose, once it is there and ``ready``;
    fails with ``what`` at ``deadline``, or at once if the driver ended."""
    while not (hook / "victim").exists() or not ready():
        assert driver.poll() is None, driver.communicate()[1]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    victim, index = map(int, (hook / "victim").read_text().split())
    return victim, index


def test_ray_exec_gives_the_results_of_a_plain_exec(cluster, reference_run, tmp_path):
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    driver = ray_exec(cluster, plan_file, root)
    out, err = driver.communicate(timeout=TIMEOUT)
    assert driver.returncode == 0, err
    assert "ray: connected: 2 CPUs, 0 GPUs, 1 nodes" in err
    assert "3 entries run, 0 skipped" in out
    assert_same_results(root, reference, plan, pid)
    assert not list(root.rglob(f"*{CLAIM_SUFFIX}"))


@pytest.mark.stops
def test_a_worker_killed_mid_entry_is_retried_and_nothing_is_lost(cluster, reference_run,
                                                                  tmp_path):
    plan = reference_run.plan
    pid = reference_run.plan_id
    plan_file = reference_run.plan_file
    reference = reference_run.root
    root = tmp_path / "out"
    hook = tmp_path / "hook"
    hook.mkdir()
    with kill_request(cluster, hook, "after-file:curves.npz"):
        driver = ray_exec(cluster, plan_file, root)
        try:
            deadline = time.monotonic() + TIMEOUT
            victim, index = wait_for_victim(driver, hook, deadline,
                                            what="no task reached the point")
            entry = entry_dir(root, plan, index)
            while not (entry / "curves.npz").exists():  # it pauses right after this file
                assert time.monotonic() < deadline, "the victim never wrote curves.npz"
                time.sleep(0.2)
            assert not (entry / MARKER).exists()
            os.kill(victim, signal.SIGKILL)  # a Ray worker process, mid-entry
            out, err = driver.communicate(timeout=TIMEOUT)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    assert driver.returncode == 0, err
    assert "3 entries run, 0 skipped" in out
    assert states(root, plan) == ["done"] * 3
    assert_same_results(root, reference, plan, pid)
    assert not list(root.rglob(f"*{CLAIM_SUFFIX}")) and not list(root.rglob("*.tmp"))
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


class HalvingReference(NamedTuple):
    """A halving plan's uninterrupted plain exec, and the env steps it trained."""

    run: ReferenceRun
    env_steps: int


@pytest.fixture(scope="module")
def halving(tmp_path_factory) -> HalvingReference:
    """test_halving's sweep with a checkpoint every evaluation, and a plain exec of it."""
    tmp = tmp_path_factory.mktemp("rayhalving")
    plan, pid, data = make_plan(tmp, rungs=RUNGS + "checkpoint_every = 1\n")
    plan_file = tmp / "plan.msgpack"
    plan_file.write_bytes(data)
    report = execute(plan, pid, data, tmp / "reference")
    return HalvingReference(ReferenceRun(plan, pid, plan_file, tmp / "reference"),
                            report.env_steps)


@pytest.mark.stops
def test_halving_with_a_worker_killed_after_a_checkpoint(cluster, halving, tmp_path):
    """Rung after rung as Ray tasks, decided in the driver. The last rung's entry (evaluations
    3 and 4) is SIGKILLed right after its checkpoint at evaluation 3: the retried task resumes
    from it, so it trains one evaluation, not two, and every output is a plain exec's."""
    plan, pid, plan_file, reference = halving.run
    reference_steps = halving.env_steps
    root = tmp_path / "out"
    hook = tmp_path / "hook"
    hook.mkdir()
    last = 2 * H.RUNG_STRIDE
    record = root / "checkpoints" / "rungs" / "rung_2" / "batch_00000" / "sub_batch_0.json"
    with kill_request(cluster, hook, f"checkpoint:3@{last}"):
        driver = ray_exec(cluster, plan_file, root)
        try:
            victim, index = wait_for_victim(driver, hook, time.monotonic() + 2 * TIMEOUT,
                                            ready=record.exists,
                                            what="the last rung's task never checkpointed")
            assert index == last
            assert not (root / "rungs" / "rung_2" / "batch_00000" / MARKER).exists()
            os.kill(victim, signal.SIGKILL)  # a Ray worker process, mid-entry
            out, err = driver.communicate(timeout=TIMEOUT)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    assert driver.returncode == 0, err
    assert "7 entries run, 0 skipped" in out
    assert "rung 0 decided: samples" in err and "rung 1 decided: samples" in err
    assert_same_sweep(root, reference, plan, pid)
    steps = int(re.search(r"([\d,]+) env steps", out).group(1).replace(",", ""))
    assert 0 < steps < reference_steps  # the resumed entry did not train evaluation 3 again
    assert not (root / "checkpoints").exists()
