"""``hyperlax exec --ray``: each pending entry is one Ray task.

The driver (the ``exec`` process) sets up the sweep directory, submits one task per pending
entry with the resources asked for (``--ray-cpus``, ``--ray-gpus``), shows progress as tasks
finish, and returns when every entry is complete. A task runs its entry exactly as a plain
``exec`` does (``executor.attempt_entry``: claim, train, write files, marker, release), in the
worker process, into the same output root, which must therefore be on a file system every Ray
node sees at the same path. Each worker process keeps its compiled programs between tasks.

Failures: a task whose worker process dies (killed, out of memory, node lost) is re-run by Ray
up to ``--ray-retries`` times; the re-run takes over the dead worker's claim (at once on the
same machine, after the claim timeout elsewhere) and redoes the entry, from its last checkpoint
with ``checkpoint_every`` (checkpoints are on the shared disk), else from scratch. A task that
fails in hyperlax itself (a disk error) is not retried: exec stops with exit status 1, as a
plain exec would. An entry another worker holds (a plain exec elsewhere on the same sweep) is
submitted again later, until it is complete.

Successive halving: the driver runs rung after rung (``halving.rungs.walk_rungs``): the
rung's pending entries as tasks, then the rung's decision, made in the driver; a task rebuilds
its rung's RungJob from the plan, its entry index and the decisions on disk.

Ray is an optional dependency (``pip install 'hyperlax[ray]'``) imported only here.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Collection, Iterator

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import default_compile_cache
from hyperlax.plan.format import Plan
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT, poll_interval
from hyperlax.storage.sweepdir import Owner, SweepDir

class RayFailed(HyperlaxError):
    """A Ray task failed for good (its retries used up) or Ray itself failed: not the user's
    input, so exec exits with status 1. Entries completed before it keep their markers."""

    exit_status = 1


# --- in the worker ------------------------------------------------------------------------

_WORKER: dict[tuple[str, str | None], Any] = {}


def _worker(plan_bytes: bytes, plan_id: str, devices: str | None,
            compile_cache: str | None) -> tuple[Plan, Owner, Any]:
    """This worker process's decoded plan, its owner ids and its compiled-program cache, made
    once."""
    key = (plan_id, devices)
    if key not in _WORKER:
        from hyperlax.plan.format import decode_plan
        from hyperlax.exec.executor import enable_compile_cache
        from hyperlax.exec.runner import CompiledRunner
        from hyperlax.exec.sharding import resolve_devices

        enable_compile_cache(Path(compile_cache) if compile_cache else default_compile_cache())
        plan, pid = decode_plan(plan_bytes, "the plan sent by the Ray driver")
        if pid != plan_id:
            raise HyperlaxError("ray task", f"plan id {pid[:12]} is not {plan_id[:12]}")
        _WORKER[key] = (plan, Owner.of(plan, pid),
                        CompiledRunner(plan, devices=resolve_devices(devices)))
    return _WORKER[key]


def _task_entry(plan: Plan, sweep: SweepDir, owner: Owner, runner: Any,
                index: int) -> tuple[Any, Any]:
    """The entry of index ``index`` and, with successive halving, how its rung runs (rebuilt
    here from the decisions on disk, as an exec builds it: ``halving.entry_job``)."""
    if plan.halving is None:
        return plan.entries[index], None
    from hyperlax.exec.halving.job import entry_job

    return entry_job(plan, sweep, owner, runner, index)


def run_entry_task(plan_bytes: bytes, plan_id: str, root: str, index: int, redo: bool,
                   devices: str | None, claim_timeout: float,
                   compile_cache: str | None) -> dict[str, Any]:
    """One Ray task: run entry ``index`` (a plan entry, or a rung entry's index with
    successive halving) into ``root`` as a plain exec would."""
    import socket

    from hyperlax.exec.executor import attempt_entry

    plan, owner, runner = _worker(plan_bytes, plan_id, devices, compile_cache)
    sweep = SweepDir(Path(root))
    entry, rung = _task_entry(plan, sweep, owner, runner, index)
    compiles, compile_seconds = runner.compiles, runner.compile_seconds
    attempt = attempt_entry(sweep, runner, plan, owner, entry, redo=redo,
                            claim_timeout=claim_timeout, rung=rung)
    return {
        "outcome": attempt.outcome,
        "seconds": attempt.result.seconds if attempt.result else 0.0,
        "steps": attempt.steps,
        "compiles": runner.compiles - compiles,
        "compile_seconds": runner.compile_seconds - compile_seconds,
        "holder": attempt.holder.holder() if attempt.holder else None,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


# --- in the driver ------------------------------------------------------------------------

def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HyperlaxError("exec", [("--ray", "Ray is not installed")],
                            "pip install 'hyperlax[ray]'") from None
    return ray


@contextlib.contextmanager
def _keep_our_signal_handlers(ray: Any) -> Iterator[None]:
    """ray.init installs a SIGTERM handler that raises SystemExit wherever the driver is:
    exec's stop handling (``hyperlax.exec.stopping``) keeps its own, during and after the call."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    original = getattr(utils, "set_sigterm_handler", None)
    if not stopping.installed() or original is None:
        yield
        return
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = original
        stopping.claim_signals()


