"""Exec of a successive-halving plan: rung after rung, each rung's entries run like any plan's
(claims, outputs, markers, checkpoints, progress, stops), then the rung's decision, then the
survivors continue from their carries in new full batches (``hyperlax.halving`` has the
layout and the rules).

A survivor's lanes in the next rung start from exactly the carry its own training left (its
parameters, optimizer and environment states, keys, buffers) and its metrics so far, so its
training does not depend on which rung batch it lands in, nor on its batch mates: lanes are
independent, and padding lanes repeat the batch's first survivor, as the plan's padding does.
Same plan, same machine: same decisions, same results; resuming at any point (mid-rung, between
rungs) reads back what is on disk and goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np

from hyperlax import halving as H
from hyperlax import stopping
from hyperlax.planfile import Plan, SubBatch
from hyperlax.runtime.checkpoints import Snapshot, lanes_from
from hyperlax.storage.atomic import StorageError, storage_error
from hyperlax.storage.sweepdir import Owner, SweepDir


@dataclass
class RungJob:
    """How the entries of one rung run: to the rung's budget (``end_calls``), from the
    previous rung's carries (``previous``: where each survivor's are; None for rung 0), keeping
    their carries at the end unless it is the last rung."""

    rung: int
    evaluations: int
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
    _verified: set[str] = field(default_factory=set)

    def start(self, sb: SubBatch, width: int) -> Snapshot | None:
        """The stacked carry and metrics the sub-batch continues from (None for rung 0)."""
        if self.previous is None:
            return None
        lanes = sb.samples + [sb.samples[0]] * (width - len(sb.samples))
        needed = {(self.previous[i].entry.path, self.previous[i].sub_batch) for i in sb.samples}
        for key in [k for k in self._lanes if k not in needed]:
            del self._lanes[key]  # carries can be large (replay buffers): hold this batch's only
        per_lane = [self._lane(i, sb.structure) for i in sb.samples]
        carry = [np.stack([per_lane[sb.samples.index(i)][j] for i in lanes])
                 for j in range(len(per_lane[0]))]
        metrics: dict[str, np.ndarray] = {}
        curves = [self._sample_curves(i) for i in lanes]
        for name in curves[0]:
            metrics[name] = np.stack([c[name] for c in curves])
        return Snapshot(calls=self.start_calls, carry=carry, metrics=metrics)

    def _source_dir(self, source: H.Source) -> Path:
        path = source.entry.path
        directory = self.sweep.entry_dir(path)
        if path not in self._verified:
            try:
                problems = self.sweep.verify(path, self.owner, source.entry.index)
            except OSError as exc:
                raise storage_error(directory, exc, "cannot read a rung entry") from None
            if problems:
                raise StorageError(str(directory), "; ".join(problems), "its survivors continue "
                                   "from it: re-run it with hyperlax exec ... --redo-corrupt")
            self._verified.add(path)
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


def execute_halving(plan: Plan, plan_id: str, plan_bytes: bytes, root: Path, *,
                    progress: Any = None, redo: Collection[str] = (),
                    devices: list[Any] | None = None, claim_timeout: float | None = None,
                    log: Callable[[str], None] | None = None,
                    compile_workers: int = 0) -> Any:
    """Run ``plan``'s rungs into ``root``: each rung's entries that are not complete, then its
    decision (read back if it is written already), then the next rung. Returns the
    ExecReport of every rung together."""
    from hyperlax.runtime.executor import (DEFAULT_CLAIM_TIMEOUT, CompiledRunner, ExecReport,
                                           claim_sweep, run_entries)
    from hyperlax.runtime.outputs import pause_point

    halving = plan.halving
    assert halving is not None
    sweep, owner = SweepDir(root), Owner.of(plan, plan_id)
    claim_sweep(sweep, plan_bytes, owner)
    runner = CompiledRunner(plan, devices=devices, compile_workers=compile_workers,
                            listener=progress)
    total = ExecReport(total=0, skipped=0, ran=0, compiles=0, compile_seconds=0.0,
                       env_steps=0, seconds=0.0)
    started = time.perf_counter()
    try:
        survivors = [s.index for s in plan.samples]
        previous: dict[int, H.Source] | None = None
        last = len(halving.rungs) - 1
        for r, rung in enumerate(halving.rungs):
            stopping.check()
            entries = H.rung_entries(plan, r, survivors)
            before = halving.rungs[r - 1].evaluations if r else 0
            job = RungJob(rung=r, evaluations=rung.evaluations,
                          start_calls=before // runner.group,
                          end_calls=rung.evaluations // runner.group,
                          share=(rung.evaluations - before) / plan.settings.num_evaluations,
                          keep_carry=r < last, previous=previous, sweep=sweep, owner=owner,
                          like=runner.carry_like)
            corrupt = sweep.corrupt_entries(entries, owner)
            bad = [p for p in corrupt if p not in redo]
            if bad:
                raise StorageError(str(root), f"rung {r}: {len(bad)} complete entries have "
                                              f"files that changed after completion: "
                                              + ", ".join(bad),
                                   "the rungs after it depend on them: look at them (hyperlax "
                                   "status --verify), then re-run them with --redo-corrupt")
            if log:
                log(f"rung {r}: {rung.samples} samples to {rung.evaluations} of "
                    f"{plan.settings.num_evaluations} evaluations, {len(entries)} entries")
            report = run_entries(plan, sweep, owner, runner, progress, entries,
                                 set(corrupt) & set(redo), claim_timeout or
                                 DEFAULT_CLAIM_TIMEOUT, log, rung=job)
            _add(total, report)
            if r == last:
                break
            decision = H.read_decision(root, plan, owner, r, entries)
            if decision is None:
                values: dict[int, float | None] = {}
                for entry in entries:
                    values.update(H.entry_values(sweep, owner, entry, rung.evaluations,
                                                 halving.metric))
                decision = H.decide(plan, r, values)
                stopping.check()
                with stopping.writing():
                    H.write_decision(root, decision, owner)
                if log:
                    log(f"rung {r} decided: samples {_short(decision.survivors)} go on "
                        f"(top {len(decision.survivors)} of {len(values)} by "
                        f"{halving.metric}; {H.decision_path(r)})")
            pause_point(f"rung-decided:{r}", r * H.RUNG_STRIDE)
            previous = H.sources(entries)
            survivors = decision.survivors
    finally:
        runner.close()
    total.compiles, total.compile_seconds = runner.compiles, runner.compile_seconds
    total.compile_waited = runner.programs.waited_seconds
    total.seconds = time.perf_counter() - started
    if progress:
        progress.finish()
    return total


def _add(total: Any, report: Any) -> None:
    for name in ("total", "skipped", "ran", "env_steps", "by_others"):
        setattr(total, name, getattr(total, name) + getattr(report, name))
    total.train_seconds += report.train_seconds


def _short(indices: list[int], limit: int = 12) -> str:
    text = ", ".join(map(str, indices[:limit]))
    return text + (f" and {len(indices) - limit} more" if len(indices) > limit else "")
