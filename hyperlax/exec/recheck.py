"""``hyperlax status --recheck N``: run entry N again, here and now, into a temporary directory
(the sweep's own files are only read), and say whether this environment reproduces the curves
it recorded: bit for bit, within the float tolerance, or not at all.

The entry runs through exec's own path for a plan restricted to it (``local_exec.execute``), so
it trains exactly as exec trained it. The tolerance is what a change of library version or
device that leaves the algorithm alone may move float32 training by: returns and losses within
``RTOL`` relative (``ATOL`` absolute, for values near zero), with the same points finite and the
same evaluation steps (docs/commands/status.md#recheck)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.plan.read import read_plan_file
from hyperlax.storage.provenance import (describe, difference_text, differing_fields,
                                         read_provenance)
from hyperlax.storage.atomic import scratch_dir
from hyperlax.storage.read import MAX_CURVES_BYTES, decode_npz, read_bytes
from hyperlax.storage.sweepdir import Owner, SweepDir, sweep_root

RTOL = 1e-5
ATOL = 1e-6


@dataclass
class Recheck:
    verdict: str                    # "identical" | "within tolerance" | "different"
    lines: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return self.verdict != "different"


def recheck_entry(plan_file: Path, output_root: Path | None, index: int) -> Recheck:
    """Re-run entry ``index`` of the plan's sweep into a temporary directory and compare its
    curves with the recorded ones. HyperlaxError when there is no such complete, intact entry
    or the plan is a successive-halving one (its entries depend on earlier rungs' decisions)."""
    plan, pid, data = read_plan_file(plan_file)
    if plan.halving is not None:
        kind = "population-based training" if plan.pbt else "successive-halving"
        raise HyperlaxError(str(plan_file), "--recheck re-runs one entry of a plain plan; a "
                                            f"{kind} plan's entries depend on its earlier "
                                            "decisions")
    if not 0 <= index < len(plan.entries):
        raise HyperlaxError("--recheck", f"entry {index} does not exist: the plan has "
                                         f"{len(plan.entries)} entries (0 to "
                                         f"{len(plan.entries) - 1})")
    entry = plan.entries[index]
    root = sweep_root(plan, output_root)
    sweep, owner = SweepDir(root), Owner.of(plan, pid)
    if not root.exists() or sweep.state(entry.path) != "done":
        raise HyperlaxError(str(sweep.entry_dir(entry.path)), f"entry {index} is not complete: "
                                                              "there is nothing to recheck",
                            "run the plan first, or name a complete entry")
    problems = sweep.verify(entry.path, owner, entry.index)
    if problems:
        raise HyperlaxError(str(sweep.entry_dir(entry.path)), "its files changed after it "
                            f"completed ({'; '.join(problems)}): there is nothing to compare "
                            "with")
    recorded_dir = sweep.entry_dir(entry.path)
    with scratch_dir("hyperlax-recheck-") as scratch:
        _run(plan, pid, data, scratch / "sweep", index)
        again_dir = SweepDir(scratch / "sweep").entry_dir(entry.path)
        verdict, detail = compare_curves(
            read_bytes(recorded_dir / "curves.npz", "curves", MAX_CURVES_BYTES, within=root),
            read_bytes(again_dir / "curves.npz", "curves", MAX_CURVES_BYTES))
        recorded, today = read_provenance(recorded_dir), read_provenance(again_dir)
    lines = [f"recheck of entry {index} ({entry.path}, {len(entry.samples)} samples): "
             f"{verdict}{detail}"]
    lines.append(f"  recorded by: {describe(recorded) if recorded else 'unknown (no record)'}")
    if today is not None:
        same = recorded is not None and not differing_fields([recorded, today])
        lines.append(f"  re-run with: {'the same environment' if same else describe(today)}")
    fields = differing_fields([recorded, today]) if recorded and today else []
    if fields:
        lines.append(f"  differences: {difference_text(fields, [recorded, today])}")
    return Recheck(verdict, lines)


def _run(plan, pid: str, data: bytes, root: Path, index: int) -> None:
    from hyperlax.exec.executor import enable_compile_cache
    from hyperlax.exec.local_exec import execute
    from hyperlax.exec.options import default_compile_cache

    try:
        enable_compile_cache(default_compile_cache())
    except OSError:
        pass  # the cache only saves compile time
    execute(plan, pid, data, root, entries=[index])


def compare_curves(recorded: bytes, again: bytes) -> tuple[str, str]:
    """(verdict, detail) for two curves.npz files: "identical" when their arrays are equal bit
    for bit, "within tolerance" when the returns and losses are within RTOL/ATOL (and steps,
    samples and finite points equal), else "different", with the largest deviation."""
    a, b = _arrays(recorded), _arrays(again)
    if a.keys() != b.keys():
        return "different", f": the curves hold other arrays ({sorted(a)} vs {sorted(b)})"
    if all(a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a):
        return "identical", " (bit for bit)"
    for key in ("sample", "eval_steps", "finite"):
        if key in a and not np.array_equal(a[key], b[key]):
            return "different", f": {key} differs"
    worst, where = 0.0, ""
    for key in a:
        if key != "returns" and not key.startswith("loss_"):
            continue
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        if x.shape != y.shape:
            return "different", f": {key} has shape {y.shape}, recorded {x.shape}"
        if not np.allclose(y, x, rtol=RTOL, atol=ATOL, equal_nan=True):
            both = np.isfinite(x) & np.isfinite(y)
            gap = float(np.max(np.abs(x[both] - y[both]), initial=0.0))
            if gap >= worst:
                worst, where = gap, key
    if where:
        return "different", (f": {where} differs by up to {worst:.6g} (more than rtol {RTOL:g}"
                             f", atol {ATOL:g})")
    return "within tolerance", f" (rtol {RTOL:g}, atol {ATOL:g}; not bit for bit)"


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    return decode_npz(data, "curves.npz", "curves")
