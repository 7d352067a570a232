"""Successive halving in the sweep directory: each rung's entries, the rung decisions, and
where every sample stands. JAX-free: exec, status and report share it.

    <output root>/
      <the plan's entries>            rung 0: every sample, trained to the first rung's budget
      rungs/rung_0.json               the decision after rung 0: ranking and survivors
      rungs/rung_1/batch_00000/       rung 1: the survivors, re-batched, continued from their
                                      rung-0 carries to the second rung's budget
      rungs/rung_1.json               ...

Rung 0 runs the plan's own entries. A later rung's entries are derived from the decision
before it, deterministically: the survivors grouped by structure (structure order), each
group in sample order, sliced into batches of ``batch_size`` (one sample each in sequential
mode), each one vmapped call whose width is the batch rounded up to a power of two (capped at
``batch_size``), as batched mode pads. A rung entry is an ordinary entry (claims, outputs,
marker, checksums); its curves hold the whole training so far, from the first evaluation.
Every rung but the last also saves each sample's training carry at its end (``carry_<k>
.msgpack``, one per sub-batch, vouched for by the marker), which the next rung continues from.

A decision ranks the rung's samples by the plan's metric over the evaluations so far (means
over replicates): samples with a non-finite value (diverged) last, ties by sample index; the
top ``rungs[r + 1].samples`` survive. It is published once, with a checksum, and read back
ever after: a resumed exec never decides again, and of concurrent deciders (plain execs,
shards, a Ray driver) the first to publish wins; the others check that theirs is the same.

Shard K of N (``--shard K/N``) runs, in every rung, the entries whose position k in the rung
(``entry.index % RUNG_STRIDE``) has k mod N = K, as the plan's own entries are dealt out.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.exec.halving import pbt as P
from hyperlax.plan.format import Entry, Plan, SubBatch, pow2_width
from hyperlax.plan.check import RUNGS_DIR
from hyperlax.plan.metrics import sample_metric
from hyperlax.storage import atomic
from hyperlax.storage.atomic import StorageError, json_bytes, publish_new, storage_error
from hyperlax.storage.read import MAX_RECORD_BYTES, decode_json, read_bytes, read_npz
from hyperlax.storage.sweepdir import Owner, SweepDir

DECISION_FORMAT = "hyperlax-rung-decision-1"
PBT_DECISION_FORMAT = "hyperlax-pbt-decision-1"   # a PBT interval's: also exploit and explore
RUNG_STRIDE = 1_000_000   # rung r's entry k has index r * RUNG_STRIDE + k (plans: < 1e6 samples)


def carry_file(sub_batch: int) -> str:
    """The file of a rung entry's sub-batch's carry at the rung's end."""
    return f"carry_{sub_batch}.msgpack"


def decision_path(rung: int) -> str:
    return f"{RUNGS_DIR}/rung_{rung}.json"


def rung_entries(plan: Plan, rung: int, survivors: list[int] | None = None) -> list[Entry]:
    """The entries of ``rung``: the plan's own for rung 0, else the survivors of the rung
    before, re-batched (see the module docstring)."""
    if rung == 0:
        return list(plan.entries)
    assert survivors is not None
    size = 1 if plan.settings.mode == "sequential" else plan.settings.batch_size
    by_structure: dict[int, list[int]] = {}
    for i in sorted(survivors):
        by_structure.setdefault(plan.samples[i].structure, []).append(i)
    entries = []
    for structure in sorted(by_structure):
        members = by_structure[structure]
        for start in range(0, len(members), size):
            batch = members[start:start + size]
            k = len(entries)
            entries.append(Entry(index=rung * RUNG_STRIDE + k,
                                 path=f"{RUNGS_DIR}/rung_{rung}/batch_{k:05d}", group=None,
                                 samples=batch,
                                 sub_batches=[SubBatch(structure=structure, samples=batch,
                                                       width=pow2_width(len(batch), size))]))
    return entries


def rung_span(plan: Plan, rung: int) -> tuple[int, int]:
    """The evaluations ``rung`` trains from (the rung before's end; 0 for rung 0) and to."""
    halving = plan.halving
    assert halving is not None
    return (halving.rungs[rung - 1].evaluations if rung else 0,
            halving.rungs[rung].evaluations)


