"""What a trial is told, computed from its results as ``hyperlax report`` reads them
(``report.results.SampleResult``). Every metric is a mean over the trial's replicates:

- ``final_return``, ``best_return``: summary.json's, which exec computed per replicate;
- ``auc``: computed here from the curves, as successive halving ranks by it.

Each metric is defined once, in ``hyperlax.plan.metrics``.

A trial that diverged (a non-finite return in any replicate) is told as failed: Optuna's
samplers leave failed trials out of their model rather than reading a made-up number.

The seed system's objective names are accepted as aliases: peak_performance (best_return),
final_performance (final_return), normalized_auc and auc_at_budget (auc).
"""

from __future__ import annotations

import math
from typing import Any, get_args

from hyperlax.plan.format import RungMetric
from hyperlax.plan.metrics import sample_metric

METRICS: tuple[str, ...] = get_args(RungMetric)   # the manifest's ObjectiveMetric
SEED_ALIASES = {"peak_performance": "best_return", "final_performance": "final_return",
                "normalized_auc": "auc", "auc_at_budget": "auc"}


def metric_name(name: str) -> str | None:
    """Our metric for ``name`` (ours or a seed alias), or None."""
    return name if name in METRICS else SEED_ALIASES.get(name)


def metric_value(result: Any, metric: str) -> float | None:
    """One metric of a finished sample (a ``SampleResult``); None when it has none."""
    if result.summary is None:
        return None
    if metric == "auc":
        return None if result.returns is None else sample_metric(result.returns, metric)
    value = result.summary.get(metric)
    return value if value is not None and math.isfinite(value) else None


def outcome(result: Any, metrics: list[str]) -> tuple[str, list[float] | None, str | None]:
    """(state, values, note) to tell Optuna about one trained trial: ("complete", [one value
    per metric], None), or ("fail", None, why)."""
    if result.status == "diverged":
        step = (result.summary or {}).get("diverged_at_step")
        return "fail", None, f"diverged at step {step}"
    if result.status != "ok":
        return "fail", None, f"no result ({result.status})"
    values = [metric_value(result, m) for m in metrics]
    if any(v is None for v in values):
        return "fail", None, "no finite value of " + ", ".join(
            m for m, v in zip(metrics, values) if v is None)
    return "complete", values, None


def told_of(trials: list[Any], samples: list[Any], metrics: list[str],
            index: int) -> list[Any]:
    """What each asked trial of round ``index`` is told, from its round's results
    (``samples``: a ``SampleResult`` per sample of its plan, in order): a ``Told``, or None where its sample has
    no result. Used to tell a trained round and to check a recorded one (``search.verify``)."""
    from hyperlax.search.study_file import Told

    told: list[Any] = []
    for trial in trials:
        if trial.sample is None:
            told.append(Told(number=trial.number, round=index, state="fail",
                             note=trial.problem))
            continue
        result = samples[trial.sample] if 0 <= trial.sample < len(samples) else None
        if result is None or result.status == "missing":
            told.append(None)
            continue
        state, values, note = outcome(result, metrics)
        told.append(Told(number=trial.number, round=index, state=state, values=values,
                         note=note))
    return told
