"""The search use case (``hyperlax search`` and the seed system's ``optuna-hp-search``): validate
the manifest and its space, take the search directory (or refuse one that holds something
else), then run the rounds with stop handling: a SIGINT or SIGTERM ends it within seconds with
128 + the signal number and the command that resumes it.

    <output root>/
      search.json            the study file: every round's asks and tells (the truth)
      search.lock            flock'd while a search runs here: one search per directory
      optuna_study.db        Optuna's SQLite storage, a mirror of it (optuna-dashboard)
      rounds/round_0000.toml, rounds/round_0000/, ...   each round as a sweep (round_plan)

Module level stays JAX-free and Optuna-free; the validation runs before either is imported.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import ExecOptions
from hyperlax.manifest.distributions import to_builtins
from hyperlax.manifest.resolve import Resolved, resolve_text
from hyperlax.search import study_file as sf
from hyperlax.search.rounds import SearchSpec
from hyperlax.search.spaces import space_problems
from hyperlax.search.verify import check_told
from hyperlax.exec.stopping import Stopped, signal_name

Echo = Callable[..., None]
SEARCH_ID_FORMAT = "hyperlax-search-1"


@dataclass(frozen=True)
class SearchRequest:
    manifest_text: str
    manifest_name: str              # for messages, and the rounds' recipe lookup
    manifest_dir: Path              # where relative recipe and samples paths start
    resume: str                     # the command line that resumes this search
    output_root: Path | None = None
    storage: str | None = None      # URL or file name in the search dir; None: the default
    compile_cache: Path | None = None
    options: ExecOptions = field(default_factory=ExecOptions)  # how each round's exec runs
    quiet: bool = False
    on_claimed: Callable[[Path], None] | None = None  # called once the search dir is ours


def run_search(request: SearchRequest, echo: Echo) -> int:
    """0 when every trial was asked and told; 128 + signal when stopped (the resume hint was
    printed). Bad input raises HyperlaxError (status 2), a disk error StorageError (1)."""
    with stopping.handling():
        stopping.set_hint(lambda signum: f"interrupted by {signal_name(signum)}; resume "
                                         f"with: {request.resume}")
        try:
            status = _search(request, echo)
            if not status:
                stopping.check()
            return status
        except Stopped as stop:
            stopping.announce(lambda line: echo(line, err=True))
            return 128 + stop.signum


def resolve_search(request: SearchRequest) -> tuple[Resolved, SearchSpec]:
    """The validated search: every located problem of the manifest and its space, before
    Optuna or JAX is imported."""
    resolved = resolve_text(request.manifest_text, request.manifest_name,
                            request.manifest_dir, for_search=True)
    problems = space_problems(resolved.space, resolved.sources)
    if problems:
        raise HyperlaxError(request.manifest_name, problems)
    from hyperlax.search.round_plan import sample_problem

    search = resolved.manifest.search
    spec = SearchSpec(
        method=search.method, seed=resolved.settings.seed, trials=search.trials,
        per_round=search.trials_per_round,
        startup=search.startup_trials if search.startup_trials is not None
        else search.trials_per_round,
        metrics=[o.metric for o in search.objectives],
        directions=[o.direction for o in search.objectives],
        space=resolved.space, problem=sample_problem(resolved))
    return resolved, spec


def search_id(resolved: Resolved, spec: SearchSpec) -> str:
    """The sha256 of what determines the asks and the training: settings (not the output
    root, nor num_samples, which is the budget), constants, the space, the sampler and the
    objectives. ``trials`` is left out, so raising it continues a finished search."""
    settings = msgspec.structs.replace(resolved.settings, output_root="", num_samples=0)
    # as a plan leaves them out: a hyperparameter added since at its behaviour-preserving
    # default must not make a search started by an older hyperlax "another search"
    constants = {n: v for n, v in resolved.constants.items()
                 if not (n in resolved.table and resolved.table[n].omitted(v))}
    basis = [SEARCH_ID_FORMAT, settings, constants,
             {n: to_builtins(d) for n, d in resolved.space.items()}, spec.method,
             spec.per_round, spec.startup, spec.metrics, spec.directions]
    return hashlib.sha256(msgspec.msgpack.encode(basis)).hexdigest()


def _search(request: SearchRequest, echo: Echo) -> int:
    from hyperlax.search import sampler

    resolved, spec = resolve_search(request)
    stopping.check()
    sampler.require_optuna()
    root = request.output_root or Path(resolved.settings.output_root)
    url = sampler.storage_url(root, request.storage)
    _refuse_foreign(root)
    lock = _lock(root)  # one search per directory at a time
    try:
        return _locked(request, resolved, spec, root, url, echo)
    finally:
        os.close(lock)


def _locked(request: SearchRequest, resolved: Resolved, spec: SearchSpec, root: Path,
            url: str, echo: Echo) -> int:
    """The search, its directory locked: claim it, then replay, ask, train and tell."""
    import optuna

    from hyperlax.search import sampler
    from hyperlax.search.round_plan import RoundRunner
    from hyperlax.search.rounds import run_rounds

    study_name = resolved.manifest.search.study_name or resolved.settings.name
    record = _claim(root, resolved, spec, study_name, optuna.__version__)
    check_told(root, record)  # before the told values are replayed into the sampler
    if request.on_claimed is not None:
        request.on_claimed(root)
    log = (lambda line: None) if request.quiet else (lambda line: echo(line, err=True))
    # after the claim: its file may live in the root
    file = sampler.mirror_file(root, request.storage)
    storage = sampler.open_storage(url, file, root, lambda line: echo(line, err=True))
    path = root / sf.STUDY_FILE

    def hint(signum: int) -> str:
        return (f"interrupted by {signal_name(signum)}: {record.told()} of {spec.trials} "
                f"trials told; resume with: {request.resume}")

    stopping.set_hint(hint)
    log(f"search {resolved.settings.name}: {spec.method} on "
        + ", ".join(f"{m} ({d})" for m, d in zip(spec.metrics, spec.directions))
        + f", {spec.trials} trials in rounds of {spec.per_round}; {record.asked()} asked and "
          f"{record.told()} told so far; in {root}")
    runner = RoundRunner(resolved=resolved, manifest_recipe=resolved.manifest.sweep.recipe,
                         root=root, record=record, save=lambda r: sf.write_study(path, r),
                         metrics=spec.metrics, resume=request.resume,
                         compile_cache=request.compile_cache, options=request.options,
                         quiet=request.quiet, echo=echo, hint=hint)

    def told(study: Any) -> None:
        stopping.check()
        if file is not None:  # a link planted while the search runs is refused, too
            sampler.check_mirror_file(file, root)
        sampler.mirror(study, storage, study_name, lambda line: echo(line, err=True))

    try:
        status = run_rounds(spec, record, runner.save, runner, told, log)
    finally:
        runner.close()
    if not status and not request.quiet:
        echo(f"search complete: {record.asked()} trials in {len(record.rounds)} rounds; "
             f"next: hyperlax report {root}")
    return status


LOCK_FILE = "search.lock"


def _refuse_foreign(root: Path) -> None:
    """A directory that is neither new, empty, nor a search's is refused untouched."""
    if (root / sf.STUDY_FILE).exists() or (root / sf.STUDY_FILE).is_symlink():
        return
    if root.exists() and (not root.is_dir() or any(p.name != LOCK_FILE
                                                   for p in root.iterdir())):
        raise HyperlaxError(str(root), "is not empty and is not a hyperlax search directory "
                                       f"(no {sf.STUDY_FILE}); nothing was touched",
                            "pass --output-root with a new or empty directory")