def metric_window(plan: Plan, rung: int) -> tuple[int, int]:
    """The evaluations a decision after ``rung`` ranks by: all so far for successive halving
    (a sample's whole training), the interval's own for PBT (what its current weights and
    values did, not what an ancestor did before a copy)."""
    start, end = rung_span(plan, rung)
    return (start if plan.pbt is not None else 0), end


def rung_share(plan: Plan, rung: int) -> float:
    """Of the plan's training budget, the part ``rung`` trains (from the rung before's end)."""
    start, end = rung_span(plan, rung)
    return (end - start) / plan.settings.num_evaluations


def shard_entries(entries: list[Entry], shard: tuple[int, int] | None) -> list[Entry]:
    """Shard K of N's part of a rung's entries: position k in the rung with k mod N = K
    (for rung 0, the plan's own rule, entry index mod N)."""
    if shard is None:
        return entries
    k, n = shard
    return [e for e in entries if (e.index % RUNG_STRIDE) % n == k]


@dataclass(frozen=True)
class Source:
    """Where a sample's carry and curves are at the end of a rung."""

    entry: Entry
    sub_batch: int
    lane: int          # its position in the sub-batch


def sources(entries: list[Entry]) -> dict[int, Source]:
    return {i: Source(entry, k, lane) for entry in entries
            for k, sb in enumerate(entry.sub_batches) for lane, i in enumerate(sb.samples)}


# --- ranking ---------------------------------------------------------------------------------

def metric_value(returns: np.ndarray, finite: np.ndarray, metric: str) -> float | None:
    """A sample's metric from its curves so far ([replicates, evaluations]), the mean over
    replicates (``plan.metrics``); None when any point is not finite (it diverged)."""
    return sample_metric(returns, metric) if bool(np.all(finite)) else None


def ranking(values: dict[int, float | None]) -> list[int]:
    """Samples best first: finite values by value, then the non-finite; ties by index."""
    return sorted(values, key=lambda i: (values[i] is None,
                                         -values[i] if values[i] is not None else 0.0, i))


@dataclass(frozen=True)
class Decision:
    rung: int
    evaluations: int
    metric: str
    ranking: list[tuple[int, float | None]]   # (sample, value), best first
    survivors: list[int]                      # sorted
    # PBT: loser -> the member whose carry it takes; every member's explored values for the
    # next interval (both empty for successive halving)
    exploit: dict[int, int] = field(default_factory=dict)
    values: dict[int, dict[str, Any]] = field(default_factory=dict)

    def document(self, owner: Owner) -> dict[str, Any]:
        pbt = bool(self.values)
        body = {"format": PBT_DECISION_FORMAT if pbt else DECISION_FORMAT, **owner.record(),
                "rung": self.rung, "evaluations": self.evaluations, "metric": self.metric,
                "ranking": [{"rank": k + 1, "sample": i, "value": v}
                            for k, (i, v) in enumerate(self.ranking)],
                "survivors": self.survivors}
        if pbt:
            body["exploit"] = [{"sample": i, "copies": w} for i, w in self.exploit.items()]
            body["values"] = [{"sample": i, "values": v} for i, v in self.values.items()]
        return {**body, "checksum": _checksum(body)}


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False)
                          .encode("utf-8")).hexdigest()


def decide(plan: Plan, rung: int, values: dict[int, float | None],
           current: dict[int, dict[str, Any]] | None = None) -> Decision:
    """The decision after ``rung`` from its samples' metric ``values``; with PBT, ``current``
    is each sample's explored values during the interval (``explored_before``)."""
    halving = plan.halving
    assert halving is not None
    order = ranking(values)
    keep = halving.rungs[rung + 1].samples
    exploit, following = {}, {}
    if plan.pbt is not None:
        assert current is not None
        exploit, following = P.step(plan, rung, order, current)
    return Decision(rung=rung, evaluations=halving.rungs[rung].evaluations,
                    metric=halving.metric, ranking=[(i, values[i]) for i in order],
                    survivors=sorted(order[:keep]), exploit=exploit, values=following)


def explored_before(plan: Plan, before: Decision | None) -> dict[int, dict[str, Any]] | None:
    """With PBT, each sample's explored values in the stage after decision ``before`` (the
    plan's in the first); None without PBT."""
    if plan.pbt is None:
        return None
    return P.initial_values(plan) if before is None else before.values