def connect(ray: Any, address: str, log: Callable[[str], None] | None) -> bool:
    """Connect to (or start) a cluster; True when this call did, so the caller shuts it
    down."""
    import logging

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    local = not address and not os.environ.get("RAY_ADDRESS")
    if local:
        kwargs["include_dashboard"] = False
    try:
        with _keep_our_signal_handlers(ray):
            ray.init(address=address or None, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
        raise HyperlaxError("exec", [("--ray", f"cannot start or reach Ray at {where}: "
                                               f"{exc}")],
                            "check the address (ray status), or leave it out to start a "
                            "local cluster") from None
    if log:
        res = ray.cluster_resources()
        log(f"ray: {'started a local cluster' if local else 'connected'}: "
            f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, "
            f"{len(ray.nodes())} nodes")
    return True


def execute_ray(plan: Plan, plan_id: str, plan_bytes: bytes, root: Path, *, address: str,
                cpus: float = 1.0, gpus: float = 0.0, retries: int = 3,
                devices: str | None = None, claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
                compile_cache: Path | None = None, progress: Any = None,
                entries: list[int] | None = None, redo: Collection[str] = (),
                log: Callable[[str], None] | None = None,
                shard: tuple[int, int] | None = None) -> Any:
    """Run every incomplete entry of ``plan`` (or of ``entries``) as Ray tasks; returns an
    ``executor.ExecReport``. ``address`` is a Ray address, or "" for RAY_ADDRESS's cluster or
    a new local one. A successive-halving plan runs rung after rung: the rung's entries (of
    ``shard``, if given) as tasks, then the rung's decision, made here in the driver."""
    from hyperlax.exec.executor import ExecReport, claim_sweep, selected_entries

    ray = import_ray()
    sweep, owner = SweepDir(root), Owner.of(plan, plan_id)
    claim_sweep(sweep, plan_bytes, owner)
    report = ExecReport(total=0, skipped=0, ran=0, compiles=0, compile_seconds=0.0,
                        env_steps=0, seconds=0.0, compile_in_tasks=True)
    tasks = _Tasks(ray, address, log, plan_bytes, plan_id, root, cpus=cpus, gpus=gpus,
                   retries=retries, devices=devices, claim_timeout=claim_timeout,
                   compile_cache=compile_cache)
    started = time.perf_counter()
    try:
        if plan.halving is None:
            _run_pending(tasks, report, plan, sweep, selected_entries(plan, entries), redo,
                         progress)
        else:
            from hyperlax.exec.halving.decide import rung_share
            from hyperlax.exec.halving.rungs import walk_rungs

            if entries is not None:
                raise ValueError("a successive-halving plan is split by shard, not by entries")
            for rung in walk_rungs(plan, sweep, owner, redo, claim_timeout, log, shard):
                if rung.mine:  # a shard may have no entry in a rung
                    _run_pending(tasks, report, plan, sweep, rung.mine, rung.redo, progress,
                                 rung_share(plan, rung.index))
    finally:
        tasks.close()
    report.seconds = time.perf_counter() - started
    if progress:
        progress.finish()
    return report


def _run_pending(tasks: _Tasks, report: Any, plan: Plan, sweep: SweepDir, selected: list[Any],
                 redo: Collection[str], progress: Any, share: float = 1.0) -> None:
    """Run the incomplete entries of ``selected`` as tasks, adding to ``report``."""
    from hyperlax.exec.executor import pending_in

    todo, skipped = pending_in(plan, sweep, selected, redo, progress, share)
    report.total += len(selected)
    report.skipped += skipped
    if todo:
        stopping.check()
        tasks.run(todo, redo, report, progress)


class _Tasks:
    """The driver's Ray tasks: the cluster is joined (or started) at the first entry to run,
    and left at ``close``."""

    def __init__(self, ray: Any, address: str, log: Callable[[str], None] | None,
                 plan_bytes: bytes, plan_id: str, root: Path, *, cpus: float, gpus: float,
                 retries: int, devices: str | None, claim_timeout: float,
                 compile_cache: Path | None):
        self.ray, self.address, self.log = ray, address, log
        self.plan_bytes, self.plan_id = plan_bytes, plan_id
        self.root = str(root.resolve())
        self.cpus, self.gpus, self.retries, self.devices = cpus, gpus, retries, devices
        self.claim_timeout = claim_timeout
        self.cache = str(compile_cache.resolve()) if compile_cache is not None else None
        self.started_ray = False
        self.task: Any = None

    def _start(self) -> None:
        ray = self.ray
        self.started_ray = connect(ray, self.address, self.log)
        self.task = ray.remote(run_entry_task).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
            retry_exceptions=False, name="hyperlax-entry")
        self.plan_ref = ray.put(self.plan_bytes)

    def run(self, todo: list[Any], redo: Collection[str], report: Any, progress: Any) -> None:
        """Run ``todo`` as tasks until each is complete (entries a worker outside Ray holds
        are submitted again later)."""
        ray, log = self.ray, self.log
        if self.task is None:
            self._start()
        running: dict[Any, Any] = {}

        def submit(entry: Any) -> None:
            ref = self.task.remote(self.plan_ref, self.plan_id, self.root, entry.index,
                                   entry.path in redo, self.devices, self.claim_timeout,
                                   self.cache)
            running[ref] = entry

        for entry in todo:
            submit(entry)
        later: list[tuple[float, Any]] = []  # (when, entry): held by a worker outside Ray
        poll = poll_interval(self.claim_timeout)
        while running or later:
            stopping.check()  # ray.wait below returns at least every second
            now = time.monotonic()
            for when, entry in [x for x in later if x[0] <= now]:
                later.remove((when, entry))
                submit(entry)
            if not running:
                stopping.sleep(min(poll, max(0.0, min(w for w, _ in later) - now)))
                continue
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            stopping.check()
            for ref in ready:
                entry = running.pop(ref)
                out = _result(ray, ref, entry, self.retries)
                report.compiles += out["compiles"]
                report.compile_seconds += out["compile_seconds"]
                if out["outcome"] == "busy":
                    if log:
                        log(f"{entry.path}: held by {out['holder']}; trying again later")
                    later.append((time.monotonic() + poll, entry))
                elif out["outcome"] == "done":
                    report.by_others += 1
                    if log:
                        log(f"{entry.path}: completed by another worker")
                else:
                    report.ran += 1
                    report.env_steps += out["steps"]
                    if progress:
                        result = SimpleNamespace(seconds=out["seconds"], sub_batches=[
                            SimpleNamespace(compile_seconds=out["compile_seconds"])])
                        progress.entry_done(entry, result, out["steps"])

    def close(self) -> None:
        # On a stop (SIGINT, SIGTERM) or an error, running tasks are not cancelled one by one
        # (cancelling running tasks has crashed the driver in Ray 2.60): ending the driver's
        # job ends them. Their claims then name dead processes: taken over at once on the same
        # machine, after the claim timeout from another, and the entries are redone.
        if self.started_ray:
            self.ray.shutdown()


def _result(ray: Any, ref: Any, entry: Any, retries: int) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HyperlaxError):
            raise cause from None
        raise RayFailed(entry.path, f"the Ray task failed: {cause or exc}",
                        "see the worker's log in the Ray session directory; complete entries "
                        "are kept, run the same command again") from None
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayFailed(entry.path, f"the Ray task failed after {retries} retries: {first}",
                        "complete entries are kept; run the same command again, with more "
                        "--ray-retries or memory per task") from None
