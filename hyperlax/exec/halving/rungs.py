"""Exec of a successive-halving plan: rung after rung, each rung's entries run like any plan's
(claims, outputs, markers, checkpoints, progress, stops), then the rung's decision, then the
survivors continue from their carries in new full batches (``hyperlax.exec.halving.decide`` has the
layout and the rules).

A survivor's lanes in the next rung start from exactly the carry its own training left (its
parameters, optimizer and environment states, keys, buffers) and its metrics so far, so its
training does not depend on which rung batch it lands in, nor on its batch mates: lanes are
independent, and padding lanes repeat the batch's first survivor, as the plan's padding does.
Same plan, same machine: same decisions, same results; resuming at any point (mid-rung, between
rungs) reads back what is on disk and goes on.

Scaling out (``walk_rungs``): every worker walks the rungs in order. Plain execs started
together share a rung's entries through their claims; a shard runs its part of each rung and
waits for the other shards'; a Ray driver submits the rung's entries as tasks, each of which
rebuilds its RungJob (``job.entry_job``). Whoever reaches a decision first publishes it, and the
others read it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Collection, Iterator

from hyperlax.exec import stopping
from hyperlax.exec.executor import ExecReport, finished, run_entries
from hyperlax.exec.halving import decide as H
from hyperlax.exec.halving.job import rung_job
from hyperlax.exec.progress import Progress
from hyperlax.exec.runner import CompiledRunner
from hyperlax.plan.format import Entry, Plan
from hyperlax.storage.atomic import StorageError
from hyperlax.storage.claims import WaitForOthers
from hyperlax.storage.sweepdir import Owner, SweepDir


@dataclass(frozen=True)
class Rung:
    """A rung to run: its entries, those this worker runs (its shard's), the rung before's
    entries (None for rung 0), and which of its entries run again although complete (corrupt,
    with --redo-corrupt)."""

    index: int
    entries: list[Entry]
    mine: list[Entry]
    before: list[Entry] | None
    redo: set[str]
    verified: set[str]      # entries checked against their markers so far (all rungs)
    decision: H.Decision | None = None   # the decision before it (None for rung 0)


def walk_rungs(plan: Plan, sweep: SweepDir, owner: Owner, redo: Collection[str],
               claim_timeout: float, log: Callable[[str], None] | None,
               shard: tuple[int, int] | None = None) -> Iterator[Rung]:
    """The rungs, one after the other, as the decisions tell them. The caller runs the
    entries of the rung it yields that are its (``Rung.mine``: all, or ``shard``'s), here or
    as Ray tasks; on resuming, this waits
    until every entry of the rung is complete (other shards run theirs), reads the rung's
    decision or makes and publishes it, and goes on to the next rung."""
    halving = plan.halving
    assert halving is not None
    survivors = [s.index for s in plan.samples]
    before: list[Entry] | None = None
    decision: H.Decision | None = None
    verified: set[str] = set()
    last = len(halving.rungs) - 1
    for r, rung in enumerate(halving.rungs):
        stopping.check()
        entries = H.rung_entries(plan, r, survivors)
        again = _intact_or_redone(sweep, owner, r, entries, redo, verified)
        mine = H.shard_entries(entries, shard)
        if log:
            stage = "interval" if plan.pbt is not None else "rung"
            log(f"{stage} {r}: {rung.samples} samples to {rung.evaluations} of "
                f"{plan.settings.num_evaluations} evaluations, {len(entries)} entries"
                + (f"; shard {shard[0]}/{shard[1]} runs {len(mine)} of them" if shard else ""))
        yield Rung(r, entries, mine, before, again, verified, decision)
        if r == last:
            return
        wait_for_rung(sweep, owner, r, entries, again, claim_timeout, log)
        decision = rung_decision(plan, sweep, owner, r, entries, log, verified, decision)
        before, survivors = entries, decision.survivors


def _intact_or_redone(sweep: SweepDir, owner: Owner, rung: int, entries: list[Entry],
                      redo: Collection[str], verified: set[str]) -> set[str]:
    """The rung's corrupt complete entries, all of which must be redone (``redo``): the rungs
    after depend on them. Raises StorageError for one that is not. The intact ones join
    ``verified``."""
    corrupt = sweep.corrupt_entries(entries, owner, verified)
    bad = [p for p in corrupt if p not in redo]
    if bad:
        raise StorageError(str(sweep.root), f"rung {rung}: {len(bad)} complete entries have "
                                            "files that changed after completion: "
                                            + ", ".join(bad),
                           "the rungs after it depend on them: look at them (hyperlax "
                           "status --verify), then re-run them with --redo-corrupt")
    return set(corrupt) & set(redo)


def wait_for_rung(sweep: SweepDir, owner: Owner, rung: int, entries: list[Entry],
                  redo: Collection[str], claim_timeout: float,
                  log: Callable[[str], None] | None) -> None:
    """Return once every entry of the rung is complete. A worker that ran all of them (a plain
    exec waits for those others hold) returns at once; a shard waits here for the other
    shards' entries, saying which whenever that changes. Stoppable."""
    wait = WaitForOthers(claim_timeout, log, stopping.sleep)
    while True:
        stopping.check()
        missing = [e.path for e in entries if not finished(sweep, owner, e, e.path in redo)]
        if not missing:
            return
        wait(f"rung {rung}: waiting for {len(missing)} entries of other shards "
             f"({_short(missing, 4)}): the rung is decided once all of it is complete, "
             "so every shard must be running")


def rung_decision(plan: Plan, sweep: SweepDir, owner: Owner, rung: int, entries: list[Entry],
                  log: Callable[[str], None] | None,
                  verified: set[str] | None = None,
                  before: H.Decision | None = None) -> H.Decision:
    """The decision after ``rung`` (complete): read back if written, else made from its
    entries' results and published (the first publisher wins: ``halving.publish_decision``).
    ``before``: the decision before ``rung`` (PBT's explore continues from its values)."""
    halving = plan.halving
    assert halving is not None
    current = H.explored_before(plan, before)
    decision = H.read_decision(sweep.root, plan, owner, rung, entries, current)
    first, end = H.metric_window(plan, rung)
    values: dict[int, float | None] = {}
    for entry in entries:
        values.update(H.entry_values(sweep, owner, entry, end, halving.metric, verified,
                                     first))
    if decision is not None:
        # Read back, it must be the one these results give: a value edited with the checksum
        # recomputed would otherwise choose which samples go on.
        H.check_values(sweep.root / H.decision_path(rung), decision, values)
        return decision
    mine = H.decide(plan, rung, values, current)
    stopping.check()
    with stopping.writing():
        decision = H.publish_decision(sweep.root, plan, owner, mine, entries, current)
    if log and plan.pbt is not None:
        log(f"interval {rung} decided: " + (", ".join(
            f"{i} takes {w}'s weights" for i, w in decision.exploit.items())
            or "no member copies another") + f" (by {halving.metric}; "
            f"{H.decision_path(rung)})")
    elif log:
        log(f"rung {rung} decided: samples {_short(decision.survivors)} go on "
            f"(top {len(decision.survivors)} of {len(values)} by {halving.metric}; "
            f"{H.decision_path(rung)})")
    return decision


def run_rungs(plan: Plan, sweep: SweepDir, owner: Owner, runner: CompiledRunner,
              progress: Progress | None, redo: Collection[str], claim_timeout: float,
              log: Callable[[str], None] | None,
              shard: tuple[int, int] | None = None) -> ExecReport:
    """Run ``plan``'s rungs on ``runner`` (``local_exec.execute`` set up the sweep): each rung's
    entries that are not complete (with ``shard`` (K, N), only shard K's:
    ``halving.shard_entries``), then its decision (read back if it is written already), then
    the next rung. Returns the ExecReport of every rung together."""
    total = ExecReport(total=0, skipped=0, ran=0, compiles=0, compile_seconds=0.0,
                       env_steps=0, seconds=0.0)
    started = time.perf_counter()
    for rung in walk_rungs(plan, sweep, owner, redo, claim_timeout, log, shard):
        if not rung.mine:  # a shard with no entry in this rung
            continue
        job = rung_job(plan, rung.index, rung.before, sweep, owner, runner, rung.verified,
                       rung.decision)
        _add(total, run_entries(plan, sweep, owner, runner, progress, rung.mine, rung.redo,
                                claim_timeout, log, rung=job))
    total.compiles, total.compile_seconds = runner.compiles, runner.compile_seconds
    total.compile_waited = runner.programs.waited_seconds
    total.seconds = time.perf_counter() - started
    return total


def _add(total: ExecReport, report: ExecReport) -> None:
    for name in ("total", "skipped", "ran", "env_steps", "by_others"):
        setattr(total, name, getattr(total, name) + getattr(report, name))
    total.train_seconds += report.train_seconds


def _short(indices: list[int], limit: int = 12) -> str:
    text = ", ".join(map(str, indices[:limit]))
    return text + (f" and {len(indices) - limit} more" if len(indices) > limit else "")