def entry_values(sweep: SweepDir, owner: Owner, entry: Entry, evaluations: int,
                 metric: str, verified: set[str] | None = None,
                 first: int = 0) -> dict[int, float | None]:
    """The metric of each sample of a complete entry, from its curves (checked against its
    marker first, unless its path is in ``verified``, the entries this exec checked already;
    it is added there). Raises StorageError when the entry is damaged."""
    directory = sweep.entry_dir(entry.path)
    try:
        if verified is None or entry.path not in verified:
            problems = sweep.verify(entry.path, owner, entry.index)
            if problems:
                raise StorageError(str(directory), "; ".join(problems),
                                   "its results decide which samples continue: re-run it "
                                   "with hyperlax exec ... --redo-corrupt")
            if verified is not None:
                verified.add(entry.path)
        npz = read_npz(directory / "curves.npz", "curves file", within=sweep.within)
        order = [int(i) for i in npz["sample"]]
        returns, finite = np.asarray(npz["returns"]), np.asarray(npz["finite"])
    except OSError as exc:
        raise storage_error(directory, exc, "cannot read this entry's results") from None
    except (HyperlaxError, KeyError) as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(str(directory), f"its curves cannot be read ({exc})",
                           "re-run it with hyperlax exec ... --redo-corrupt") from None
    if sorted(order) != sorted(entry.samples) or returns.shape[-1] < evaluations:
        raise StorageError(str(directory), "its curves are not this rung's",
                           "re-run it with hyperlax exec ... --redo-corrupt")
    return {i: metric_value(returns[k][:, first:evaluations], finite[k][:, first:evaluations],
                            metric)
            for k, i in enumerate(order)}


def publish_decision(root: Path, plan: Plan, owner: Owner, decision: Decision,
                     entries: list[Entry],
                     current: dict[int, dict[str, Any]] | None = None) -> Decision:
    """Publish ``decision`` unless a decision of its rung is there already, and return the one
    on disk. Several deciders (plain execs, shards) may get here at once: the file is written
    whole under a private name, then hard-linked into place, which exactly one of them wins,
    so a decision someone may have acted on is never replaced and never read half written.
    The losers check that the winner's ranking and survivors are theirs: deciding is
    deterministic from the same results, so a difference means those results changed."""
    path = root / decision_path(decision.rung)
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.staged")
    try:
        atomic.atomic_write(staged, json_bytes(decision.document(owner)), within=root)
        try:
            publish_new(staged, path, within=root)
        finally:
            atomic.remove_file(staged, within=root)
    except OSError as exc:
        raise storage_error(path, exc, "cannot write the rung decision",
                            "run the same command again") from None
    written = read_decision(root, plan, owner, decision.rung, entries, current)
    if written is None or not same_decision(written, decision):
        raise StorageError(str(path), "another worker published a different decision for "
                                      f"rung {decision.rung} from the same entries",
                           f"the rung's results changed while it was decided: check them "
                           f"(hyperlax status --verify); if they are sound, delete {path} "
                           f"(and what came after it) and run the same command again")
    return written


def check_values(path: Path, decision: Decision, values: dict[int, float | None]) -> None:
    """A StorageError unless every value in ``decision`` is the one its sample's curves give
    (``values``, from ``entry_values``): an edit of a value, made with the checksum
    recomputed and the ranking reordered to match, is caught before anyone acts on it."""
    wrong = [i for i, v in decision.ranking if values.get(i, v) != v]
    if wrong:
        raise StorageError(str(path), f"damaged rung decision: the values of samples "
                                      f"{wrong[:8]} are not what their curves give",
                           f"restore it; or delete it (and rungs/rung_{decision.rung + 1}/ and "
                           f"the decisions after it) to decide again from rung "
                           f"{decision.rung}'s results")


def same_decision(a: Decision, b: Decision) -> bool:
    return (a.rung, a.ranking, a.survivors, a.exploit, a.values) == \
        (b.rung, b.ranking, b.survivors, b.exploit, b.values)


