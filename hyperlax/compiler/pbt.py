"""Population-based training in the plan: the manifest's ``[pbt]`` checked and lowered into
intervals (the stages a staged training runs: ``Training.halving``'s rungs, every sample in
every one) and the ``Pbt`` settings exec applies between them. JAX-free.

The population is each structure's samples: exploit copies a training carry, whose shapes are
its structure's, so members of one population share a structure; a sweep that samples
structural hyperparameters runs one population per structure. A member is a sample with all
its seeds (``seeds_per_sample`` replicates): it is ranked by the mean over them, and a copy
takes every replicate's carry, replicate by replicate.
"""

from __future__ import annotations

import math
from typing import Any

from hyperlax.compiler.halving import DEFAULT_METRIC
from hyperlax.hyperparams.declare import value_problems
from hyperlax.manifest.format import did_you_mean
from hyperlax.plan.format import (Halving, Pbt, Rung, Sample, Settings, chunk_group,
                                  interval_ends, populations)

MAX_INTERVALS = 1000


def pbt_problems(manifest: Any, settings: Settings, table: dict[str, Any],
                 space: dict[str, Any]) -> list[tuple[str, str]]:
    """The located problems of the manifest's ``[pbt]`` that need no samples."""
    pbt, sweep = manifest.pbt, manifest.sweep
    if pbt is None:
        return []
    problems: list[tuple[str, str]] = []
    if sweep.rungs is not None or sweep.eta is not None or sweep.rung_metric is not None:
        problems.append(("pbt", "population-based training does not combine with successive "
                                "halving (sweep.rungs): both decide between stages of "
                                "training; remove [pbt] or rungs, eta and rung_metric"))
    if settings.sampling == "saltelli":
        problems.append(("sweep.sampling", "\"saltelli\" draws a sensitivity design whose "
                                           "blocks must train unchanged; use \"qmc_sobol\" or "
                                           "\"random\" with [pbt]"))
    total = settings.num_evaluations
    group = chunk_group(total)
    if pbt.interval < 1:
        problems.append(("pbt.interval", f"{pbt.interval} is not a number of evaluations; use "
                                         f"1 to {total - 1}"))
    elif pbt.interval >= total:
        problems.append(("pbt.interval", f"{pbt.interval} evaluations is not shorter than "
                                         f"training (num_evaluations = {total}), so no member "
                                         "would ever be exploited; use at most "
                                         f"{total - 1}, or raise num_evaluations"))
    elif pbt.interval % group:
        problems.append(("pbt.interval", f"with num_evaluations = {total} the runtime trains "
                                         f"{group} evaluation chunks per call and can stop "
                                         f"only between calls; use a multiple of {group}"))
    elif len(interval_ends(pbt.interval, total)) > MAX_INTERVALS:
        problems.append(("pbt.interval", f"{len(interval_ends(pbt.interval, total))} intervals "
                                         f"is more than {MAX_INTERVALS}; use a longer interval"))
    if not 0 < pbt.quantile_fraction <= 0.5:
        problems.append(("pbt.quantile_fraction", f"{pbt.quantile_fraction} is outside (0, 0.5]:"
                                                  " the bottom fraction copies the top one, so "
                                                  "they cannot overlap; Ray's default is 0.25"))
    if not pbt.perturbation_factors:
        problems.append(("pbt.perturbation_factors", "is empty; Ray's default is [1.2, 0.8]"))
    for i, factor in enumerate(pbt.perturbation_factors):
        if not (math.isfinite(factor) and factor > 0):
            problems.append((f"pbt.perturbation_factors[{i}]", f"{factor} is not a positive "
                                                               "number; a factor multiplies a "
                                                               "value, e.g. 1.2 or 0.8"))
    if not 0 <= pbt.resample_probability <= 1:
        problems.append(("pbt.resample_probability", f"{pbt.resample_probability} is not a "
                                                     "probability in [0, 1]"))
    if pbt.schedule is None:
        problems += _explore_problems(pbt.explore, table, space)
    else:
        problems += _schedule_problems(pbt.explore, pbt.schedule, table, space,
                                       len(interval_ends(max(pbt.interval, 1), total)))
    return problems


