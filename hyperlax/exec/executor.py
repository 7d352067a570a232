"""Execute a plan's entries: the loop, skipping, claims, compile cache, outputs and markers.
The loop serves a plain plan and each rung of a successive-halving one (``halving.rungs``,
which is above it); ``local_exec.execute`` chooses between the two.

The executor never samples, groups or slices: it runs exactly the sub-batches the plan lists,
each as ``batched_program``'s init, then train and evaluate per evaluation chunk, over
(padded) samples x replicates (``runner.CompiledRunner``), or, with several devices, the same
programs with the sample axis split across them (``sharding``). Programs compile ahead in a
pool of threads while earlier entries train (``programs``): before each sub-batch the
executor tells the runner what runs next, in its own run order (``schedule.uses``).

Several workers (``exec`` on several machines, array-job shards, Ray tasks) may run one plan
into one sweep directory: a worker runs an entry only while it holds the entry's claim
(``storage.claims``), so no entry runs in two places at once.

A stop (SIGINT, SIGTERM: ``hyperlax.exec.stopping``) is acted on at ``stopping.check()``: between
entries, while waiting for a compile, between evaluation chunks, and before each file.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

import jax

from hyperlax.exec import stopping
from hyperlax.plan.format import Entry, Plan
from hyperlax.exec.checkpoints import files as checkpoint_files
from hyperlax.exec.checkpoints.snapshots import EntryCheckpoints
from hyperlax.exec.halving.job import RungJob
from hyperlax.exec.outputs import EntryResult, write_entry
from hyperlax.exec.progress import Progress
from hyperlax.exec.runner import CompiledRunner
from hyperlax.exec.schedule import checkpointed, entry_steps, uses
from hyperlax.storage.atomic import make_dirs, storage_error
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT, ClaimInfo, ClaimLost, EntryClaim, \
    WaitForOthers
from hyperlax.storage.sweepdir import Owner, SweepDir


def enable_compile_cache(directory: Path) -> None:
    """Persist compiled XLA programs on disk, so a resumed or repeated exec skips compiles.
    ``directory`` is the user's (--compile-cache) or the default cache: its own root. JAX
    writes the cache files in it itself."""
    make_dirs(directory, within=directory)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@dataclass
class ExecReport:
    total: int
    skipped: int
    ran: int
    compiles: int             # programs compiled
    compile_seconds: float    # wall time during which a compile ran
    env_steps: int
    seconds: float
    by_others: int = 0        # entries another worker completed while this exec ran
    train_seconds: float = 0.0    # in training calls (init and chunks), summed over sub-batches
    compile_waited: float = 0.0   # of compile_seconds, what training waited for (not hidden)
    compile_in_tasks: bool = False  # Ray: compile_seconds is summed over parallel tasks

    @property
    def compile_hidden(self) -> float:
        """Compile wall time spent while training ran anyway (compile ahead)."""
        return max(0.0, self.compile_seconds - self.compile_waited)


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


def _started(sweep: SweepDir, entry_path: str) -> None:
    make_dirs(sweep.writable_entry_dir(entry_path), within=sweep.within)


def finished(sweep: SweepDir, owner: Owner, entry: Entry, redo: bool) -> bool:
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
                  claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
                  upcoming: Callable[[], Iterable[Entry]] | None = None,
                  rung: RungJob | None = None) -> Attempt:
    """Claim ``entry``, run it and write its outputs and marker, then release the claim. The
    one code path of every worker: plain exec, array-job shards and Ray tasks. A failed write
    raises StorageError; the entry stays unmarked. ``upcoming()``: the entries this worker
    runs after this one, in order (what to compile ahead, and what to keep compiled); None
    (a Ray task): keep every program compiled, for the worker's next tasks. ``rung``: with
    successive halving, how this rung's entries run (``halving.job.RungJob``).

    With ``plan.checkpoint_every``, the entry saves its training carry every that many
    evaluations (``checkpoints``), resumes from the last one saved, and removes them once its
    marker is written."""
    if finished(sweep, owner, entry, redo):
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
        if finished(sweep, owner, entry, redo):  # completed while we were getting here
            return Attempt("done")
        stopping.check()
        store = EntryCheckpoints(sweep.root, owner, entry, plan.checkpoint_every,
                                 runner.group, guard=claim.check) \
            if plan.checkpoint_every else None
        try:
            # the entry's directory exists from its first training call: one interrupted
            # before its first file (or without checkpoints) reads as partial, not pending
            began = functools.partial(_started, sweep, entry.path)
            result = run_entry(runner, entry, upcoming, store=store, rung=rung, began=began)
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
        if store is not None:
            store.remove()  # the marker vouches for the outputs now
    steps = sum((sb.steps_per_run if sb.steps_now is None else sb.steps_now) * len(sb.samples)
                for sb in result.sub_batches)
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


def run_entries(plan: Plan, sweep: SweepDir, owner: Owner, runner: CompiledRunner,
                progress: Progress | None, selected: list[Entry], redo: Collection[str],
                claim_timeout: float, log: Callable[[str], None] | None,
                rung: RungJob | None = None) -> ExecReport:
    """Run the incomplete entries of ``selected`` (the plan's, or a rung's: ``rung``), in
    order, waiting at the end for those other workers hold."""
    todo, skipped = pending_in(plan, sweep, selected, redo, progress,
                               1.0 if rung is None else rung.share)
    if plan.checkpoint_every and skipped:  # what a kill right after a marker left behind
        pending = {e.path for e in todo}
        for entry in selected:
            if entry.path not in pending:
                checkpoint_files.remove(sweep.root, entry.path)
    started = time.perf_counter()
    env_steps = ran = by_others = 0
    train_seconds = 0.0
    queue: deque[Entry] = deque(todo)
    waiting: list[tuple[Entry, ClaimInfo | None]] = []
    wait = WaitForOthers(claim_timeout, log, stopping.sleep)

    def upcoming() -> Iterable[Entry]:
        return itertools.chain(queue, (e for e, _ in waiting))

    while queue or waiting:
        stopping.check()  # between entries
        if not queue:
            wait(f"waiting for {len(waiting)} entries that other workers are running "
                 f"({describe_holders([h for _, h in waiting])}); their claims are taken "
                 f"over if they stop for {claim_timeout:g}s")
            queue, waiting = deque(e for e, _ in waiting), []
        entry = queue.popleft()
        if progress:
            progress.entry_started(entry)
        attempt = attempt_entry(sweep, runner, plan, owner, entry, redo=entry.path in redo,
                                claim_timeout=claim_timeout, upcoming=upcoming, rung=rung)
        if attempt.outcome == "busy":
            waiting.append((entry, attempt.holder))
        elif attempt.outcome == "done":
            by_others += 1
            if log:
                log(f"{entry.path}: completed by another worker")
        else:
            ran += 1
            env_steps += attempt.steps
            # this exec's training only: a resumed sub-batch's total includes the run before
            train_seconds += sum(sb.train_seconds if sb.train_seconds_now is None
                                 else sb.train_seconds_now for sb in attempt.result.sub_batches)
            if progress:
                progress.entry_done(entry, attempt.result, attempt.steps)
    seconds = time.perf_counter() - started
    return ExecReport(total=len(selected), skipped=skipped, ran=ran,
                      compiles=runner.compiles, compile_seconds=runner.compile_seconds,
                      env_steps=env_steps, seconds=seconds, by_others=by_others,
                      train_seconds=train_seconds,
                      compile_waited=runner.programs.waited_seconds)


def run_entry(runner: CompiledRunner, entry: Entry,
              upcoming: Callable[[], Iterable[Entry]] | None = None,
              store: EntryCheckpoints | None = None,
              rung: RungJob | None = None,
              began: Callable[[], None] | None = None) -> EntryResult:
    """Run ``entry``'s sub-batches; before each, tell the runner what runs from there on. Each
    starts from its checkpoint in ``store`` if it has a usable one, else (a later rung of
    successive halving) from the carries the rung before left, else from scratch. ``began()``:
    called before each sub-batch's first training call (once its program is compiled)."""
    start = time.perf_counter()
    subs = []
    end = runner.calls if rung is None else rung.end_calls
    for i, sb in enumerate(entry.sub_batches):
        if upcoming is not None:
            runner.want(uses(itertools.chain([entry], upcoming()), runner.num_devices,
                             first=i))
        width = runner.key(sb.structure, sb.width).width
        snapshot = None
        if store is not None:
            snapshot = store.load(i, width, runner.carry_like(sb.structure, sb.width), end)
        if snapshot is None and rung is not None:
            snapshot = rung.start(sb, width)
        saving = {} if store is None else {
            "save": functools.partial(store.save, i, width),
            "due": functools.partial(store.due, end=end,
                                     last_sub_batch=i == len(entry.sub_batches) - 1)}
        subs.append(runner.run(sb.structure, sb.samples, sb.width, start=snapshot,
                               end_calls=end, keep_carry=rung is not None and rung.keep_carry,
                               training=began, explored=rung.values if rung else None, **saving))
    return EntryResult(sub_batches=subs, seconds=time.perf_counter() - start,
                       explored=rung.values if rung else None)


def selected_entries(plan: Plan, entries: list[int] | None) -> list[Entry]:
    """The plan's entries of indices ``entries`` (a shard's), or all of them."""
    return plan.entries if entries is None else [plan.entries[i] for i in entries]


def pending_in(plan: Plan, sweep: SweepDir, selected: list[Entry], redo: Collection[str],
               progress: Progress | None, share: float = 1.0) -> tuple[list[Entry], int]:
    """(those of ``selected`` still to run, how many are skipped), and start the progress
    display. ``share``: of each entry's budget, the part this run trains (a rung's)."""
    todo = [e for e in selected if e.path in redo or sweep.state(e.path) != "done"]
    skipped = len(selected) - len(todo)
    if progress:
        saved = checkpointed(plan, sweep.root, todo, redo)  # resumed: those steps are trained
        progress.start(total=len(selected), skipped=skipped,
                       steps_total=int(sum(entry_steps(plan, e, saved.get(e.path))
                                           for e in todo) * share))
    return todo, skipped


