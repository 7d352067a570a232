"""Exec in this process: a plain plan's entries (``executor.run_entries``) or a
successive-halving plan's rungs (``halving.rungs.run_rungs``, which runs each rung's entries
the same way), on this machine's devices. Ray's counterpart is ``ray_exec.execute_ray``.

It sits above both loops so that each imports only what is below it: the rung loop uses the
entry loop, and the entry loop knows a rung only as the ``halving.job.RungJob`` it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Collection

from hyperlax.exec.executor import ExecReport, claim_sweep, run_entries, selected_entries
from hyperlax.exec.halving.rungs import run_rungs
from hyperlax.exec.progress import Progress
from hyperlax.exec.runner import CompiledRunner
from hyperlax.plan.format import Plan
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT
from hyperlax.storage.sweepdir import Owner, SweepDir


def execute(plan: Plan, plan_id: str, plan_bytes: bytes, root: Path, *,
            progress: Progress | None = None, entries: list[int] | None = None,
            redo: Collection[str] = (), devices: list[Any] | None = None,
            claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
            log: Callable[[str], None] | None = None,
            compile_workers: int = 0,
            shard: tuple[int, int] | None = None) -> ExecReport:
    """Run every incomplete entry of ``plan`` (or of ``entries``) into ``root``, in plan order;
    entries whose path is in ``redo`` run again even though marked complete (the CLI passes
    the corrupt ones when asked to). A failed write raises StorageError: the entry being
    written stays unmarked, and entries completed before it keep their markers.

    Entries another worker holds are skipped and come back at the end: this returns once every
    selected entry is complete, by this worker or another, taking over the claims of workers
    that stopped heartbeating for ``claim_timeout`` seconds (or died on this machine).

    ``compile_workers``: threads that compile programs ahead of their use (0: each program
    compiles when first needed, in this thread).

    A successive-halving plan runs rung after rung (``halving.rungs``): its entries are
    not known in advance, so it is split by ``shard`` (K, N), in every rung, not by
    ``entries``."""
    if plan.halving is not None and entries is not None:
        raise ValueError("a successive-halving plan is split by shard, not by entries")
    sweep, owner = SweepDir(root), Owner.of(plan, plan_id)
    claim_sweep(sweep, plan_bytes, owner)
    runner = CompiledRunner(plan, devices=devices, compile_workers=compile_workers,
                            listener=progress)
    try:
        if plan.halving is not None:
            report = run_rungs(plan, sweep, owner, runner, progress, redo, claim_timeout, log,
                               shard)
        else:
            report = run_entries(plan, sweep, owner, runner, progress,
                                 selected_entries(plan, entries), redo, claim_timeout, log)
    finally:
        runner.close()
    if progress:
        progress.finish()
    return report
