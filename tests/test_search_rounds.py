"""The ask / train / tell loop and its replay, with a stand-in for training (a function of the
configuration): the same seed and results ask the same configurations; a search stopped after
a round, or in the middle of one, or cut back to its last complete step, resumes to the same
study as an uninterrupted one; a study file that no longer replays is refused; configurations
that cannot run are told as failed without training; the SQLite mirror follows the study file.
Optuna, no JAX."""

from __future__ import annotations

import math

import msgspec
import pytest

from hyperlax.errors import HyperlaxError
from hyperlax.manifest.distributions import Distribution
from hyperlax.search.rounds import SearchSpec, run_rounds
from hyperlax.search.study_file import RoundRecord, StudyFile, Told

optuna = pytest.importorskip("optuna")

SPACE = {
    "actor_lr": msgspec.convert({"dist": "log_uniform", "low": 1e-5, "high": 1e-2},
                                Distribution),
    "gamma": msgspec.convert({"dist": "uniform", "low": 0.9, "high": 0.999}, Distribution),
    "update_epochs": msgspec.convert({"dist": "int_uniform", "low": 1, "high": 8},
                                     Distribution),
    "layers": msgspec.convert({"dist": "categorical", "values": [[8], [16, 16], [32]]},
                              Distribution),
}


def spec(method: str = "tpe", seed: int = 0, trials: int = 12, per_round: int = 4,
         metrics: tuple[str, ...] = ("final_return",), problem=lambda values: None
         ) -> SearchSpec:
    return SearchSpec(method=method, seed=seed, trials=trials, per_round=per_round,
                      startup=per_round, metrics=list(metrics),
                      directions=["maximize"] * len(metrics), space=SPACE, problem=problem)


def empty_record(s: SearchSpec) -> StudyFile:
    return StudyFile(format="hyperlax-search", format_version=1, search_id="x", name="t",
                     study_name="t", method=s.method, objectives=[], seed=s.seed,
                     trials=s.trials, trials_per_round=s.per_round,
                     optuna_version=optuna.__version__)


def on_disk(record: StudyFile) -> StudyFile:
    """What reading the study file back gives (JSON both ways)."""
    return msgspec.json.decode(msgspec.json.encode(record), type=StudyFile)


def score(values: dict) -> list[float]:
    """A stand-in for training: a smooth function of the configuration, peaked inside."""
    lr = math.log10(values["actor_lr"])
    base = -(lr + 3.0) ** 2 - 40 * (values["gamma"] - 0.97) ** 2 + 0.1 * values["update_epochs"]
    return [base + len(values["layers"]), base * 0.5 - values["update_epochs"]]


class Trainer:
    def __init__(self, metrics: int = 1, stop_at: int | None = None):
        self.metrics, self.stop_at, self.trained = metrics, stop_at, []

    def __call__(self, rnd: RoundRecord):
        if rnd.index == self.stop_at:
            return 130  # stopped by SIGINT while the round trained
        self.trained.append(rnd.index)
        return [Told(number=t.number, state="complete",
                     values=score(t.values)[:self.metrics])
                if t.sample is not None else Told(number=t.number, state="fail", note=t.problem)
                for t in rnd.trials]


def run(s: SearchSpec, record: StudyFile, trainer: Trainer, saved: list | None = None,
        told_hook=lambda study: None) -> int:
    def save(r: StudyFile) -> None:
        if saved is not None:
            saved.append(on_disk(r))
    return run_rounds(s, record, save, trainer, told_hook, lambda line: None)


def no_curves(monkeypatch) -> None:
    """A study of the stand-in trainer has no rounds on disk whose curves the report could
    check its told values against (tests/test_hostile_search.py checks them on real rounds):
    the report reads it unchecked."""
    monkeypatch.setattr("hyperlax.report.study.check_told", lambda root, record: None)


def asks(record: StudyFile) -> list[dict]:
    return [t.params for r in record.rounds for t in r.trials]


@pytest.mark.parametrize("method,metrics", [("tpe", ("final_return",)),
                                            ("nsgaii", ("final_return", "auc"))])
