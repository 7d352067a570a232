"""Told values checked against the curves their round wrote: what the study file says each
trial was told must be what its round's entries (summary.json, curves.npz) give, recomputed
as the round's tell computed it, before a report ranks by it or a resumed search replays it.
JAX-free, Optuna-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError
from hyperlax.search.study_file import STUDY_FILE, TAMPERED_HINT, RoundRecord, StudyFile


def check_told(root: Path, record: StudyFile) -> None:
    """A located HyperlaxError (exit 2) naming every told record of ``record`` (the search in
    ``root``) that its round's results do not give; nothing when all agree. Rounds not told
    yet are not checked."""
    from hyperlax.search.objectives import metric_name

    metrics = [metric_name(o["metric"]) or o["metric"] for o in record.objectives]
    problems: list[tuple[str, str]] = []
    for k, rnd in enumerate(record.rounds):
        if rnd.told is None:
            continue
        expected = told_by_curves(root, rnd, metrics)
        for j, (told, truth) in enumerate(zip(rnd.told, expected)):
            where = f"rounds[{k}].told[{j}]"
            if truth is None:
                problems.append((where, f"trial {told.number} is told, but round {rnd.index}'s "
                                        f"entries under {rnd.path} hold no result for it"))
            elif (told.state, told.values, told.note) != (truth.state, truth.values,
                                                          truth.note):
                problems.append((where, f"trial {told.number} is told {_said(told, metrics)}, "
                                        f"but round {rnd.index}'s curves give "
                                        f"{_said(truth, metrics)}"))
    if problems:
        raise HyperlaxError(str(root / STUDY_FILE), problems,
                            f"{TAMPERED_HINT}; the values a trial is told are recomputed from "
                            "its round's entries, which are the truth")


def told_by_curves(root: Path, rnd: RoundRecord, metrics: list[str]) -> list[Any]:
    """What round ``rnd``'s trials are told by its entries (a ``Told`` or None per trial)."""
    from hyperlax.plan.format import results_id
    from hyperlax.plan.read import read_plan
    from hyperlax.report.results import collect
    from hyperlax.search.objectives import told_of
    from hyperlax.search.round_plan import target
    from hyperlax.storage.sweepdir import PLAN_COPY

    if all(t.sample is None for t in rnd.trials):   # nothing trained: failed by their values
        return told_of(rnd.trials, [], metrics, rnd.index)
    directory = target(root, rnd.path)
    fix = (f"restore round {rnd.index}'s directory {directory} (its told values are checked "
           "against its curves), or start the search in a new output root")
    if rnd.plan_id is None or rnd.results_id is None:
        raise HyperlaxError(str(root / STUDY_FILE), [(f"rounds[{rnd.index}]",
                                                      "is told but records no plan")],
                            TAMPERED_HINT)
    if not (directory / PLAN_COPY).is_file():
        raise HyperlaxError(str(directory), f"round {rnd.index} is told, but its plan is gone",
                            fix)
    plan, pid = read_plan(directory / PLAN_COPY)
    if results_id(plan) != rnd.results_id:
        raise HyperlaxError(str(directory / PLAN_COPY),
                            f"is not the plan the study file records for round {rnd.index} "
                            f"(results id {rnd.results_id[:12]})", fix)
    collected = collect(plan, pid, directory, str(directory / PLAN_COPY), directory)
    return told_of(rnd.trials, collected.samples, metrics, rnd.index)


def _said(told: Any, metrics: list[str]) -> str:
    if told.state != "complete":
        return f"failed ({told.note})"
    return ", ".join(f"{m} {v!r}" for m, v in zip(metrics, told.values or []))
