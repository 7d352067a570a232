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
rebuilds its RungJob (``entry_job``). Whoever reaches a decision first publishes it, and the
others read it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

import numpy as np

from hyperlax.exec.halving import decide as H
from hyperlax.exec import stopping
from hyperlax.plan.format import Entry, Plan, SubBatch
from hyperlax.exec.checkpoints.snapshots import Snapshot, lanes_from
from hyperlax.exec.schedule import padded_lanes
from hyperlax.storage.atomic import StorageError, storage_error
from hyperlax.storage.sweepdir import Owner, SweepDir


@dataclass
class RungJob:
    """How the entries of one rung run: to the rung's budget (``end_calls``), from the
    previous rung's carries (``previous``: where each survivor's are; None for rung 0), keeping
    their carries at the end unless it is the last rung."""

    start_calls: int                          # the calls of the rung before (0 for rung 0)
    end_calls: int
    share: float                              # of the budget, the part this rung trains
    keep_carry: bool
    previous: dict[int, H.Source] | None
    sweep: SweepDir
    owner: Owner
    like: Callable[[int, int], list[Any]]     # (structure, width) -> the carry's leaf structs
    _lanes: dict[tuple[str, int], dict[int, list[np.ndarray]]] = field(default_factory=dict)
    _curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # entries whose files this worker checked against their markers already (shared by the
    # rungs of one exec: each rung entry's checksums are computed once)
    verified: set[str] = field(default_factory=set)

    def start(self, sb: SubBatch, width: int) -> Snapshot | None:
        """The stacked carry and metrics the sub-batch continues from (None for rung 0)."""
        if self.previous is None:
            return None
        lanes = padded_lanes(sb.samples, width)
        needed = {(self.previous[i].entry.path, self.previous[i].sub_batch) for i in sb.samples}
        for key in [k for k in self._lanes if k not in needed]:
            del self._lanes[key]  # carries can be large (replay buffers): hold this batch's only
        carry = [np.stack(leaf) for leaf in zip(*(self._lane(i, sb.structure) for i in lanes))]
        metrics: dict[str, np.ndarray] = {}
        curves = [self._sample_curves(i) for i in lanes]
        for name in curves[0]:
            metrics[name] = np.stack([c[name] for c in curves])
        return Snapshot(calls=self.start_calls, carry=carry, metrics=metrics)

    def _source_dir(self, source: H.Source) -> Path:
        path = source.entry.path
        directory = self.sweep.entry_dir(path)
        if path not in self.verified:
            try:
                problems = self.sweep.verify(path, self.owner, source.entry.index)
            except OSError as exc:
                raise storage_error(directory, exc, "cannot read a rung entry") from None
            if problems:
                raise StorageError(str(directory), "; ".join(problems), "its survivors continue "
                                   "from it: re-run it with hyperlax exec ... --redo-corrupt")
            self.verified.add(path)
        return directory

    def _lane(self, sample: int, structure: int) -> list[np.ndarray]:
        source = self.previous[sample]
        key = (source.entry.path, source.sub_batch)
        if key not in self._lanes:
            directory = self._source_dir(source)
            sb = source.entry.sub_batches[source.sub_batch]
            name = directory / H.carry_file(source.sub_batch)
            like = self.like(structure, 1)
            try:
                self._lanes[key] = lanes_from(name.read_bytes(), like, sb.samples)
            except OSError as exc:
                raise storage_error(name, exc, "cannot read a rung's carry") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise StorageError(str(name), f"unusable carry ({exc})",
                                   "re-run its entry with hyperlax exec ... --redo-corrupt"
                                   ) from None
        return self._lanes[key][sample]

    def _sample_curves(self, sample: int) -> dict[str, np.ndarray]:
        """A sample's metrics so far, [replicates, evaluations], from its last rung entry."""
        source = self.previous[sample]
        path = source.entry.path
        if path not in self._curves:
            directory = self._source_dir(source)
            with np.load(directory / "curves.npz") as npz:
                self._curves[path] = {k: np.asarray(npz[k]) for k in npz.files}
        npz = self._curves[path]
        pos = [int(i) for i in npz["sample"]].index(sample)
        returns = npz["returns"][pos]
        steps = npz["eval_steps"] if npz["eval_steps"].ndim == 1 else npz["eval_steps"][pos]
        out = {"eval_steps": np.broadcast_to(steps, returns.shape).copy(),
               "eval_returns": returns, "finite": npz["finite"][pos]}
        for name in npz:
            if name.startswith("loss_"):
                out[f"loss/{name[len('loss_'):]}"] = npz[name][pos]
        return out


def rung_job(plan: Plan, rung: int, before: list[Entry] | None, sweep: SweepDir,
             owner: Owner, runner: Any, verified: set[str] | None = None) -> RungJob:
    """How ``rung``'s entries run on ``runner``: ``before`` is the entries of the rung before
    (None for rung 0), whose carries the survivors continue from. The one construction of
    every worker: an exec (plain or a shard) and a Ray task."""
    halving = plan.halving
    assert halving is not None
    start, end = H.rung_span(plan, rung)
    return RungJob(start_calls=start // runner.group, end_calls=end // runner.group,
                   share=H.rung_share(plan, rung), keep_carry=rung < len(halving.rungs) - 1,
                   previous=H.sources(before) if before is not None else None,
                   sweep=sweep, owner=owner, like=runner.carry_like,
                   verified=verified if verified is not None else set())


