"""Execute a plan's entries: the loop, skipping, claims, compile cache, outputs and markers.

The executor never samples, groups or slices: it runs exactly the sub-batches the plan lists,
each as one call of ``jit(vmap(vmap(train)))`` over (padded) samples x replicates, or, with
several devices, the same program with the sample axis split across them (``sharding``).

Several workers (``exec`` on several machines, array-job shards, Ray tasks) may run one plan
into one sweep directory: a worker runs an entry only while it holds the entry's claim
(``storage.claims``), so no entry runs in two places at once.

A stop (SIGINT, SIGTERM: ``hyperlax.stopping``) is acted on at ``stopping.check()`` here:
between entries, after a compile, after each training call, and before each file.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import jax
import numpy as np

from hyperlax import stopping
from hyperlax.planfile import Entry, Plan
from hyperlax.runtime.batched import batched_train, replicate_keys, stack
from hyperlax.runtime.outputs import EntryResult, SubBatchResult, pause_point, write_entry
from hyperlax.runtime.sharding import Sharded, padded_width
from hyperlax.storage.atomic import storage_error
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT, ClaimInfo, ClaimLost, EntryClaim
from hyperlax.storage.sweepdir import Owner, SweepDir


def enable_compile_cache(directory: Path) -> None:
    """Persist compiled XLA programs on disk, so a resumed or repeated exec skips compiles."""
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@dataclass
class CompiledRunner:
    """One compiled program per (structure, width, device count): every call of the same shape
    reuses it. With ``devices`` (more than one local device), each sub-batch's sample axis is
    split across them and widths are rounded up to a multiple of their number."""

    plan: Plan
    devices: list[Any] | None = None
    compiles: int = 0
    compile_seconds: float = 0.0
    entry: int = -1           # the entry being run, for the test-only pause hook
    _cache: dict[tuple[int, int, int], Callable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.plan.settings
        self.budget = s.budget
        self.run_batch = batched_train(s.algorithm, s.env, self.budget)
        many = self.devices is not None and len(self.devices) > 1
        self.sharded = Sharded(self.devices) if many else None
        self.num_devices = len(self.devices) if many else 1

    def inputs(self, samples: list[int], width: int) -> tuple[Any, jax.Array]:
        """The stacked configs (scalars vmapped, structure static) and [width, replicates] keys.
        Padding lanes repeat the first sample; their results are dropped by the caller."""
        lanes = samples + [samples[0]] * (width - len(samples))
        configs = stack([self.plan.sample_config(i) for i in lanes])
        keys = replicate_keys([self.plan.samples[i].seed for i in lanes],
                              self.plan.settings.seeds_per_sample)
        return configs, keys

    def compiled(self, structure: int, configs: Any, keys: jax.Array) -> tuple[Callable, float]:
        width = keys.shape[0]
        key = (structure, width, self.num_devices)
        if key in self._cache:
            return self._cache[key], 0.0
        batched = self.sharded.wrap(self.run_batch) if self.sharded else jax.jit(self.run_batch)
        pause_point("compile", self.entry)
        start = time.perf_counter()
        executable = batched.lower(configs, keys).compile()
        stopping.check()  # a stop during a compile (seconds) is acted on here
        seconds = time.perf_counter() - start
        self.compiles += 1
        self.compile_seconds += seconds
        self._cache[key] = executable
        return executable, seconds

    def run(self, structure: int, samples: list[int], width: int) -> SubBatchResult:
        configs, keys = self.inputs(samples, padded_width(width, self.num_devices))
        if self.sharded:
            configs, keys = self.sharded.place((configs, keys))
        executable, compile_seconds = self.compiled(structure, configs, keys)
        pause_point("train", self.entry)
        start = time.perf_counter()
        metrics = jax.block_until_ready(executable(configs, keys))
        stopping.check()  # during training (stuck in XLA, the stop's watcher ends the process)
        seconds = time.perf_counter() - start
        keep = len(samples)
        return SubBatchResult(
            samples=samples,
            eval_steps=np.asarray(metrics.eval_steps)[0, 0],
            returns=np.asarray(metrics.eval_returns)[:keep],
            losses={k: np.asarray(v)[:keep] for k, v in metrics.losses.items()},
            finite=np.asarray(metrics.finite)[:keep],
            steps_per_run=self.budget.steps_trained(
                self.plan.sample_config(samples[0]).steps_per_update()),
            train_seconds=seconds,
            compile_seconds=compile_seconds,
        )


@dataclass
class ExecReport:
    total: int
    skipped: int
    ran: int
    compiles: int
    compile_seconds: float
    env_steps: int
    seconds: float
    by_others: int = 0        # entries another worker completed while this exec ran


@dataclass
class Attempt:
    """What trying to run one entry came to: ``ran`` (this worker ran and marked it), ``done``
    (already complete: another worker finished it) or ``busy`` (another worker holds its
    claim, or took it over while this one ran; ``holder`` says who)."""

    outcome: str
    result: EntryResult | None = None
    steps: int = 0
    holder: ClaimInfo | None = None


class _ClaimedSweep(SweepDir):
    """The sweep directory as seen by the holder of one entry's claim: it empties the entry's
    directory and writes its marker only while it still holds the claim."""

    def __init__(self, root: Path, claim: EntryClaim):
        super().__init__(root)
        self._claim = claim

    def fresh_entry_dir(self, entry_path: str) -> Path:
        self._claim.check()
        return super().fresh_entry_dir(entry_path)

    def complete(self, *args: Any, **kwargs: Any) -> None:
        self._claim.check()
        super().complete(*args, **kwargs)


def _finished(sweep: SweepDir, owner: Owner, entry: Entry, redo: bool) -> bool:
    """Complete, and (for an entry being redone because it was corrupt) intact again."""
    if sweep.state(entry.path) != "done":
        return False
    if not redo:
        return True
    try:
        return not sweep.verify(entry.path, owner, entry.index)
    except OSError:
        return False


def attempt_entry(sweep: SweepDir, runner: CompiledRunner, plan: Plan, owner: Owner,
                  entry: Entry, *, redo: bool = False,
                  claim_timeout: float = DEFAULT_CLAIM_TIMEOUT) -> Attempt:
    """Claim ``entry``, run it and write its outputs and marker, then release the claim. The
    one code path of every worker: plain exec, array-job shards and Ray tasks. A failed write
    raises StorageError; the entry stays unmarked."""
    if _finished(sweep, owner, entry, redo):
        return Attempt("done")
    try:
        with stopping.writing():  # a stop's emergency exit comes before or after, not during
            claim, holder = sweep.try_claim_entry(entry.path, entry.index, claim_timeout)
    except OSError as exc:
        raise storage_error(sweep.claim_path(entry.path), exc, "cannot claim this entry",
                            "run the same command again") from None
    if claim is None:
        return Attempt("busy", holder=holder)
    with claim:
        if _finished(sweep, owner, entry, redo):  # completed while we were getting here
            return Attempt("done")
        pause_point("entry-start", entry.index)
        stopping.check()
        runner.entry = entry.index
        result = run_entry(runner, entry)
        try:
            write_entry(_ClaimedSweep(sweep.root, claim), plan, owner, entry, result)
        except ClaimLost:
            return Attempt("busy", holder=sweep.read_entry_claim(entry.path))
        except OSError as exc:
            if not claim.held():  # taken over mid-write: the new holder's files, not ours
                return Attempt("busy", holder=sweep.read_entry_claim(entry.path))
            raise storage_error(sweep.entry_dir(entry.path), exc, "cannot write this entry's "
                                "outputs; it is not marked complete",
                                "run the same command again: complete entries are kept and "
                                "this one is redone") from None
    steps = sum(sb.steps_per_run * len(sb.samples) for sb in result.sub_batches)
    return Attempt("ran", result=result, steps=steps * plan.settings.seeds_per_sample)


def claim_sweep(sweep: SweepDir, plan_bytes: bytes, owner: Owner) -> None:
    try:
        with stopping.writing():
            sweep.claim(plan_bytes, owner)
    except OSError as exc:
        raise storage_error(sweep.root, exc, "cannot set up the sweep directory",
                            "run the same command again, or pass another --output-root"
                            ) from None


def describe_holders(holders: list[ClaimInfo | None]) -> str:
    names = sorted({h.holder() for h in holders if h is not None})
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def execute(plan: Plan, plan_id: str, plan_bytes: bytes, root: Path, *,
            progress: Any = None, entries: list[int] | None = None,
            redo: Collection[str] = (), devices: list[Any] | None = None,
            claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
            log: Callable[[str], None] | None = None) -> ExecReport:
    """Run every incomplete entry of ``plan`` (or of ``entries``) into ``root``, in plan order;
    entries whose path is in ``redo`` run again even though marked complete (the CLI passes
    the corrupt ones when asked to). A failed write raises StorageError: the entry being
    written stays unmarked, and entries completed before it keep their markers.

    Entries another worker holds are skipped and come back at the end: this returns once every
    selected entry is complete, by this worker or another, taking over the claims of workers
    that stopped heartbeating for ``claim_timeout`` seconds (or died on this machine)."""
    sweep, owner = SweepDir(root), Owner.of(plan, plan_id)
    claim_sweep(sweep, plan_bytes, owner)
    runner = CompiledRunner(plan, devices=devices)
    selected, todo, skipped = pending_entries(plan, sweep, entries, redo, progress)
    started = time.perf_counter()
    env_steps = ran = by_others = 0
    queue: deque[Entry] = deque(todo)
    waiting: list[tuple[Entry, ClaimInfo | None]] = []
    told = ""
    while queue or waiting:
        stopping.check()  # between entries
        if not queue:
            message = (f"waiting for {len(waiting)} entries that other workers are running "
                       f"({describe_holders([h for _, h in waiting])}); their claims are taken "
                       f"over if they stop for {claim_timeout:g}s")
            if log and message != told:
                log(message)
                told = message
            stopping.sleep(min(2.0, claim_timeout / 4))
            queue, waiting = deque(e for e, _ in waiting), []
        entry = queue.popleft()
        attempt = attempt_entry(sweep, runner, plan, owner, entry, redo=entry.path in redo,
                                claim_timeout=claim_timeout)
        if attempt.outcome == "busy":
            waiting.append((entry, attempt.holder))
        elif attempt.outcome == "done":
            by_others += 1
            if log:
                log(f"{entry.path}: completed by another worker")
        else:
            ran += 1
            env_steps += attempt.steps
            if progress:
                progress.entry_done(entry, attempt.result, attempt.steps)
    seconds = time.perf_counter() - started
    if progress:
        progress.finish()
    return ExecReport(total=len(selected), skipped=skipped, ran=ran,
                      compiles=runner.compiles, compile_seconds=runner.compile_seconds,
                      env_steps=env_steps, seconds=seconds, by_others=by_others)


def run_entry(runner: CompiledRunner, entry: Entry) -> EntryResult:
    start = time.perf_counter()
    subs = [runner.run(sb.structure, sb.samples, sb.width) for sb in entry.sub_batches]
    return EntryResult(sub_batches=subs, seconds=time.perf_counter() - start)


def pending_entries(plan: Plan, sweep: SweepDir, entries: list[int] | None, redo: Any,
                    progress: Any) -> tuple[list[Entry], list[Entry], int]:
    """(selected entries, those still to run, how many are skipped), and start the progress
    display: the opening shared by a local exec and a Ray driver."""
    selected = [plan.entries[i] for i in entries] if entries is not None else plan.entries
    todo = [e for e in selected if e.path in redo or sweep.state(e.path) != "done"]
    skipped = len(selected) - len(todo)
    if progress:
        progress.start(total=len(selected), skipped=skipped,
                       steps_total=sum(_entry_steps(plan, e) for e in todo))
    return selected, todo, skipped


def _entry_steps(plan: Plan, entry: Entry) -> int:
    budget = plan.settings.budget
    total = sum(budget.steps_trained(plan.sample_config(sb.samples[0]).steps_per_update())
                * len(sb.samples) for sb in entry.sub_batches)
    return total * plan.settings.seeds_per_sample


