"""An entry's outputs, in open formats (docs/commands/exec.md#outputs), and its completion marker.

    samples.json   every sample's hyperparameter values, seed and structure
    curves.npz     eval_steps [E], sample [S], returns / finite / loss_<name> [S, R, E]
    curves.csv     the same curves in long form: sample, replicate, step, return, losses
    summary.json   the entry's wall, train and compile seconds; per sample: status (ok |
                   diverged), diverged_at_step, final and best return (mean and std over
                   replicates), steps, its sub-batch's train and compile seconds, and one
                   record per replicate: status, diverged_at_step, final and best return
    provenance.json  where the results came from: versions of hyperlax, Python and the JAX
                   stack, backend, device kind, XLA flags, numerics settings, host CPU
                   (``hyperlax.storage.provenance``; entries older than 0.2.0 have none)
    carry_<k>.msgpack  successive halving, every rung but the last: sub-batch k's training
                   carry at the rung's end (real lanes), which the next rung continues from
    success.txt    written last, atomically, with the sha256 and size of each file above

Crash safety: the entry's directory is emptied first, each file is written atomically, and the
marker comes last, so an entry either has a marker vouching for complete files or is redone.
A stop (``hyperlax.exec.stopping``) is acted on before each file, never in the middle of one.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hyperlax.exec import provenance, stopping
from hyperlax.plan.format import Entry, Plan
from hyperlax.plan.metrics import curve_metric
from hyperlax.storage import atomic
from hyperlax.storage.atomic import json_bytes
from hyperlax.storage.provenance import PROVENANCE_FILE
from hyperlax.storage.sweepdir import ENTRY_FILES, Owner, SweepDir

FILES = ENTRY_FILES

@dataclass
class SubBatchResult:
    samples: list[int]
    eval_steps: np.ndarray          # [E]
    returns: np.ndarray             # [S, R, E]
    losses: dict[str, np.ndarray]   # name -> [S, R, E]
    finite: np.ndarray              # [S, R, E]
    steps_per_run: int              # env steps each run has trained (to this rung's budget)
    train_seconds: float
    compile_seconds: float
    final_carry: Any = None         # the carry's leaves at the end, when a later rung needs it
    steps_now: int | None = None    # of steps_per_run, trained by this exec (not restored)
    train_seconds_now: float | None = None  # of train_seconds, spent by this exec


@dataclass
class EntryResult:
    sub_batches: list[SubBatchResult]
    seconds: float
    explored: dict[int, dict[str, Any]] | None = None   # PBT: this interval's explored values


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def replicate_summary(eval_steps: np.ndarray, returns: np.ndarray,
                      finite: np.ndarray) -> dict[str, Any]:
    """One replicate's outcome from its curve; a non-finite point marks it diverged there."""
    bad = np.flatnonzero(~finite)
    if bad.size:
        first = int(bad[0])
        good = returns[:first]
        return {"status": "diverged", "diverged_at_step": int(eval_steps[first]),
                "final_return": None,
                "best_return": _num(curve_metric(good, "best_return")) if good.size else None}
    return {"status": "ok", "diverged_at_step": None,
            "final_return": _num(curve_metric(returns, "final_return")),
            "best_return": _num(curve_metric(returns, "best_return"))}


def sample_summary(index: int, eval_steps: np.ndarray, returns: np.ndarray,
                   finite: np.ndarray, steps: int) -> dict[str, Any]:
    reps = [replicate_summary(eval_steps, returns[r], finite[r]) for r in range(len(returns))]
    diverged = [r["diverged_at_step"] for r in reps if r["status"] == "diverged"]
    finals = [r["final_return"] for r in reps if r["final_return"] is not None]
    bests = [r["best_return"] for r in reps if r["best_return"] is not None]
    return {
        "sample": index,
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": min(diverged) if diverged else None,
        "final_return": _num(np.mean(finals)) if finals else None,
        "final_return_std": _num(np.std(finals)) if finals else None,
        "best_return": _num(np.mean(bests)) if bests else None,
        "best_return_std": _num(np.std(bests)) if bests else None,
        "steps": steps,
        "replicates": reps,
    }