def _schedule_problems(names: list[str], schedule: list[dict[str, Any]],
                       table: dict[str, Any], space: dict[str, Any],
                       intervals: int) -> list[tuple[str, str]]:
    """A replayed schedule: one row per interval, each a legal value of every scheduled
    scalar hyperparameter, none of them sampled (the schedule sets them)."""
    problems = []
    for i, name in enumerate(names):
        where = f"pbt.explore[{i}]"
        if name not in table:
            problems.append((where, f"unknown hyperparameter {name!r}"
                                    f"{did_you_mean(name, table)}"))
        elif table[name].role == "structural":
            problems.append((where, f"{name!r} is structural: a schedule can change only "
                                    "scalar hyperparameters during training"))
        elif name in space:
            problems.append((where, f"{name!r} is scheduled, so it cannot be sampled too; "
                                    "remove it from [space]"))
    if len(schedule) != intervals:
        problems.append(("pbt.schedule", f"has {len(schedule)} rows for {intervals} intervals; "
                                         "give one table of values per interval"))
    for k, row in enumerate(schedule):
        where = f"pbt.schedule[{k}]"
        if sorted(row) != sorted(names):
            problems.append((where, f"must give exactly the explore names {sorted(names)}; "
                                    f"has {sorted(row)}"))
        problems += value_problems({n: v for n, v in row.items() if n in table}, table, where)
    return problems


def _explore_problems(explore: list[str], table: dict[str, Any],
                      space: dict[str, Any]) -> list[tuple[str, str]]:
    if not explore:
        return [("pbt.explore", "names no hyperparameter; list those PBT may change, e.g. "
                                "[\"actor_lr\"]")]
    problems = []
    seen: set[str] = set()
    for i, name in enumerate(explore):
        where = f"pbt.explore[{i}]"
        if name in seen:
            problems.append((where, f"{name!r} is listed twice"))
        seen.add(name)
        if name not in table:
            problems.append((where, f"unknown hyperparameter {name!r}"
                                    f"{did_you_mean(name, table)}"))
        elif table[name].role == "structural":
            problems.append((where, f"{name!r} is structural: it shapes the network or the "
                                    "arrays a member's training carries, so a member could not "
                                    "take another's weights with a new value; only scalar "
                                    "hyperparameters can be explored (hyperlax show lists each "
                                    "one's role)"))
        elif name not in space:
            problems.append((where, f"{name!r} is not sampled: explore perturbs a value within "
                                    "its distribution's bounds and resamples from it; add it "
                                    "to [space]"))
    return problems


def population_problems(samples: list[Sample]) -> list[tuple[str, str]]:
    """A population of one cannot exploit anyone: every structure needs two samples."""
    lonely = sorted(s for s, members in populations(samples).items() if len(members) < 2)
    if not lonely:
        return []
    which = ("the sweep has one sample" if len(samples) == 1 else
             f"structures {lonely[:8]} have one sample each" if len(lonely) > 1 else
             f"structure {lonely[0]} has one sample")
    return [("pbt", f"{which}: a population (the samples of one structure) needs two or more "
                    "to copy from; raise num_samples, or pin the structural hyperparameters "
                    "in [fixed] so the samples share one structure")]


def pbt_training(manifest: Any, settings: Settings) -> tuple[Halving, Pbt]:
    """The intervals as stages (every sample in each) and the PBT settings, for a manifest
    whose ``[pbt]`` has no problems."""
    pbt = manifest.pbt
    n = settings.num_samples
    stages = Halving(metric=pbt.metric or DEFAULT_METRIC, eta=1,
                     rungs=[Rung(evaluations=e, samples=n)
                            for e in interval_ends(pbt.interval, settings.num_evaluations)])
    return stages, Pbt(interval=pbt.interval, quantile_fraction=pbt.quantile_fraction,
                       perturbation_factors=list(pbt.perturbation_factors),
                       resample_probability=pbt.resample_probability,
                       explore=sorted(pbt.explore),
                       schedule=None if pbt.schedule is None else
                       [dict(sorted(row.items())) for row in pbt.schedule])
