"""The status use case: each entry of a plan is done, partial (interrupted) or pending in its
sweep directory, and, when asked, whether complete entries still match their markers. JAX-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hyperlax.exec_options import exec_command_line
from hyperlax.planfile import read_plan_file
from hyperlax.storage.sweepdir import Owner, SweepDir, another_plan, sweep_root


@dataclass
class Status:
    lines: list[str] = field(default_factory=list)   # what ``hyperlax status`` prints
    corrupt: dict[str, list[str]] = field(default_factory=dict)


def sweep_status(plan_file: Path, output_root: Path | None, verify: bool) -> Status:
    """Raises HyperlaxError for a bad plan or a directory holding another plan's results, and
    StorageError when a complete entry cannot be read to verify it."""
    plan, pid, _ = read_plan_file(plan_file)
    root = sweep_root(plan, output_root)
    sweep, owner = SweepDir(root), Owner.of(plan, pid)
    record = sweep.record() if root.exists() else None
    if record is not None and not owner.owns(record):
        raise another_plan(root, record, owner, "pass the --output-root this plan was run with")
    status = Status()
    if verify and root.exists():
        status.corrupt = sweep.corrupt_entries(plan.entries, owner)
    corrupt = status.corrupt
    counts = {"done": 0, "partial": 0, "pending": 0, "corrupt": 0}
    for entry in plan.entries:
        state = "corrupt" if entry.path in corrupt else sweep.state(entry.path)
        counts[state] += 1
        why = f": {'; '.join(corrupt[entry.path])}" if entry.path in corrupt else ""
        status.lines.append(f"{state:<8} {entry.path}  ({len(entry.samples)} samples){why}")
    status.lines.append(f"{counts['done']}/{len(plan.entries)} done, {counts['partial']} "
                        f"partial, {counts['pending']} pending"
                        + (f", {counts['corrupt']} corrupt" if verify else "") + f" in {root}")
    command = exec_command_line(plan_file, output_root, redo_corrupt=bool(corrupt))
    if corrupt:
        status.lines.append(f"{len(corrupt)} complete entries changed after completion; exec "
                            f"leaves them alone; re-run them with: {command}")
    elif verify and counts["done"]:
        status.lines.append(f"verified: the files of all {counts['done']} complete entries "
                            "match their markers")
    if counts["partial"] or counts["pending"]:
        status.lines.append(f"finish it with: {command}  (complete entries are skipped)")
    return status
