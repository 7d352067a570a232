"""The ask / train / tell loop, and the replay that resumes it.

A search is a sequence of rounds. In each, the sampler is asked for ``trials_per_round``
configurations before any of them is told (so the round trains as one vmapped plan), the round
is trained, and every trial is told its objective values (or that it failed). The study file
is written after the asks and after the tells.

Resuming replays: a fresh sampler with the same seed is asked again, round by round, and must
ask exactly the recorded params (otherwise the Optuna version or the space changed, and the
search cannot continue where it was); it is then told the recorded values. Its random state is
then where the uninterrupted search had it, so the next rounds ask the same configurations an
uninterrupted search would have asked. A round that was asked but not told is trained (exec
resumes its entries) and told, and the search goes on.

Training is passed in (``train``): the real one compiles and runs the round's plan
(``round_plan``); tests pass a function of the values, which makes the loop testable without
JAX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.manifest.distributions import Distribution
from hyperlax.search import sampler, spaces
from hyperlax.search.study_file import STUDY_FILE, RoundRecord, StudyFile, Told, TrialRecord

Train = Callable[[RoundRecord], "list[Told] | int"]   # an int: stopped, with that status


@dataclass(frozen=True)
class SearchSpec:
    """What determines the asks (besides the told values)."""

    method: str                        # tpe | nsgaii
    seed: int
    trials: int                        # the budget: configurations asked in all
    per_round: int
    startup: int                       # TPE's random start, in complete trials
    metrics: list[str]
    directions: list[str]
    space: dict[str, Distribution]     # name order
    problem: Callable[[dict[str, Any]], "str | None"]  # why values cannot train, or None

    def round_path(self, index: int) -> str:
        return f"rounds/round_{index:04d}"


def run_rounds(spec: SearchSpec, record: StudyFile, save: Callable[[StudyFile], None],
               train: Train, told_hook: Callable[[Any], None],
               log: Callable[[str], None]) -> int:
    """Replay ``record``'s rounds, then ask, train and tell new rounds until ``spec.trials``
    configurations were asked. 0 when done; a stop's status when ``train`` was stopped."""
    study = sampler.new_study(spec.method, spec.seed, spec.per_round, spec.startup,
                              spec.directions)
    distributions = spaces.distributions(spec.space)
    for rnd in record.rounds:
        stopping.check()
        trials = [sampler.ask(study, distributions) for _ in rnd.trials]
        _check_replay(rnd, trials, record)
        if rnd.told is None:
            log(f"round {rnd.index}: resuming its training")
            status = _train_and_tell(spec, study, rnd, trials, record, save, train, told_hook,
                                     log)
            if status:
                return status
        else:
            _tell(study, rnd, trials)
    if record.told():
        told_hook(study)  # the mirror holds every replayed trial (rebuilt if it was lost)
    if record.rounds and record.asked() >= spec.trials:
        log(f"all {record.asked()} trials asked and told")
    while record.asked() < spec.trials:
        stopping.check()
        count = min(spec.per_round, spec.trials - record.asked())
        trials = [sampler.ask(study, distributions) for _ in range(count)]
        index = len(record.rounds)
        rnd = RoundRecord(index=index, path=spec.round_path(index),
                          trials=_trial_records(spec, trials))
        record.rounds.append(rnd)
        save(record)
        first, last = trials[0].number, trials[-1].number
        skipped = sum(t.sample is None for t in rnd.trials)
        log(f"round {index}: asked trials {first}-{last} ({spec.method})"
            + (f"; {skipped} cannot run (told as failed)" if skipped else ""))
        status = _train_and_tell(spec, study, rnd, trials, record, save, train, told_hook, log)
        if status:
            return status
    return 0


def _trial_records(spec: SearchSpec, trials: list[Any]) -> list[TrialRecord]:
    records, sample = [], 0
    for trial in trials:
        values = spaces.to_values(trial.params, spec.space)
        problem = spec.problem(values)
        records.append(TrialRecord(number=trial.number, params=dict(trial.params),
                                   values=values, sample=None if problem else sample,
                                   problem=problem))
        sample += problem is None
    return records


def _train_and_tell(spec: SearchSpec, study: Any, rnd: RoundRecord, trials: list[Any],
                    record: StudyFile, save: Callable[[StudyFile], None], train: Train,
                    told_hook: Callable[[Any], None], log: Callable[[str], None]) -> int:
    told = train(rnd)
    if isinstance(told, int):
        return told
    if [t.number for t in told] != [t.number for t in rnd.trials]:
        raise RuntimeError(f"round {rnd.index}: told trials {[t.number for t in told]}, "
                           f"asked {[t.number for t in rnd.trials]}")
    stopping.check()  # a stop before the tell is recorded: the round is trained, tell on resume
    rnd.told = told
    _tell(study, rnd, trials)
    save(record)
    told_hook(study)
    log(round_line(rnd, record, spec.metrics, spec.directions))
    return 0


def _tell(study: Any, rnd: RoundRecord, trials: list[Any]) -> None:
    for trial, asked, told in zip(trials, rnd.trials, rnd.told or []):
        attrs: dict[str, Any] = {"round": rnd.index}
        if asked.sample is not None:
            attrs["sample"] = asked.sample
        if asked.problem or told.note:
            attrs["note"] = asked.problem or told.note
        sampler.tell(study, trial, told.state, told.values, attrs)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type: 1 is not 1.0 and not True, as Optuna keeps them apart."""
    return type(a) is type(b) and a == b


def _check_replay(rnd: RoundRecord, trials: list[Any], record: StudyFile) -> None:
    for k, (asked, trial) in enumerate(zip(rnd.trials, trials)):
        params = dict(trial.params)
        if trial.number == asked.number and params.keys() == asked.params.keys() and all(
                _same(params[n], asked.params[n]) for n in params):
            continue
        import optuna

        raise HyperlaxError(STUDY_FILE, [(f"rounds[{rnd.index}].trials[{k}]",
                                          f"replaying the search, Optuna asked trial "
                                          f"{trial.number} = {params}, but the study file "
                                          f"records trial {asked.number} = {asked.params}")],
                            "the recorded rounds cannot be replayed: the Optuna version (the "
                            f"search began with {record.optuna_version}, this is "
                            f"{optuna.__version__}) or the search space changed since; finish "
                            "it with that Optuna and manifest, or start it in a new output "
                            "root")


# --- what a round found ----------------------------------------------------------------------

def told_trials(record: StudyFile) -> list[tuple[int, Told]]:
    """(round index, told trial) of every told trial, in trial order."""
    return [(r.index, t) for r in record.rounds for t in r.told or []]


def better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def best_of(told: list[Told], directions: list[str]) -> Told | None:
    """The best complete trial by the first objective (ties: the earlier trial)."""
    best = None
    for t in told:
        if t.state == "complete" and t.values and math.isfinite(t.values[0]) and (
                best is None or better(t.values[0], best.values[0], directions[0])):
            best = t
    return best


def round_line(rnd: RoundRecord, record: StudyFile, metrics: list[str],
               directions: list[str]) -> str:
    told = rnd.told or []
    done = sum(t.state == "complete" for t in told)
    here = best_of(told, directions)
    so_far = best_of([t for _, t in told_trials(record)], directions)
    text = f"round {rnd.index}: told {len(told)} trials ({done} complete, " \
           f"{len(told) - done} failed)"
    if here is not None:
        text += f"; best {metrics[0]} {here.values[0]:.6g} (trial {here.number})"
    if so_far is not None:
        text += f"; best so far {so_far.values[0]:.6g} (trial {so_far.number})"
    return text
