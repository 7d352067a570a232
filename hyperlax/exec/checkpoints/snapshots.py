"""A sub-batch's training carry on disk: saved at evaluation boundaries, restored to continue
exactly where it stopped (``checkpoint_files`` has the layout and the records).

The carry is the whole state a training continues from: parameters, optimizer states,
environment states, keys, normalization statistics and replay buffers, every leaf with leading
[width, replicates] axes. It is saved as its list of leaves (``jax.tree.leaves``, a fixed order
for a fixed program) with flax.serialization's msgpack, which stores each numpy array's dtype,
shape and bytes exactly; restoring checks every leaf's shape and dtype against the carry the
compiled program takes (``jax.eval_shape`` of ``init``) and rebuilds the tree with its
structure. The same program continuing from the same bytes gives the same results, bit for bit.

Two uses: periodic checkpoints of a running entry (``EntryCheckpoints``, every
``checkpoint_every`` evaluations, so a killed exec resumes mid-entry), and the carry at the end
of a successive-halving rung, kept in the entry's directory for the next rung
(``carry_bytes`` / ``lanes_from``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import serialization

from hyperlax.exec.checkpoints import files
from hyperlax.exec import stopping
from hyperlax.storage.paths import writable_inside
from hyperlax.storage.atomic import storage_error

CARRY_FORMAT = "hyperlax-carry-1"


@dataclass
class Snapshot:
    """Where a sub-batch's training stands, on the host: after ``calls`` calls, its carry
    (numpy leaves, every lane) and its metrics so far, each [width, replicates, evaluations]
    (``eval_steps``, ``eval_returns``, ``finite`` and ``loss/<name>``)."""

    calls: int
    carry: list[np.ndarray]
    metrics: dict[str, np.ndarray]
    train_seconds: float = 0.0


def metrics_arrays(host: list[Any]) -> dict[str, np.ndarray]:
    """Host ``TrainMetrics`` of successive calls as one dict of arrays joined along the
    evaluation axis (the last): the form a Snapshot keeps."""
    def joined(leaves: list[Any]) -> np.ndarray:
        return np.concatenate([np.asarray(x) for x in leaves], axis=-1)

    out = {"eval_steps": joined([m.eval_steps for m in host]),
           "eval_returns": joined([m.eval_returns for m in host]),
           "finite": joined([m.finite for m in host])}
    for name in host[0].losses:
        out[f"loss/{name}"] = joined([m.losses[name] for m in host])
    return out


def join_metrics(before: dict[str, np.ndarray] | None,
                 after: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The metrics of a snapshot followed by those of the calls after it."""
    if before is None or after is None:
        out = before if after is None else after
        assert out is not None
        return out
    if set(before) != set(after):
        raise ValueError(f"metrics {sorted(before)} and {sorted(after)} differ")
    return {k: np.concatenate([before[k], after[k]], axis=-1) for k in before}


def host_leaves(carry: Any) -> list[np.ndarray]:
    """The carry's leaves as numpy copies: the device buffers are donated to the next call,
    and a view of a donated buffer must not outlive it."""
    return [np.array(x, copy=True) for x in jax.device_get(jax.tree.leaves(carry))]


def _encode(leaves: list[np.ndarray], **extra: Any) -> bytes:
    return serialization.msgpack_serialize(
        {"format": CARRY_FORMAT, **extra, "leaves": {str(i): x for i, x in enumerate(leaves)}})


def _decode(data: bytes) -> dict[str, Any]:
    doc = serialization.msgpack_restore(data)
    if not isinstance(doc, dict) or doc.get("format") != CARRY_FORMAT:
        raise ValueError("not a hyperlax carry")
    return doc


def _leaves(doc: dict[str, Any], like: list[Any], lane_axis: bool) -> list[np.ndarray]:
    """The stored leaves, checked against ``like`` (shape-dtype structs of the carry, with
    their [width, ...] axis dropped when ``lane_axis`` is False: one lane's leaves)."""
    stored = doc.get("leaves")
    if not isinstance(stored, dict) or len(stored) != len(like):
        raise ValueError(f"{len(stored) if isinstance(stored, dict) else 'no'} leaves, the "
                         f"program's carry has {len(like)}")
    out = []
    for i, want in enumerate(like):
        x = stored.get(str(i))
        if isinstance(x, np.generic):  # msgpack gives 0-d arrays back as numpy scalars
            x = np.asarray(x)
        shape = tuple(want.shape) if lane_axis else tuple(want.shape[1:])
        if not isinstance(x, np.ndarray) or x.dtype != want.dtype or (
                lane_axis and x.shape != shape) or (not lane_axis and x.shape[1:] != shape):
            got = f"{x.dtype}{list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"leaf {i} is {got}, the program's is {want.dtype}{list(shape)}")
        out.append(x)
    return out


