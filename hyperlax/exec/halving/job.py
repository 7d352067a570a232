"""How the entries of one rung of successive halving run (``RungJob``): to the rung's budget,
each survivor continuing from the carry and metrics its own training left in the rung before.
What ``executor.run_entry`` needs of a rung; the rung loop around it is ``rungs``. Built the
same way by every worker: an exec (plain or a shard, ``rung_job``) and a Ray task, given only an
entry's index (``entry_job``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.exec.checkpoints.snapshots import Snapshot, lanes_from
from hyperlax.exec.halving import decide as H
from hyperlax.exec.runner import CompiledRunner
from hyperlax.exec.schedule import padded_lanes
from hyperlax.plan.format import Entry, Plan, SubBatch
from hyperlax.storage.atomic import StorageError, storage_error
from hyperlax.storage.read import read_bytes, read_npz
from hyperlax.storage.sweepdir import Owner, SweepDir

# A carry holds a sub-batch's whole training state, replay buffers included: far more than a
# record, but a file past this is not one hyperlax wrote (the marker vouches for its checksum).
MAX_CARRY_BYTES = 1 << 40


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
    # PBT: a sample whose carry is another's (exploit: sample -> whose), and every sample's
    # explored values in this interval (None: the plan's)
    carry_from: dict[int, int] = field(default_factory=dict)
    values: dict[int, dict[str, Any]] | None = None
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
        owners = [self.carry_from.get(i, i) for i in sb.samples]
        needed = {(self.previous[i].entry.path, self.previous[i].sub_batch) for i in owners}
        for key in [k for k in self._lanes if k not in needed]:
            del self._lanes[key]  # carries can be large (replay buffers): hold this batch's only
        carry = [np.stack(leaf)
                 for leaf in zip(*(self._lane(i, sb.structure, width) for i in lanes))]
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

    def _lane(self, sample: int, structure: int, width: int) -> list[np.ndarray]:
        """The carry ``sample`` continues from: its own, or (PBT's exploit) another's."""
        sample = self.carry_from.get(sample, sample)
        source = self.previous[sample]
        key = (source.entry.path, source.sub_batch)
        if key not in self._lanes:
            directory = self._source_dir(source)
            sb = source.entry.sub_batches[source.sub_batch]
            name = directory / H.carry_file(source.sub_batch)
            # the program's own carry shapes (lanes_from drops the lane axis): asking for a
            # width of 1 would trace and stack a one-lane input just for its shapes
            like = self.like(structure, width)
            try:
                data = read_bytes(name, "rung carry", MAX_CARRY_BYTES, within=self.sweep.within)
                self._lanes[key] = lanes_from(data, like, sb.samples)
            except OSError as exc:
                raise storage_error(name, exc, "cannot read a rung's carry") from None
            except (HyperlaxError, ValueError, KeyError, TypeError) as exc:
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
            try:
                self._curves[path] = read_npz(directory / "curves.npz", "curves file",
                                              within=self.sweep.within)
            except HyperlaxError as exc:
                raise StorageError(str(directory), f"its curves cannot be read ({exc})",
                                   "re-run it with hyperlax exec ... --redo-corrupt") from None
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
             owner: Owner, runner: CompiledRunner, verified: set[str] | None = None,
             decision: H.Decision | None = None) -> RungJob:
    """How ``rung``'s entries run on ``runner``: ``before`` is the entries of the rung before
    (None for rung 0), whose carries the survivors continue from, as ``decision`` (the one
    before ``rung``) tells with PBT. The one construction of every worker: an exec (plain or
    a shard) and a Ray task."""
    halving = plan.halving
    assert halving is not None
    start, end = H.rung_span(plan, rung)
    return RungJob(start_calls=start // runner.group, end_calls=end // runner.group,
                   share=H.rung_share(plan, rung), keep_carry=rung < len(halving.rungs) - 1,
                   previous=H.sources(before) if before is not None else None,
                   sweep=sweep, owner=owner, like=runner.carry_like,
                   verified=verified if verified is not None else set(),
                   carry_from=decision.exploit if decision is not None else {},
                   values=H.explored_before(plan, decision))


def entry_job(plan: Plan, sweep: SweepDir, owner: Owner, runner: CompiledRunner,
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
    decision = views[rung - 1].decision if rung else None
    return entries[position], rung_job(plan, rung, before, sweep, owner, runner,
                                       decision=decision)
