"""The status use case: each entry of a plan is done, partial (interrupted) or pending in its
sweep directory, and, when asked, whether complete entries still match their markers; then the
environments that produced the complete entries (``hyperlax.storage.provenance``). JAX-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hyperlax.exec.checkpoints.files import progress as checkpoint_progress
from hyperlax.exec.options import exec_command_line, remembered_compile_cache
from hyperlax.plan.format import Entry, Plan
from hyperlax.plan.read import read_plan_file
from hyperlax.storage.provenance import provenance_lines, read_provenance
from hyperlax.storage.sweepdir import Owner, SweepDir, another_plan, sweep_root


@dataclass
class Status:
    lines: list[str] = field(default_factory=list)   # what ``hyperlax status`` prints
    corrupt: dict[str, list[str]] = field(default_factory=dict)


def sweep_status(plan_file: Path, output_root: Path | None, verify: bool) -> Status:
    """Raises HyperlaxError for a bad plan or an output root that holds another plan's results
    or anything but a sweep (an absent or empty one is all pending), and StorageError when a
    complete entry cannot be read to verify it."""
    plan, pid, _ = read_plan_file(plan_file)
    root = sweep_root(plan, output_root)
    sweep, owner = SweepDir(root), Owner.of(plan, pid)
    record = sweep.record() if root.exists() else None
    if record is not None and not owner.owns(record):
        raise another_plan(root, record, owner, "pass the --output-root this plan was run with")
    sweep.check_owner(owner)  # a folder of other files: refused as exec refuses it
    status = Status()
    rungs = _rungs(plan, root, owner, sweep)
    entries = plan.entries if rungs is None else [e for _, es in rungs for e in es or []]
    if verify and root.exists():
        status.corrupt = sweep.corrupt_entries(entries, owner)
    corrupt = status.corrupt
    counts = {"done": 0, "partial": 0, "pending": 0, "corrupt": 0}
    records = {}  # complete entries' provenance, None for one written before records
    total = plan.settings.num_evaluations
    for header, rung_entries in rungs or [(None, plan.entries)]:
        if header is not None:
            status.lines.append(header)
        for entry in rung_entries or []:
            state = "corrupt" if entry.path in corrupt else sweep.state(entry.path)
            why = f": {'; '.join(corrupt[entry.path])}" if entry.path in corrupt else ""
            if state != "done" and plan.checkpoint_every and root.exists():
                saved = [e for e in checkpoint_progress(root, entry) if e is not None]
                if saved:  # interrupted after a checkpoint: it resumes from there
                    state = "partial"
                    why += f" (checkpoint at evaluation {max(saved)} of {total})"
            counts[state] += 1
            if state == "done":
                records[entry.path] = read_provenance(sweep.entry_dir(entry.path))
            status.lines.append(f"{state:<8} {entry.path}  ({len(entry.samples)} samples){why}")
    status.lines.append(f"{counts['done']}/{len(entries)} done, {counts['partial']} "
                        f"partial, {counts['pending']} pending"
                        + (f", {counts['corrupt']} corrupt" if verify else "") + f" in {root}"
                        + (f"; {_stage(plan)}s decided: "
                           f"{sum(1 for h, es in rungs[1:] if es is not None)} of "
                           f"{len(rungs) - 1}" if rungs else ""))
    status.lines += provenance_lines(records, "complete entries")
    if rungs and any(es is None for _, es in rungs):
        counts["pending"] += 1  # rungs to come: not finished, whatever the entries say
    command = exec_command_line(plan_file, output_root, redo_corrupt=bool(corrupt),
                                compile_cache=remembered_compile_cache(root))
    if corrupt:
        status.lines.append(f"{len(corrupt)} complete entries changed after completion; exec "
                            f"leaves them alone; re-run them with: {command}")
    elif verify and counts["done"]:
        status.lines.append(f"verified: the files of all {counts['done']} complete entries "
                            "match their markers")
    if counts["partial"] or counts["pending"]:
        status.lines.append(f"finish it with: {command}  (complete entries are skipped)")
    return status


def _stage(plan: Plan) -> str:
    """What a stage of training is called: PBT's are intervals, successive halving's rungs."""
    return "interval" if plan.pbt is not None else "rung"


def _rungs(plan: Plan, root: Path, owner: Owner,
           sweep: SweepDir) -> list[tuple[str, list[Entry] | None]] | None:
    """Successive halving (PBT): per rung (interval) a header line and its entries (None while
    the decision before it is not made). None for a plan without rungs."""
    if plan.halving is None:
        return None
    from hyperlax.exec.halving.decide import rung_views

    out = []
    total = plan.settings.num_evaluations
    stage = _stage(plan)
    for view in rung_views(plan, root, owner):
        if view.entries is None:
            what = f"waiting for {stage} {view.rung - 1}'s decision"
        else:
            done = sum(sweep.state(e.path) == "done" for e in view.entries) \
                if root.exists() else 0
            what = f"{done}/{len(view.entries)} entries done"
            if view.decision is not None:
                went = (f"{len(view.decision.exploit)} copied another" if plan.pbt is not None
                        else f"{len(view.decision.survivors)} go on")
                what += f"; decided: {went} (rungs/rung_{view.rung}.json)"
        out.append((f"{stage} {view.rung}: {view.samples} samples to {view.evaluations} of "
                    f"{total} evaluations, {what}", view.entries))
    return out