def entry_job(plan: Plan, sweep: SweepDir, owner: Owner, runner: Any,
              index: int) -> tuple[Entry, RungJob]:
    """The rung entry of index ``index`` and its RungJob, rebuilt from the plan and the
    decisions on disk: what a Ray task, given only the index, runs."""
    rung = index // H.RUNG_STRIDE
    views = H.rung_views(plan, sweep.root, owner)
    if not 0 <= rung < len(views) or views[rung].entries is None:
        raise StorageError(str(sweep.root / H.decision_path(rung - 1)),
                           f"entry {index} is in rung {rung}, whose decision before it is "
                           "not written", "run the same command again")
    entries = views[rung].entries
    position = index % H.RUNG_STRIDE
    if position >= len(entries) or entries[position].index != index:
        raise StorageError(str(sweep.root), f"rung {rung} has no entry {index}",
                           "run the same command again")
    before = views[rung - 1].entries if rung else None
    return entries[position], rung_job(plan, rung, before, sweep, owner, runner)


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
    verified: set[str] = set()
    last = len(halving.rungs) - 1
    for r, rung in enumerate(halving.rungs):
        stopping.check()
        entries = H.rung_entries(plan, r, survivors)
        again = _intact_or_redone(sweep, owner, r, entries, redo, verified)
        mine = H.shard_entries(entries, shard)
        if log:
            log(f"rung {r}: {rung.samples} samples to {rung.evaluations} of "
                f"{plan.settings.num_evaluations} evaluations, {len(entries)} entries"
                + (f"; shard {shard[0]}/{shard[1]} runs {len(mine)} of them" if shard else ""))
        yield Rung(r, entries, mine, before, again, verified)
        if r == last:
            return
        wait_for_rung(sweep, owner, r, entries, again, claim_timeout, log)
        decision = rung_decision(plan, sweep, owner, r, entries, log, verified)
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
    from hyperlax.exec.executor import finished

    told = ""
    while True:
        stopping.check()
        missing = [e.path for e in entries if not finished(sweep, owner, e, e.path in redo)]
        if not missing:
            return
        message = (f"rung {rung}: waiting for {len(missing)} entries of other shards "
                   f"({_short(missing, 4)}): the rung is decided once all of it is complete, "
                   "so every shard must be running")
        if log and message != told:
            log(message)
            told = message
        stopping.sleep(min(2.0, claim_timeout / 4))


def rung_decision(plan: Plan, sweep: SweepDir, owner: Owner, rung: int, entries: list[Entry],
                  log: Callable[[str], None] | None,
                  verified: set[str] | None = None) -> H.Decision:
    """The decision after ``rung`` (complete): read back if written, else made from its
    entries' results and published (the first publisher wins: ``halving.publish_decision``)."""
    halving = plan.halving
    assert halving is not None
    decision = H.read_decision(sweep.root, plan, owner, rung, entries)
    if decision is not None:
        return decision
    values: dict[int, float | None] = {}
    for entry in entries:
        values.update(H.entry_values(sweep, owner, entry, halving.rungs[rung].evaluations,
                                     halving.metric, verified))
    mine = H.decide(plan, rung, values)
    stopping.check()
    with stopping.writing():
        decision = H.publish_decision(sweep.root, plan, owner, mine, entries)
    if log:
        log(f"rung {rung} decided: samples {_short(decision.survivors)} go on "
            f"(top {len(decision.survivors)} of {len(values)} by {halving.metric}; "
            f"{H.decision_path(rung)})")
    return decision


def run_rungs(plan: Plan, sweep: SweepDir, owner: Owner, runner: Any, progress: Any,
              redo: Collection[str], claim_timeout: float, log: Callable[[str], None] | None,
              shard: tuple[int, int] | None = None) -> Any:
    """Run ``plan``'s rungs on ``runner`` (``executor.execute`` set up the sweep): each rung's
    entries that are not complete (with ``shard`` (K, N), only shard K's:
    ``halving.shard_entries``), then its decision (read back if it is written already), then
    the next rung. Returns the ExecReport of every rung together."""
    from hyperlax.exec.executor import ExecReport, run_entries

    total = ExecReport(total=0, skipped=0, ran=0, compiles=0, compile_seconds=0.0,
                       env_steps=0, seconds=0.0)
    started = time.perf_counter()
    for rung in walk_rungs(plan, sweep, owner, redo, claim_timeout, log, shard):
        if not rung.mine:  # a shard with no entry in this rung
            continue
        job = rung_job(plan, rung.index, rung.before, sweep, owner, runner, rung.verified)
        _add(total, run_entries(plan, sweep, owner, runner, progress, rung.mine, rung.redo,
                                claim_timeout, log, rung=job))
    total.compiles, total.compile_seconds = runner.compiles, runner.compile_seconds
    total.compile_waited = runner.programs.waited_seconds
    total.seconds = time.perf_counter() - started
    return total


def _add(total: Any, report: Any) -> None:
    for name in ("total", "skipped", "ran", "env_steps", "by_others"):
        setattr(total, name, getattr(total, name) + getattr(report, name))
    total.train_seconds += report.train_seconds


def _short(indices: list[int], limit: int = 12) -> str:
    text = ", ".join(map(str, indices[:limit]))
    return text + (f" and {len(indices) - limit} more" if len(indices) > limit else "")
