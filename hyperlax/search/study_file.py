"""The study file, ``<search dir>/search.json``: the source of truth of a search.

Per round it records what Optuna asked (trial numbers, Optuna's params, the hyperparameter
values trained, the sample index in the round's plan or why the trial could not run), the
round plan's ids, and what Optuna was told. It is rewritten atomically after every step (asked,
planned, told), so a crash at any moment leaves the last complete step on disk. Resuming
replays it: the same sampler with the same seed, asked again and told the recorded values,
must ask the recorded params (``rounds.replay``). Optuna's own SQLite storage is a mirror
of it, for optuna-dashboard. JSON, so a person can review it; floats round-trip exactly.
JAX-free, Optuna-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import decode_json, read_bytes
from hyperlax.storage.atomic import atomic_write, json_bytes, storage_error

FORMAT = "hyperlax-search"
FORMAT_VERSION = 2      # 2: every told record names its round (0.2.0 wrote 1, still read)
READABLE_VERSIONS = (1, 2)
STUDY_FILE = "search.json"
MAX_BYTES = 256 << 20


class TrialRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: int                  # Optuna's trial number
    params: dict[str, Any]       # as Optuna asked them (its own representation)
    values: dict[str, Any]       # the hyperparameter values they stand for
    sample: int | None = None    # its sample index in the round's plan; None: not trained
    problem: str | None = None   # why it could not be trained (a rule between values)


class Told(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: int                         # the trial it was told for
    round: int | None = None            # the round that trained it (None: format version 1)
    state: Literal["complete", "fail"]
    values: list[float] | None = None   # one per objective, when complete
    note: str | None = None             # why it failed


class RoundRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    index: int
    path: str                        # the round's sweep directory, relative to the search dir
    trials: list[TrialRecord]
    plan_id: str | None = None       # set once its plan is compiled and its directory claimed
    results_id: str | None = None
    told: list[Told] | None = None   # set once Optuna was told: the round is complete


class StudyFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: str
    format_version: int
    search_id: str               # what determines the asks (search.trials aside)
    name: str
    study_name: str
    method: str
    objectives: list[dict[str, str]]   # metric and direction, in order
    seed: int
    trials: int                  # the budget the last run aimed at
    trials_per_round: int
    optuna_version: str          # of the run that asked the first round
    space: dict[str, dict[str, Any]] = {}   # the distributions searched, as in the manifest
    rounds: list[RoundRecord] = []

    def asked(self) -> int:
        """Trials asked, in every round."""
        return sum(len(r.trials) for r in self.rounds)

    def told(self) -> int:
        """Trials told, in every round."""
        return sum(len(r.told or []) for r in self.rounds)


def read_study(path: Path) -> StudyFile:
    data = read_bytes(path, "study file", MAX_BYTES, within=path.parent)
    study = decode_json(data, path, "study file", StudyFile,
                        "restore it from a backup, or start the search in a new output root")
    if study.format != FORMAT or study.format_version not in READABLE_VERSIONS:
        raise HyperlaxError(str(path), f"is {study.format} version {study.format_version}; "
                                       f"this hyperlax reads {FORMAT} versions "
                                       + ", ".join(map(str, READABLE_VERSIONS)),
                            "a newer hyperlax wrote it: upgrade hyperlax to continue or report "
                            "this search" if study.format == FORMAT
                            and study.format_version > FORMAT_VERSION else
                            "pass the directory of a hyperlax search")
    problems = told_problems(study)
    if problems:
        raise HyperlaxError(str(path), problems, TAMPERED_HINT)
    return study


TAMPERED_HINT = ("the study file was edited or damaged: restore it from a backup, or start "
                 "the search in a new output root")


def told_problems(study: StudyFile) -> list[tuple[str, str]]:
    """Told records that are not bound to their round's trials, located: a round index out of
    place, a told trial number (or round) other than the one asked in that place, a trial that
    could not train told as complete. Values are checked against the curves by
    ``search.verify``; this is what the file alone shows."""
    problems = []
    for k, rnd in enumerate(study.rounds):
        if rnd.index != k:
            problems.append((f"rounds[{k}].index", f"is {rnd.index}, not {k}"))
        if rnd.told is None:
            continue
        if len(rnd.told) != len(rnd.trials):
            problems.append((f"rounds[{k}].told", f"{len(rnd.told)} told records for "
                                                  f"{len(rnd.trials)} asked trials"))
        for j, (asked, told) in enumerate(zip(rnd.trials, rnd.told)):
            where = f"rounds[{k}].told[{j}]"
            if told.number != asked.number:
                problems.append((where, f"tells trial {told.number}, but round {rnd.index} "
                                        f"asked trial {asked.number} there"))
            if told.round is not None and told.round != rnd.index:
                problems.append((where, f"says round {told.round}, but is in round "
                                        f"{rnd.index}"))
            if told.state == "complete" and (asked.sample is None or told.values is None):
                problems.append((where, f"trial {told.number} is told complete, but "
                                        + ("it could not train" if asked.sample is None
                                           else "has no values")))
    return problems


def write_study(path: Path, study: StudyFile) -> None:
    """Atomically, in the current format (a version 1 file read is written as version 2: its
    told records gain their round); a stop's emergency exit waits for the write to finish."""
    study.format_version = FORMAT_VERSION
    for rnd in study.rounds:
        for told in rnd.told or []:
            told.round = rnd.index
    data = json_bytes(msgspec.to_builtins(study))
    try:
        with stopping.writing():
            atomic_write(path, data, within=path.parent)
    except OSError as exc:
        raise storage_error(path, exc, "cannot write the study file",
                            "run the same command again") from None