def _lock(root: Path) -> int:
    """An exclusive lock on <root>/search.lock, so two searches never write one study file.
    The kernel releases it when the process ends, however it ends."""
    import fcntl

    from hyperlax.search.round_plan import target
    from hyperlax.storage.atomic import make_dirs, open_lock_file, storage_error

    path = target(root, LOCK_FILE)
    try:
        make_dirs(root, within=root)
        fd = open_lock_file(path, within=root)
    except OSError as exc:
        raise storage_error(path, exc, "cannot create the search's lock file",
                            "run the same command again") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise HyperlaxError(str(root), "another hyperlax search is running in this directory",
                            "wait for it to end (or stop it), then run this again") from None
    return fd


def _claim(root: Path, resolved: Resolved, spec: SearchSpec, study_name: str,
           optuna_version: str) -> sf.StudyFile:
    """The study file of the search in ``root``: read (and checked to be this search's), or
    created in a new or empty directory. Anything else in ``root`` is refused untouched."""
    path = root / sf.STUDY_FILE
    sid = search_id(resolved, spec)
    if path.exists() or path.is_symlink():
        record = sf.read_study(path)
        if record.search_id != sid:
            raise HyperlaxError(str(root), f"holds another search ({record.search_id[:12]}, "
                                           f"not this one, {sid[:12]}): its settings, space, "
                                           "sampler or objectives differ; nothing was touched",
                                "pass --output-root with a new directory, or restore the "
                                "manifest that search began with")
        if record.trials != spec.trials:
            record.trials = spec.trials
            sf.write_study(path, record)
        return record
    record = sf.StudyFile(
        format=sf.FORMAT, format_version=sf.FORMAT_VERSION, search_id=sid,
        name=resolved.settings.name, study_name=study_name, method=spec.method,
        objectives=[{"metric": m, "direction": d}
                    for m, d in zip(spec.metrics, spec.directions)],
        seed=spec.seed, trials=spec.trials, trials_per_round=spec.per_round,
        optuna_version=optuna_version,
        space={n: to_builtins(d) for n, d in resolved.space.items()})
    sf.write_study(path, record)
    return record
