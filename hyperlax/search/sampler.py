"""Optuna itself: importing it (an optional extra), the seeded sampler, the in-memory study
that drives the search, and the SQLite mirror users open with optuna-dashboard.

Why an in-memory study drives and SQLite only mirrors: a resumed search replays its recorded
rounds into a fresh sampler so that the sampler's random state is exactly where the
uninterrupted search had it; replaying into a database that already holds those trials would
add them twice. The mirror is rebuilt from the study file whenever it disagrees with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from hyperlax.errors import HyperlaxError
from hyperlax.search.study_file import STUDY_FILE

DEFAULT_STORAGE_FILE = "optuna_study.db"   # the seed system's name, beside the round files


def require_optuna() -> Any:
    """The optuna module, quiet; a clear error naming the extra when it is not installed."""
    try:
        import optuna
    except ImportError:
        raise HyperlaxError("hyperlax search", "needs Optuna, which is not installed",
                            "pip install 'hyperlax[optuna]'  (or pip install 'optuna>=4')"
                            ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna warns that some options are experimental; they are chosen on purpose here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def new_study(method: str, seed: int, per_round: int, startup: int,
              directions: list[str]) -> Any:
    """The in-memory study with its seeded sampler. TPE: multivariate for one objective (the
    variant reported better there; Optuna 5's default too), constant liar so that the trials
    of one round, asked before any is told, spread out instead of piling up. NSGA-II: one
    round is one generation."""
    optuna = require_optuna()
    seed32 = seed % 2**32  # numpy's RandomState takes 32 bits
    with _quiet():
        if method == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed32, n_startup_trials=startup,
                                                 multivariate=len(directions) == 1,
                                                 constant_liar=True)
        else:
            sampler = optuna.samplers.NSGAIISampler(seed=seed32, population_size=per_round)
        return optuna.create_study(sampler=sampler, directions=directions)


def ask(study: Any, distributions: dict[str, Any]) -> Any:
    with _quiet():
        return study.ask(fixed_distributions=distributions)


def tell(study: Any, trial: Any, state: str, values: list[float] | None,
         attrs: dict[str, Any]) -> None:
    optuna = require_optuna()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    with _quiet():
        if state == "complete":
            study.tell(trial, values)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def mirror_file(root: Path, given: str | None) -> Path | None:
    """The mirror's file in the search directory (``given`` a bare file name, or None: the
    default), or None when ``given`` is a URL the user chose."""
    from hyperlax.storage.paths import path_problem

    name = DEFAULT_STORAGE_FILE if given is None else given
    if "://" in name:
        return None
    problem = path_problem(name)
    if problem or "/" in name:
        raise HyperlaxError("--storage", f"{name!r}: a file name in the search directory or a "
                                         "URL such as sqlite:///path/to/study.db"
                                         + (f" ({problem})" if problem else ""))
    return root / name


def storage_url(root: Path, given: str | None) -> str:
    """The mirror's URL: ``given`` when it is a URL (``sqlite:///...``, any SQLAlchemy URL);
    a bare file name is a file in the search directory, as the seed system had it; None: the
    default file there. A file in the search directory is checked to stay there."""
    file = mirror_file(root, given)
    if file is None:
        return str(given)
    check_mirror_file(file, root)
    return f"sqlite:///{file.resolve()}"


SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")   # SQLite writes these beside its database


def check_mirror_file(file: Path, root: Path) -> None:
    """Refuse a mirror in the search directory that SQLite would write through a symbolic link
    or into something that is not a file: Optuna opens it itself, so the writer's check is
    made here, before every opening and every update. Exit status 2, nothing written."""
    from hyperlax.storage.atomic import describe_kind, inside_root

    fix = (f"remove it (hyperlax rebuilds the mirror from {STUDY_FILE}), or pass --storage "
           "sqlite:///path/to/study.db to keep the mirror elsewhere")
    for path in (file, *(file.with_name(file.name + side) for side in SQLITE_SIDE_FILES)):
        if path.is_symlink():
            raise HyperlaxError(str(path), "is a symbolic link: hyperlax search keeps Optuna's "
                                           "mirror as a plain file in the search directory and "
                                           "never writes through a link", fix)
        if path.exists() and not path.is_file():
            raise HyperlaxError(str(path), f"is {describe_kind(path)}, not Optuna's SQLite "
                                           "file", fix)
    inside_root(file, root, "write Optuna's mirror")


def _disk_full(exc: BaseException) -> bool:
    """SQLite's 'database or disk is full' (SQLITE_FULL) or an ENOSPC, however wrapped."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if (isinstance(cause, OSError) and cause.errno == errno.ENOSPC) or \
                "disk is full" in str(cause):
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
    return False