def write_entry(sweep: SweepDir, plan: Plan, owner: Owner, entry: Entry,
                result: EntryResult) -> None:
    directory = sweep.fresh_entry_dir(entry.path)
    by_sample = {}
    for sb in result.sub_batches:
        for lane, i in enumerate(sb.samples):
            by_sample[i] = (sb, lane)
    order = entry.samples
    eval_steps = result.sub_batches[0].eval_steps
    loss_names = sorted(result.sub_batches[0].losses)

    def stack(pick) -> np.ndarray:
        return np.stack([pick(*by_sample[i]) for i in order])

    returns = stack(lambda sb, k: sb.returns[k])
    finite = stack(lambda sb, k: sb.finite[k])
    losses = {n: stack(lambda sb, k, n=n: sb.losses[n][k]) for n in loss_names}
    # Sub-batches of different structures run different numbers of updates, so eval steps are
    # per sample; they are equal within a sub-batch.
    steps_of = {i: by_sample[i][0].eval_steps for i in order}
    if len({tuple(v) for v in steps_of.values()}) > 1:
        eval_steps_arr = np.stack([steps_of[i] for i in order])
    else:
        eval_steps_arr = eval_steps

    # PBT: the values each sample trained with in this interval, explored since the plan's
    explored = result.explored or {}
    samples_doc = [{"sample": i, "seed": plan.samples[i].seed,
                    "structure": plan.samples[i].structure,
                    "values": {**plan.sample_values(i), **explored.get(i, {})}}
                   for i in order]
    _write(directory / "samples.json", json_bytes(samples_doc), sweep.within)

    buf = io.BytesIO()
    np.savez(buf, sample=np.asarray(order), eval_steps=eval_steps_arr, returns=returns,
             finite=finite, **{f"loss_{n}": v for n, v in losses.items()})
    _write(directory / "curves.npz", buf.getvalue(), sweep.within)

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["sample", "replicate", "step", "return", *loss_names])
    for s_pos, i in enumerate(order):
        steps = steps_of[i]
        for r in range(returns.shape[1]):
            for e in range(returns.shape[2]):
                writer.writerow([i, r, int(steps[e]), repr(float(returns[s_pos, r, e])),
                                 *(repr(float(losses[n][s_pos, r, e])) for n in loss_names)])
    _write(directory / "curves.csv", text.getvalue().encode("utf-8"), sweep.within)

    carries = []  # successive halving: each sub-batch's carry at the rung's end, for the next
    for k, sb in enumerate(result.sub_batches):
        if sb.final_carry is not None:
            from hyperlax.exec.halving.decide import carry_file
            from hyperlax.exec.checkpoints.snapshots import carry_bytes

            carries.append(carry_file(k))
            _write(directory / carries[-1], carry_bytes(sb.final_carry, sb.samples,
                                                        len(sb.eval_steps)), sweep.within)

    # Vouched for by the marker like the rest, but not required of an entry (ENTRY_FILES):
    # entries written before it existed stay complete. summary.json stays the last file
    # (tests/exec_points.py stops "before-marker" right after it).
    _write(directory / PROVENANCE_FILE, json_bytes(provenance.record(plan.settings.env)),
           sweep.within)

    summaries = []
    for s_pos, i in enumerate(order):
        sb, _ = by_sample[i]
        summary = sample_summary(i, steps_of[i], returns[s_pos], finite[s_pos], sb.steps_per_run)
        summary["train_seconds"] = round(sb.train_seconds, 3)
        summary["compile_seconds"] = round(sb.compile_seconds, 3)
        summaries.append(summary)
    _write(directory / "summary.json", json_bytes({
        "entry": entry.index, "path": entry.path,
        "wall_seconds": round(result.seconds, 3),
        "compile_seconds": round(sum(sb.compile_seconds for sb in result.sub_batches), 3),
        "train_seconds": round(sum(sb.train_seconds for sb in result.sub_batches), 3),
        "samples": summaries,
    }), sweep.within)
    stopping.check()
    with stopping.writing():  # a stop's emergency exit never cuts a marker short
        sweep.complete(entry.path, owner, entry.index, FILES + [PROVENANCE_FILE] + carries)


def _write(path: Path, data: bytes, root: Path) -> None:
    stopping.check()
    with stopping.writing():
        atomic.atomic_write(path, data, within=root)