def test_same_seed_and_results_ask_the_same_configurations(method, metrics):
    s = spec(method, metrics=metrics)
    a, b = empty_record(s), empty_record(s)
    assert run(s, a, Trainer(len(metrics))) == 0
    assert run(s, b, Trainer(len(metrics))) == 0
    assert len(a.rounds) == 3 and all(r.told for r in a.rounds)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    other = empty_record(spec(method, seed=1, metrics=metrics))
    run(spec(method, seed=1, metrics=metrics), other, Trainer(len(metrics)))
    assert asks(other) != asks(a)
    # the model is used: the rounds after the first ask differently than with other results
    flat = empty_record(s)
    run(s, flat, type("Flat", (Trainer,), {"__call__": lambda self, rnd: [
        Told(number=t.number, state="complete", values=[0.0] * len(metrics))
        for t in rnd.trials]})())
    assert asks(flat)[:4] == asks(a)[:4] and asks(flat)[4:] != asks(a)[4:]


@pytest.mark.parametrize("method", ["tpe", "nsgaii"])
def test_stopped_mid_round_then_resumed_gives_the_uninterrupted_study(method):
    s = spec(method)
    whole = empty_record(s)
    run(s, whole, Trainer())
    saved: list[StudyFile] = []
    first = empty_record(s)
    assert run(s, first, Trainer(stop_at=1), saved) == 130
    stopped = saved[-1]
    assert [r.told is not None for r in stopped.rounds] == [True, False]
    trainer = Trainer()
    assert run(s, on_disk(stopped), trainer, saved) == 0
    assert trainer.trained == [1, 2]  # round 1 trained on resume, round 0 only replayed
    assert msgspec.json.encode(saved[-1]) == msgspec.json.encode(whole)


def test_resumed_from_every_recorded_step_gives_the_uninterrupted_study():
    s = spec()
    saved: list[StudyFile] = []
    whole = empty_record(s)
    run(s, whole, Trainer(), saved)
    for step in saved[:-1]:  # a kill right after any write of the study file
        resumed = on_disk(step)
        run(s, resumed, Trainer())
        assert msgspec.json.encode(resumed) == msgspec.json.encode(whole)


def test_raising_the_budget_continues_where_the_search_ended():
    s = spec(trials=12)
    whole = empty_record(s)
    run(s, whole, Trainer())
    short = empty_record(spec(trials=8))
    run(spec(trials=8), short, Trainer())
    assert len(short.rounds) == 2
    run(s, short, Trainer())
    assert msgspec.json.encode(short.rounds) == msgspec.json.encode(whole.rounds)


def test_a_study_file_that_no_longer_replays_is_refused():
    s = spec()
    record = empty_record(s)
    run(s, record, Trainer())
    tampered = on_disk(record)
    tampered.rounds[1].trials[2].params["gamma"] = 0.95
    with pytest.raises(HyperlaxError) as caught:
        run(s, tampered, Trainer())
    text = str(caught.value)
    assert "rounds[1].trials[2]: replaying the search, Optuna asked trial 6" in text
    assert "the Optuna version" in text and optuna.__version__ in text
    with pytest.raises(HyperlaxError):  # another seed replays other asks
        run(spec(seed=5), on_disk(record), Trainer())


def test_configurations_that_cannot_run_are_told_failed_without_training():
    s = spec(problem=lambda v: "update_epochs > 6 is refused" if v["update_epochs"] > 6
             else None)
    record = empty_record(s)
    run(s, record, Trainer())
    trials = [t for r in record.rounds for t in r.trials]
    told = {t.number: t for r in record.rounds for t in r.told}
    bad = [t for t in trials if t.values["update_epochs"] > 6]
    assert bad, "the seed should ask some refused configuration"
    for t in trials:
        assert (t.sample is None) == (t in bad)
        assert told[t.number].state == ("fail" if t in bad else "complete")
    for r in record.rounds:  # samples of a round are numbered densely: the round's plan rows
        samples = [t.sample for t in r.trials if t.sample is not None]
        assert samples == list(range(len(samples)))


