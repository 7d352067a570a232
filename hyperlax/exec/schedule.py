"""Which compiled programs an exec needs, in which order, and how many compile at once.
JAX-free, so exec can say what it will do before it imports JAX.

A *program* is what one sub-batch shape runs: the ``init``, ``train`` and ``evaluate``
executables of ``batched_program`` for one (structure, width, device count), the width rounded
up to a multiple of the device count (the runner shares one ``evaluate`` between the programs
whose evaluation is the same: ``runtime.runner``). The plan says which sub-batches every entry
runs, so the programs of the entries still to run, and the order in which they are first
used, are known before anything runs: that is what exec compiles ahead
(``runtime.programs``).
"""

from __future__ import annotations

import os
from typing import Any, Collection, Iterable, Iterator, NamedTuple

from hyperlax.plan.format import (MAX_CALLS_PER_RUN, Entry, Plan, SubBatch,  # noqa: F401
                               chunk_group)  # re-exported: the runtime's names for them

MAX_WORKERS = 8          # default cap on compile threads (XLA memory per compile, few wins past)


class ProgramKey(NamedTuple):
    structure: int
    width: int      # padded to a multiple of ``devices``
    devices: int


class Use(NamedTuple):
    """One sub-batch to run: its program and its samples."""

    key: ProgramKey
    samples: list[int]


def padded_lanes(samples: list[int], width: int) -> list[int]:
    """The samples of a call of ``width`` lanes: padding lanes repeat the first sample (their
    results are dropped), so they run a real configuration and never diverge on garbage."""
    return samples + [samples[0]] * (width - len(samples))


def padded_width(width: int, devices: int) -> int:
    """``width`` rounded up to a multiple of the device count."""
    return -(-width // devices) * devices


def key_of(sub_batch: SubBatch, devices: int) -> ProgramKey:
    return ProgramKey(sub_batch.structure, padded_width(sub_batch.width, devices), devices)


def uses(entries: Iterable[Entry], devices: int, first: int = 0) -> Iterator[Use]:
    """The sub-batches of ``entries`` in run order (of the first entry, from sub-batch
    ``first`` on)."""
    for n, entry in enumerate(entries):
        for sb in entry.sub_batches[first if n == 0 else 0:]:
            yield Use(key_of(sb, devices), sb.samples)


def programs_needed(entries: Iterable[Entry], devices: int) -> list[ProgramKey]:
    """The distinct programs of ``entries``, in the order they are first used."""
    return list(dict.fromkeys(u.key for u in uses(entries, devices)))


def default_compile_workers() -> int:
    """Compile threads when ``--compile-workers`` is not given: one fewer than the cores this
    process may use (the training calls and the main thread need one), at least 1, at most
    MAX_WORKERS. XLA's compile releases the GIL, so compiles run in parallel with each other and
    with training. Measured on 2 cores (docs/benchmarks.md): 1 thread beat 2, whose compiles
    slowed training more than they gained; on an accelerator host training leaves the host's
    cores to the compiles."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, MAX_WORKERS))


def describe(plan: Plan, todo: list[Entry], skipped: int, devices: int, workers: int,
             saved: dict[str, list[int | None]] | None = None) -> str:
    """exec's first line: what will run and what will compile; ``saved``: ``checkpointed``,
    whose steps are not run again."""
    programs = len(programs_needed(todo, devices))
    total = len(todo) + skipped
    saved = saved or {}
    steps = sum(entry_steps(plan, e, saved.get(e.path)) for e in todo)
    how = (f"{workers} compile worker{'s' if workers != 1 else ''}" if workers
           else "compiling when needed")
    done = f" ({skipped} complete, skipped)" if skipped else ""
    return (f"exec: {len(todo)} of {total} entries to run{done}, {steps:,} env steps; "
            f"{programs} program{'s' if programs != 1 else ''} to compile ({how})")


def entry_steps(plan: Plan, entry: Entry, saved: list[int | None] | None = None) -> int:
    """Env steps an entry trains, all samples and replicates (padding lanes not counted).
    ``saved``: the evaluations each sub-batch has checkpointed (``checkpoints.files
    .progress``); those steps are trained already, and only the rest is counted."""
    budget = plan.settings.budget
    evaluations = plan.settings.num_evaluations
    total = 0
    for k, sb in enumerate(entry.sub_batches):
        steps = budget.steps_trained(plan.sample_config(sb.samples[0]).steps_per_update())
        done = (saved[k] if saved is not None and k < len(saved) else None) or 0
        # every evaluation chunk trains the same number of updates (Budget.updates)
        total += steps * (evaluations - min(done, evaluations)) // evaluations * len(sb.samples)
    return total * plan.settings.seeds_per_sample


def checkpointed(plan: Plan, root: Any, entries: Iterable[Entry],
                 redo: Collection[str] = ()) -> dict[str, list[int | None]]:
    """Per entry path, the evaluations its sub-batches have checkpointed (a resume starts
    there); empty for a plan without checkpoints. Entries being redone start over."""
    if not plan.checkpoint_every or plan.halving is not None or not root.exists():
        return {}
    from hyperlax.exec.checkpoints.files import progress

    return {e.path: progress(root, e) for e in entries if e.path not in redo}