def _full(where: Path | str) -> Exception:
    from hyperlax.storage.atomic import storage_error

    return storage_error(Path(where), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                         "cannot write Optuna's mirror of the study file",
                         "run the same command again")


def open_storage(url: str, file: Path | None = None, root: Path | None = None,
                 log: Callable[[str], None] = lambda line: None) -> Any:
    """Optuna's database at ``url`` (created if missing). A mirror ``file`` in the search
    directory ``root`` that cannot be opened (damaged) is removed with a warning and made
    anew; the search then fills it from the study file. A full disk is a StorageError (exit
    1); a URL the user gave that cannot be opened a HyperlaxError naming --storage."""
    optuna = require_optuna()
    if file is not None and root is not None:
        check_mirror_file(file, root)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        if _disk_full(exc):
            raise _full(file or url) from None
        if file is None or root is None:
            raise HyperlaxError("--storage", f"cannot open Optuna storage {url}: "
                                             f"{type(exc).__name__}: {exc}",
                                "pass --storage sqlite:///path/to/study.db, or leave it out "
                                f"for {DEFAULT_STORAGE_FILE} in the search directory") from None
        reason = (str(exc).splitlines() or [""])[0]
        log(f"warning: {file}: Optuna's mirror of the study file cannot be opened "
            f"({type(exc).__name__}: {reason}); rebuilding it from {STUDY_FILE}")
    from hyperlax.storage.atomic import remove_file

    try:
        for path in (file, *(file.with_name(file.name + side) for side in SQLITE_SIDE_FILES)):
            remove_file(path, within=root)
        return optuna.storages.RDBStorage(url)
    except OSError as exc:
        from hyperlax.storage.atomic import storage_error

        raise storage_error(file, exc, "cannot rebuild Optuna's mirror of the study file",
                            "run the same command again") from None
    except Exception as exc:
        if _disk_full(exc):
            raise _full(file) from None
        raise HyperlaxError(str(file), f"cannot rebuild Optuna's mirror of the study file: "
                                       f"{type(exc).__name__}: {exc}",
                            f"move {file} out of the way and run the same command again"
                            ) from None


def mirror(study: Any, storage: Any, name: str, log: Callable[[str], None]) -> None:
    """Make the stored study ``name`` hold exactly ``study``'s finished trials, in order:
    append the ones it lacks; rebuild it when it holds anything else (it is a mirror; the
    study file is the truth). Failures are reported, not fatal."""
    optuna = require_optuna()
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    try:
        stored = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                     directions=study.directions)
        have = stored.get_trials(deepcopy=False)
        agrees = stored.directions == study.directions and len(have) <= len(finished) and all(
            (a.params, a.values, a.state) == (b.params, b.values, b.state)
            for a, b in zip(have, finished))
        if not agrees:
            log(f"note: Optuna study {name!r} in the storage differed from the study file; "
                "rebuilt it from the study file")
            optuna.delete_study(study_name=name, storage=storage)
            stored = optuna.create_study(storage=storage, study_name=name,
                                         directions=study.directions)
            have = []
        stored.add_trials(finished[len(have):])
    except Exception as exc:  # the mirror never stops a search, but for a full disk
        if _disk_full(exc):
            raise _full(name) from None
        log(f"warning: could not update Optuna storage study {name!r}: "
            f"{type(exc).__name__}: {exc}")