def test_the_sqlite_mirror_follows_the_study_file(tmp_path):
    from hyperlax.search import sampler

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = sampler.open_storage(url)
    notes: list[str] = []
    studies = []

    def mirror(study):
        studies.append(study)
        sampler.mirror(study, storage, "t", notes.append)

    s = spec()
    record = empty_record(s)
    run(s, record, Trainer(), told_hook=mirror)
    stored = optuna.load_study(study_name="t", storage=url)
    assert [t.params for t in stored.trials] == asks(record)
    assert [t.values for t in stored.trials] == [t.values for r in record.rounds
                                                 for t in r.told]
    assert stored.trials[5].user_attrs == {"round": 1, "sample": 1}
    assert notes == []
    stored.add_trial(optuna.trial.create_trial(value=1.0))  # something the file does not hold
    sampler.mirror(studies[-1], storage, "t", notes.append)
    assert len(notes) == 1 and "rebuilt it from the study file" in notes[0]
    assert [t.params for t in optuna.load_study(study_name="t", storage=url).trials] == \
        asks(record)


@pytest.mark.parametrize("method,metrics", [("tpe", ("final_return",)),
                                            ("nsgaii", ("final_return", "auc"))])
def test_report_of_a_study_history_best_and_importance(tmp_path, monkeypatch, method, metrics):
    from hyperlax.manifest.distributions import to_builtins
    from hyperlax.report.study import dominates, write_search_report
    from hyperlax.search.study_file import write_study

    s = spec(method, trials=24, per_round=8, metrics=metrics)
    record = empty_record(s)
    record.objectives = [{"metric": m, "direction": "maximize"} for m in metrics]
    record.space = {n: to_builtins(d) for n, d in SPACE.items()}
    run(s, record, Trainer(len(metrics)))
    write_study(tmp_path / "search.json", record)
    no_curves(monkeypatch)
    report = write_search_report(tmp_path, None, top_k=3, plots=True)
    doc = report.document
    told = [t for r in record.rounds for t in r.told]
    firsts = [t.values[0] for t in told]
    assert [h["best_so_far"] for h in doc["history"]] == [
        max(firsts[:8]), max(firsts[:16]), max(firsts)]
    assert doc["best"][0]["values"]["final_return"] == max(firsts)
    if len(metrics) == 1:
        assert len(doc["best"]) == 3
    else:  # the Pareto front: no told trial dominates a member, every other one is dominated
        front = {b["trial"] for b in doc["best"]}
        for t in told:
            dominated = any(dominates(o.values, t.values, ["maximize"] * 2) for o in told)
            assert (t.number in front) == (not dominated)
    for metric in metrics:  # PED-ANOVA: every searched hyperparameter, importances sum to 1
        scores = doc["importance"][metric]
        assert set(scores) == set(SPACE) and abs(sum(scores.values()) - 1) < 1e-6
    assert "[fixed]" in doc["best_fixed_toml"]  # no round plans here: the searched values
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "history.png", "search_report.json", "trials.csv"]
    assert "importance for final_return (PED-ANOVA" in report.text


def test_the_search_report_warns_when_rounds_ran_in_different_environments(tmp_path,
                                                                           monkeypatch):
    import json

    from hyperlax.manifest.distributions import to_builtins
    from hyperlax.report.study import write_search_report
    from hyperlax.search.study_file import write_study
    from hyperlax.storage.provenance import PROVENANCE_FILE
    from hyperlax.storage.sweepdir import MARKER

    s = spec(trials=8, per_round=4)
    record = empty_record(s)
    record.objectives = [{"metric": "final_return", "direction": "maximize"}]
    record.space = {n: to_builtins(d) for n, d in SPACE.items()}
    run(s, record, Trainer())
    write_study(tmp_path / "search.json", record)
    no_curves(monkeypatch)
    same = write_search_report(tmp_path, None, top_k=3, plots=False)
    assert same.document["environment_warning"] is None  # no entries on disk: nothing to say
    for rnd, jax in zip(record.rounds, ["0.10.2", "0.10.3"]):  # each round's one entry
        entry = tmp_path / rnd.path / "ppo" / "batch_00000"
        entry.mkdir(parents=True)
        (entry / MARKER).write_text("{}")
        (entry / PROVENANCE_FILE).write_text(json.dumps({"jax": jax, "backend": "cpu"}))
    report = write_search_report(tmp_path, None, top_k=3, plots=False)
    assert "jax 0.10.2 vs 0.10.3" in report.document["environment_warning"]
    assert "rounds' entries were produced in 2 different environments" in report.text
