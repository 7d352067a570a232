"""The benchmark use case: several sweeps planned up front, each into a sweep directory of its
own, then run one after another. A sweep already complete is skipped; a partial one resumes
(exec skips its completed entries), so running the same benchmark again finishes it.

Every manifest is compiled and every directory checked before anything runs: a bad manifest,
two sweeps sharing a directory, or a directory holding something else is refused (exit 2) with
nothing touched. A sweep that fails on disk (exit 1) does not stop the others; the benchmark
then ends with status 1. A stop (SIGINT, SIGTERM) ends it at once, with exec's status.
JAX-free at module level; ``run_all`` imports the runtime when it runs a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hyperlax.errors import HyperlaxError

Echo = Callable[..., None]


@dataclass
class Run:
    """One sweep of a benchmark."""

    label: str                        # the manifest it comes from, or the run's name
    root: Path                        # its sweep directory
    plan: Any
    plan_id: str
    manifest_text: str | None = None  # written as sweep.toml beside the plan copy, if given
    # The directory its sweep directory must stay in: the --output-root (or benchmark
    # directory) the user named, which hyperlax made ``root`` in; None when the user named
    # ``root`` itself (a manifest's own output_root).
    within: Path | None = None

    @property
    def base(self) -> Path:
        return self.within if self.within is not None else self.root

    def complete(self) -> bool:
        from hyperlax.storage.sweepdir import SweepDir

        sweep = SweepDir(self.root)
        return all(sweep.state(entry.path) == "done" for entry in self.plan.entries)


@dataclass
class Outcome:
    done: list[Run] = field(default_factory=list)       # complete now
    skipped: list[Run] = field(default_factory=list)    # were complete already
    failed: list[tuple[Run, str]] = field(default_factory=list)
    stopped: int = 0                                    # exec's status when a stop ended it

    @property
    def status(self) -> int:
        return self.stopped or (1 if self.failed else 0)


def plan_manifests(paths: list[Path], output_root: Path | None) -> tuple[list[Run], list[str]]:
    """Compile every manifest; each sweep runs into ``output_root/<sweep name>`` when given,
    else into its manifest's own output_root. (runs, compiler warnings)."""
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.plan.format import plan_id

    runs, warnings = [], []
    for path in paths:
        plan, found = compile_manifest(path)
        warnings += [f"{path}: {w}" for w in found]
        root = output_root / plan.settings.name if output_root is not None \
            else Path(plan.settings.output_root)
        runs.append(Run(str(path), root, plan, plan_id(plan), within=output_root))
    check_runs(runs)
    return runs, warnings


def check_runs(runs: list[Run]) -> None:
    """Refuse, before anything runs, a sweep directory that a symbolic link planted in the
    benchmark's directory leads out of it, two sweeps sharing a directory, and a directory
    that holds another plan's results or something that is not a sweep."""
    from hyperlax.storage.atomic import inside_root
    from hyperlax.storage.sweepdir import Owner, SweepDir

    for run in runs:
        inside_root(run.root, run.base, "run a sweep")
    seen: dict[Path, str] = {}
    for run in runs:
        key = run.root.resolve()
        if key in seen:
            raise HyperlaxError(run.label, f"would run into {run.root}, as {seen[key]} does",
                                "give the sweeps distinct names (or output roots)")
        seen[key] = run.label
    for run in runs:
        SweepDir(run.root).check_owner(Owner.of(run.plan, run.plan_id))


def run_all(runs: list[Run], echo: Echo, quiet: bool, compile_cache: Path | None = None,
            compile_workers: int | None = None, resume: str | None = None) -> Outcome:
    """Run every incomplete sweep in order, as ``hyperlax exec`` runs one. ``resume`` is the
    benchmark's own command line: what a stop prints, since exec's would resume one sweep."""
    from hyperlax.exec.options import ExecOptions
    from hyperlax.plan.format import encode_plan
    from hyperlax.exec.run_plan import ExecRequest, run_exec
    from hyperlax.storage.atomic import StorageError, atomic_write
    from hyperlax.storage.sweepdir import PLAN_COPY, Owner, SweepDir

    @dataclass(frozen=True)
    class SweepRequest(ExecRequest):
        """exec of one sweep, whose stop hint resumes the whole benchmark."""

        resume: str | None = None

        def command_line(self, redo_corrupt: bool = False) -> str:
            if self.resume is None:
                return super().command_line(redo_corrupt)
            if redo_corrupt:
                return f"{super().command_line(redo_corrupt=True)}; then: {self.resume}"
            return self.resume

    outcome = Outcome()
    for number, run in enumerate(runs, 1):
        where = f"[{number}/{len(runs)}] {run.label}"
        if run.root.exists() and run.complete():
            outcome.skipped.append(run)
            if not quiet:
                echo(f"{where}: complete in {run.root}, skipped")
            continue
        if not quiet:
            echo(f"{where}: {len(run.plan.samples)} samples, {len(run.plan.entries)} entries "
                 f"into {run.root}")
        try:
            SweepDir(run.root).claim(encode_plan(run.plan), Owner.of(run.plan, run.plan_id))
            if run.manifest_text is not None and not (run.root / "sweep.toml").exists():
                atomic_write(run.root / "sweep.toml", run.manifest_text.encode("utf-8"),
                             within=run.base)
            request = SweepRequest(plan_file=run.root / PLAN_COPY, output_root=run.root,
                                   compile_cache=compile_cache, quiet=quiet,
                                   options=ExecOptions(compile_workers_given=compile_workers),
                                   resume=resume)
            status = run_exec(request, echo)
        except StorageError as exc:  # this sweep's disk trouble; the others may still run
            outcome.failed.append((run, exc.render()))
            echo(f"error: {where}: {exc.render()}", err=True)
            continue
        except OSError as exc:
            outcome.failed.append((run, str(exc)))
            echo(f"error: {where}: {exc}", err=True)
            continue
        if status:
            outcome.stopped = status
            return outcome
        outcome.done.append(run)
    return outcome


def comparison_dir(roots: list[Path]) -> Path | None:
    """Where ``hyperlax compare`` writes when not told: ``compare/`` in the folder that holds
    the sweep directories (the deepest one above them all), beside its inputs rather than in
    whatever the current directory is. None when that would be the filesystem's root."""
    import os

    parents = [str(Path(r).resolve().parent) for r in roots]
    if not parents:
        return None
    common = Path(os.path.commonpath(parents))
    return None if common == Path(common.anchor) else common / "compare"


def summary_lines(runs: list[Run], outcome: Outcome) -> list[str]:
    complete = [r for r in runs if r in outcome.done or r in outcome.skipped]
    lines = [f"benchmark: {len(complete)} of {len(runs)} sweeps complete "
             f"({len(outcome.skipped)} were already), {len(outcome.failed)} failed"]
    lines += [f"  failed: {run.label} ({run.root})" for run, _ in outcome.failed]
    if len(complete) > 1:
        import shlex

        words = [str(r.root) for r in complete]
        out = comparison_dir([r.root for r in complete])
        words += ["-o", str(out)] if out is not None else []
        lines.append("compare them: hyperlax compare " + " ".join(map(shlex.quote, words)))
    return lines