def read_decision(root: Path, plan: Plan, owner: Owner, rung: int,
                  entries: list[Entry],
                  current: dict[int, dict[str, Any]] | None = None) -> Decision | None:
    """The decision after ``rung`` (whose entries are ``entries``), or None when it is not
    written yet. A decision that is damaged, another plan's, or does not fit the plan is a
    StorageError: it may have been acted on, so it is never silently replaced. With PBT,
    ``current`` is the explored values during the interval (``explored_before``): its exploit
    and explore must be the ones its ranking gives."""
    path = root / decision_path(rung)
    halving = plan.halving
    assert halving is not None
    fix = (f"restore it; or delete it (and rungs/rung_{rung + 1}/ and the decisions after it) "
           f"to decide again from rung {rung}'s results")
    # lexists, not exists: a dangling link is not "no decision yet" but a damaged one.
    if not os.path.lexists(path):
        return None
    # A link leading out of the sweep is hostile (exit 2); anything else the reader refuses
    # (a FIFO, a device, a directory, an oversized or deeply nested file) is a damaged decision,
    # like one whose checksum fails: it may have been acted on, so it is never replaced.
    try:
        atomic.inside_root(path, root, "read the rung decision")
    except atomic.OutsideRootError as exc:
        raise atomic.OutsideRootError(exc.source, exc.problems, "remove the symbolic link: "
                                      "hyperlax never reads its own records through one that "
                                      "leaves the output root") from None
    try:
        doc = decode_json(read_bytes(path, "rung decision", MAX_RECORD_BYTES), path,
                          "rung decision")
        if not isinstance(doc, dict):
            raise ValueError("it is not a JSON object")
        body = {k: v for k, v in doc.items() if k != "checksum"}
        if doc.get("checksum") != _checksum(body):
            raise ValueError("its checksum does not match its content")
        if doc.get("format") != (PBT_DECISION_FORMAT if plan.pbt else DECISION_FORMAT):
            raise ValueError(f"unknown format {doc.get('format')!r}")
        if not owner.owns(doc):
            raise ValueError("it is another plan's")
        if (doc["rung"], doc["evaluations"], doc["metric"]) != (
                rung, halving.rungs[rung].evaluations, halving.metric):
            raise ValueError("it is not this plan's rung")
        decision = Decision(rung=rung, evaluations=doc["evaluations"], metric=doc["metric"],
                            ranking=[(int(r["sample"]), r["value"]) for r in doc["ranking"]],
                            survivors=[int(i) for i in doc["survivors"]])
        if any(v is not None and not isinstance(v, float) for _, v in decision.ranking):
            raise ValueError("a value in its ranking is not a number")
        if [int(r["rank"]) for r in doc["ranking"]] != list(range(1, len(doc["ranking"]) + 1)) \
                or ranking(dict(decision.ranking)) != [i for i, _ in decision.ranking]:
            raise ValueError("its ranking is not in the order of its values")
        ranked = [i for i, _ in decision.ranking]
        keep = halving.rungs[rung + 1].samples
        if sorted(ranked) != sorted(i for e in entries for i in e.samples) or \
                decision.survivors != sorted(ranked[:keep]):
            raise ValueError("its samples do not fit the plan's rungs")
        if plan.pbt is not None:
            assert current is not None
            exploit = {int(r["sample"]): int(r["copies"]) for r in doc["exploit"]}
            following = {int(r["sample"]): dict(r["values"]) for r in doc["values"]}
            decision = replace(decision, exploit=exploit, values=following)
            # deciding is a pure function of the ranking: an edited copy or value is caught
            if not same_decision(decision, decide(plan, rung, dict(decision.ranking),
                                                  current)):
                raise ValueError("its exploit and explore are not what its ranking gives")
    except HyperlaxError as exc:
        message = exc.problems[0][1] if exc.problems else str(exc)
        if not message.startswith("damaged"):
            message = f"damaged rung decision: {message}"
        raise StorageError(str(path), message, fix) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(str(path), f"damaged rung decision: {exc}", fix) from None
    return decision


# --- where a halving sweep stands ------------------------------------------------------------

@dataclass
class RungView:
    rung: int
    evaluations: int
    samples: int                       # how many samples the plan sends to this rung
    entries: list[Entry] | None        # None: the decision before it is not made yet
    decision: Decision | None          # the decision after it (None: not yet, or the last)


def rung_views(plan: Plan, root: Path, owner: Owner) -> list[RungView]:
    """Every rung, with its entries as far as the decisions made so far tell them."""
    halving = plan.halving
    assert halving is not None
    views: list[RungView] = []
    survivors: list[int] | None = [s.index for s in plan.samples]
    for r, rung in enumerate(halving.rungs):
        entries = rung_entries(plan, r, survivors) if survivors is not None else None
        last = r == len(halving.rungs) - 1
        before = views[-1].decision if views else None
        decision = None if last or entries is None else \
            read_decision(root, plan, owner, r, entries, explored_before(plan, before))
        views.append(RungView(r, rung.evaluations, rung.samples, entries, decision))
        survivors = decision.survivors if decision is not None else None
    return views
