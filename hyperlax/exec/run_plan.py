"""The exec use case: run a plan file into its sweep directory, as ``hyperlax exec`` and the
seed system's ``sweep-hp-samples`` both do.

In order: read and verify the plan, check the manifest it came from (``--manifest``), refuse a
sweep directory holding another plan's results, select this shard's entries, scan complete
entries for corruption, and only then import JAX: set up the compile cache and run the entries
here or as Ray tasks. SIGINT and SIGTERM stop it within seconds with the resume command
(``hyperlax.exec.stopping``).

Module level stays JAX-free (the CLI imports this module when ``exec`` runs, and refusals must
come before the JAX import). Output goes through ``echo`` (``click.echo``'s signature): the
caller owns the streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import ExecOptions, default_compile_cache, exec_command_line, \
    remember_compile_cache
from hyperlax.plan.format import Plan
from hyperlax.plan.read import read_plan_file
from hyperlax.storage.atomic import StorageError
from hyperlax.exec.stopping import Stopped, signal_name
from hyperlax.storage.sweepdir import Owner, SweepDir, sweep_root

Echo = Callable[..., None]


@dataclass(frozen=True)
class ExecRequest:
    """What an exec command line asks for."""

    plan_file: Path
    output_root: Path | None = None
    compile_cache: Path | None = None
    manifest: Path | None = None       # refuse unless the plan was compiled from this text
    redo_corrupt: bool = False
    quiet: bool = False
    options: ExecOptions = field(default_factory=ExecOptions)

    def command_line(self, redo_corrupt: bool = False) -> str:
        """This exec as a command line, for hints: every option that was given, and
        ``--redo-corrupt`` when it was given or ``redo_corrupt`` asks for it."""
        return exec_command_line(self.plan_file, self.output_root, self.options,
                                 compile_cache=self.compile_cache, manifest=self.manifest,
                                 redo_corrupt=self.redo_corrupt or redo_corrupt,
                                 quiet=self.quiet)


@dataclass
class ExecRun:
    """What the exec in progress knows so far, filled in as it goes: what a stop reports."""

    request: ExecRequest
    plan: Plan | None = None
    plan_id: str = ""
    sweep: SweepDir | None = None
    entries: list[int] | None = None   # this shard's entry indices; None: all

    def completion(self) -> str:
        """': N of M entries complete' (this shard's), or '' before the plan is known."""
        if self.plan is None or self.sweep is None:
            return ""
        if self.plan.halving is not None:
            return self._rung_completion()
        indices = self.entries
        mine = self.plan.entries if indices is None else [self.plan.entries[i] for i in indices]
        try:
            done = sum(self.sweep.state(e.path) == "done" for e in mine)
        except OSError:
            return ""
        return f": {done} of {len(mine)} entries complete"

    def _rung_completion(self) -> str:
        """': rung R of N, K of M entries complete' for a successive-halving sweep."""
        from hyperlax.exec.halving.decide import rung_views

        try:
            views = rung_views(self.plan, self.sweep.root, Owner.of(self.plan, self.plan_id))
            known = [v for v in views if v.entries is not None]
            view = known[-1]
            done = sum(self.sweep.state(e.path) == "done" for e in view.entries or [])
        except (OSError, HyperlaxError):
            return ""
        stage = "interval" if self.plan.pbt is not None else "rung"
        return (f": {stage} {view.rung} of {len(views)} (from 0), {done} of "
                f"{len(view.entries or [])} entries complete")

    def hint(self, signum: int) -> str:
        """The line a stop prints."""
        return (f"interrupted by {signal_name(signum)}{self.completion()}; "
                f"resume with: {self.request.command_line()}")


def run_exec(request: ExecRequest, echo: Echo) -> int:
    """Run the request; the exit status: 0 when every selected entry is complete, 128 + the
    signal number when stopped by SIGINT or SIGTERM (after printing how to resume). Bad input
    raises HyperlaxError (status 2), a disk error or corrupt entries left alone StorageError
    (status 1).

    Stop handling (``hyperlax.exec.stopping``) is installed for the duration unless the caller did
    (the exec command does, first thing): a stop is acted on at the safe points of exec's own
    code (``stopping.check``), or, when the main thread is stuck in a compile or a training
    call, by the watcher thread, which ends a command line process itself with the same hint."""
    run = ExecRun(request)
    with stopping.handling():
        stopping.set_hint(run.hint)
        try:
            _exec(run, echo)
            stopping.check()  # a stop that came after the last safe point is not lost
        except Stopped as stop:
            stopping.announce(lambda line: echo(line, err=True))
            if run.sweep is not None:
                remember_compile_cache(run.sweep.root, run.request.compile_cache)
            return 128 + stop.signum
    return 0


def _exec(run: ExecRun, echo: Echo) -> None:
    request, options = run.request, run.request.options
    stopping.check()
    plan, pid, plan_bytes = read_plan_file(request.plan_file)
    if request.manifest is not None:
        check_manifest_unchanged(request.manifest, plan, request.plan_file)
    stopping.check()
    root = sweep_root(plan, request.output_root)
    owner = Owner.of(plan, pid)
    run.plan, run.plan_id, run.sweep = plan, pid, SweepDir(root)
    run.entries = entries = options.entries(len(plan.entries))
    run.sweep.check_owner(owner)  # refuse a foreign directory before importing JAX
    if options.shard is not None and not request.quiet:
        echo(_shard_line(plan, options.shard, len(entries or [])), err=True)
    mine = plan.entries if entries is None else [plan.entries[i] for i in entries]
    known = mine  # with successive halving, every rung's entries decided so far
    if plan.halving is not None and root.exists():
        from hyperlax.exec.halving.decide import rung_views

        known = [e for v in rung_views(plan, root, owner) for e in v.entries or []]
    corrupt = run.sweep.corrupt_entries(known, owner) if root.exists() else {}
    stopping.check()
    for path, problems in corrupt.items():
        for problem in problems:
            echo(f"warning: {path}: {problem}", err=True)
        echo(f"warning: {path}: " + ("complete but corrupt; running it again (--redo-corrupt)"
                                     if request.redo_corrupt else
                                     "complete but corrupt; left alone"), err=True)
    redo = set(corrupt) if request.redo_corrupt else set()
    progress = _announce(plan, run.sweep, mine, redo, request)
    # a halving plan is split by --shard in every rung (runtime.halving), not by entry list
    selection = entries if plan.halving is None else None
    report = _dispatch(plan, pid, plan_bytes, root, request, selection, redo, echo, progress)
    if report.ran and not getattr(report, "compile_in_tasks", False):
        _measured(plan, report)
    if not request.quiet:
        for line in summary(report, root):
            echo(line)
    if corrupt and not request.redo_corrupt:
        raise StorageError(str(root), f"{len(corrupt)} complete entries have files that changed "
                                      "after completion; they were left alone: "
                                      + ", ".join(corrupt),
                           "look at them (hyperlax status --verify), then re-run them with: "
                           f"{request.command_line(redo_corrupt=True)}")


def _measured(plan: Plan, report: Any) -> None:
    """This run's throughput, for the cost estimates of later sweeps (``exec.throughput``)."""
    from hyperlax.exec import throughput
    from hyperlax.exec.provenance import record

    throughput.record(plan.settings.algorithm, plan.settings.env, report.env_steps,
                      report.train_seconds, report.compiles, report.compile_seconds,
                      record(plan.settings.env))


def _shard_line(plan: Plan, shard: tuple[int, int], count: int) -> str:
    """exec's line naming this shard's part of the plan."""
    k, n = shard
    if plan.halving is None:
        return (f"shard {k}/{n}: {count} of {len(plan.entries)} entries "
                "(entry i belongs to shard i mod N)")
    # later rungs' entries depend on the decisions: the rule, and rung 0's count
    return (f"shard {k}/{n}: in every rung, the rung's entry k when k mod N = K ({count} of "
            f"rung 0's {len(plan.entries)} entries); each rung is decided once every shard "
            "has run its part, so all N shards must run at the same time")


def _announce(plan: Plan, sweep: SweepDir, mine: list[Any], redo: set[str],
              request: ExecRequest) -> Any:
    """The progress display, and exec's first line (before JAX is imported): what will run and
    what will compile."""
    from hyperlax.exec.progress import Progress
    from hyperlax.exec.schedule import checkpointed, describe, programs_needed

    options = request.options
    todo = [e for e in mine if e.path in redo or sweep.state(e.path) != "done"]
    devices = int(options.devices) if (options.devices or "").isdigit() else 1
    progress = Progress(quiet=request.quiet)
    on_ray = options.ray_address is not None
    workers = 0 if on_ray else options.compile_workers  # Ray tasks compile when needed
    if plan.halving is not None:
        line = _halving_line(plan, todo, len(mine) - len(todo), devices, workers)
    else:
        line = describe(plan, todo, len(mine) - len(todo), devices, workers,
                        checkpointed(plan, sweep.root, todo, redo))
    if on_ray:
        line = line.replace("(compiling when needed)", "(in the Ray tasks)")
    progress.announce(line, programs=len(programs_needed(todo, devices)))
    return progress


def _halving_line(plan: Plan, todo: list[Any], skipped: int, devices: int,
                  workers: int) -> str:
    """exec's first line for a successive-halving plan: its rungs, and rung 0's work."""
    from hyperlax.exec.schedule import programs_needed

    halving = plan.halving
    total = plan.settings.num_evaluations
    rungs = " -> ".join(f"{r.samples}" for r in halving.rungs)
    programs = len(programs_needed(todo, devices))
    how = (f"{workers} compile worker{'s' if workers != 1 else ''}" if workers
           else "compiling when needed")
    if plan.pbt is not None:  # every interval runs the same samples, on the same programs
        return (f"exec: population-based training in {len(halving.rungs)} intervals of "
                f"{plan.pbt.interval} evaluations (of {total}), exploit and explore by "
                f"{halving.metric} between them; interval 0: {len(todo)} of "
                f"{len(todo) + skipped} entries to run, {programs} program"
                f"{'s' if programs != 1 else ''} to compile ({how})")
    # later rungs' entries (and programs) depend on the decisions, not known yet
    return (f"exec: successive halving in {len(halving.rungs)} rungs ({rungs} samples, to "
            + ", ".join(f"{r.evaluations}" for r in halving.rungs) + f" of {total} "
            f"evaluations, top 1/{halving.eta} by {halving.metric}); rung 0: {len(todo)} of "
            f"{len(todo) + skipped} entries to run, {programs} program"
            f"{'s' if programs != 1 else ''} to compile ({how})")


def summary(report: Any, root: Path) -> list[str]:
    """The end-of-run summary: entries, env steps per second overall and while training, and
    what compiling cost: its wall time, its share of the run, and how much of it training hid."""
    others = f", {report.by_others} done by other workers" if report.by_others else ""
    rate = report.env_steps / report.seconds if report.seconds > 0 else 0.0
    training = (f", {report.env_steps / report.train_seconds:,.0f} while training "
                f"({report.train_seconds:.1f}s)") if report.train_seconds > 0 else ""
    lines = [f"{report.ran} entries run, {report.skipped} skipped{others}; "
             f"{report.env_steps:,} env steps in {report.seconds:.1f}s: {rate:,.0f} steps/s "
             f"overall{training}; results in {root}"]
    programs = f"{report.compiles} program{'' if report.compiles == 1 else 's'}"
    if getattr(report, "compile_in_tasks", False):
        lines.append(f"compile: {programs}, {report.compile_seconds:.1f}s "
                     "summed over the Ray tasks")
    elif report.compiles or report.compile_seconds:
        share = report.compile_seconds / report.seconds if report.seconds > 0 else 0.0
        lines.append(f"compile: {programs} in {report.compile_seconds:.1f}s "
                     f"of wall time ({share:.0%} of the run); {report.compile_hidden:.1f}s of "
                     f"it hidden behind training, {report.compile_waited:.1f}s waited for")
    return lines


def _dispatch(plan: Plan, pid: str, plan_bytes: bytes, root: Path, request: ExecRequest,
              entries: list[int] | None, redo: set[str], echo: Echo, progress: Any) -> Any:
    """Import JAX, set up the compile cache, and run the entries here or on Ray."""
    from hyperlax.exec.executor import enable_compile_cache
    from hyperlax.exec.local_exec import execute

    stopping.check()  # importing JAX takes seconds
    options, quiet = request.options, request.quiet
    cache = request.compile_cache or default_compile_cache()
    try:
        enable_compile_cache(cache)
    except OSError as exc:
        raise StorageError(str(cache), f"cannot create the compile cache: {exc.strerror}",
                           "pass --compile-cache with a writable directory") from None
    stopping.check()
    log = None if quiet else (lambda text: echo(text, err=True))
    if options.ray_address is not None:
        from hyperlax.exec.ray_exec import execute_ray

        return execute_ray(plan, pid, plan_bytes, root, address=options.ray_address,
                           cpus=options.ray_cpus, gpus=options.ray_gpus,
                           retries=options.ray_retries, devices=options.devices,
                           claim_timeout=options.claim_timeout,
                           compile_cache=request.compile_cache,
                           progress=progress, entries=entries, redo=redo, log=log,
                           shard=options.shard)
    from hyperlax.exec.sharding import resolve_devices

    try:
        devices = resolve_devices(options.devices)
    except ValueError as exc:
        raise HyperlaxError("exec", [("--devices", str(exc))],
                            "on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                            "makes N host devices") from None
    stopping.check()
    return execute(plan, pid, plan_bytes, root, progress=progress,
                   entries=entries, redo=redo, devices=devices,
                   claim_timeout=options.claim_timeout, log=log,
                   compile_workers=options.compile_workers, shard=options.shard)


def check_manifest_unchanged(manifest: Path, plan: Plan, plan_file: Path) -> None:
    """Refuse unless ``manifest``'s text is, byte for byte, the one ``plan`` was compiled from."""
    from hyperlax.manifest.resolve import read_manifest, sha256_text

    actual = sha256_text(read_manifest(manifest))  # read exactly as the compiler reads it
    if actual != plan.manifest_sha256:
        raise HyperlaxError(str(manifest), f"changed after {plan_file} was compiled from it "
                                           f"(sha256 {actual[:12]}, the plan records "
                                           f"{plan.manifest_sha256[:12]}); nothing was run",
                            f"see what differs with: hyperlax check {manifest} {plan_file}; "
                            f"then re-plan with: hyperlax plan {manifest} -o {plan_file}")