def snapshot_bytes(snapshot: Snapshot) -> bytes:
    return _encode(snapshot.carry, calls=snapshot.calls, train_seconds=snapshot.train_seconds,
                   metrics=snapshot.metrics)


def snapshot_from(data: bytes, like: list[Any]) -> Snapshot:
    doc = _decode(data)
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(v, np.ndarray)
                                                for v in metrics.values()):
        raise ValueError("no metrics")
    return Snapshot(calls=int(doc["calls"]), carry=_leaves(doc, like, lane_axis=True),
                    metrics=dict(metrics), train_seconds=float(doc.get("train_seconds", 0.0)))


def carry_bytes(leaves: list[np.ndarray], samples: list[int], evaluations: int) -> bytes:
    """A rung's end carry of a sub-batch: the real lanes only (padding is dropped)."""
    keep = len(samples)
    return _encode([x[:keep] for x in leaves], samples=list(samples), evaluations=evaluations)


def lanes_from(data: bytes, like: list[Any], samples: list[int]) -> dict[int, list[np.ndarray]]:
    """Each sample's own leaves ([replicates, ...]) from a rung's end carry."""
    doc = _decode(data)
    stored = [int(i) for i in doc.get("samples", [])]
    if stored != list(samples):
        raise ValueError(f"holds samples {stored}, not {list(samples)}")
    leaves = _leaves(doc, like, lane_axis=False)
    if any(x.shape[0] != len(samples) for x in leaves):
        raise ValueError("a leaf has the wrong number of lanes")
    return {i: [x[lane] for x in leaves] for lane, i in enumerate(samples)}


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass
class EntryCheckpoints:
    """The periodic checkpoints of one entry while this worker runs it (holding its claim:
    ``guard`` raises ClaimLost once another worker took it over, before anything is
    written)."""

    root: Path
    owner: Any
    entry: Any
    every: int                          # evaluations between checkpoints
    group: int                          # evaluations per call (``planfile.chunk_group``)
    guard: Callable[[], None] = lambda: None
    report: Callable[[str], None] = warn
    saved: list[tuple[int, float]] = field(default_factory=list)  # (bytes, seconds) per save

    def __post_init__(self) -> None:
        self.directory = writable_inside(self.root, files.checkpoint_path(self.entry.path),
                                         "write checkpoints")

    def due(self, calls: int, end: int, last_sub_batch: bool) -> bool:
        """Save after ``calls`` calls? Each time the evaluations done pass a multiple of
        ``every``, and at the end of a sub-batch that others follow in the entry (so a kill
        in a later one does not redo it)."""
        if calls == end:
            return not last_sub_batch
        return calls * self.group // self.every > (calls - 1) * self.group // self.every

    def load(self, sub_batch: int, width: int, like: list[Any], end: int) -> Snapshot | None:
        """The sub-batch's checkpoint (at most ``end`` calls in), or None (none, or unusable:
        the warning says why)."""
        want = files.expected(self.owner, self.entry, sub_batch, width)
        record, problem = files.read_record(self.directory, sub_batch, root=self.root)
        if record is not None:
            problem = files.record_problem(record, want, self.directory)
        if problem is None and record is not None:
            data, problem = files.read_data(self.directory, record, root=self.root)
            if data is not None:
                try:
                    snapshot = snapshot_from(data, like)
                    if snapshot.calls != record["calls"] or not 0 < snapshot.calls <= end:
                        raise ValueError(f"it is {snapshot.calls} calls in, its record says "
                                         f"{record['calls']}, the run has {end}")
                    return snapshot
                except (ValueError, KeyError, TypeError) as exc:
                    problem = f"{self.directory / record['file']}: unusable checkpoint ({exc})"
        if problem is not None:
            self.report(f"{problem}; ignored: the sub-batch starts over without it")
        return None

    def save(self, sub_batch: int, width: int, snapshot: Snapshot) -> None:
        self.guard()
        evaluations = snapshot.calls * self.group
        started = time.perf_counter()
        data = snapshot_bytes(snapshot)
        want = files.expected(self.owner, self.entry, sub_batch, width)
        stopping.check()
        try:
            with stopping.writing():
                files.write(self.directory, want, snapshot.calls, evaluations, data,
                            root=self.root)
        except OSError as exc:
            raise storage_error(self.directory, exc, "cannot write a checkpoint",
                                "run the same command again (checkpoint_every = 0 writes "
                                "no checkpoints)") from None
        self.saved.append((len(data), time.perf_counter() - started))

    def remove(self) -> None:
        files.remove(self.root, self.entry.path)
