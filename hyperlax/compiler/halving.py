"""Checkpoints and successive halving in the plan: the manifest's ``rungs`` as evaluation
counts, how many samples reach each rung, and ``checkpoint_every``, checked so that the runtime
can stop and continue a training exactly at every rung. JAX-free.

A rung's budget must end on an evaluation point, and on a boundary of the runtime's calls: a
call runs ``planfile.chunk_group(num_evaluations)`` evaluation chunks (1 unless there are more
than 100 evaluation points), and a training can only be stopped, saved and continued between
two calls.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hyperlax.plan.format import Halving, Rung, Settings, chunk_group, rung_sizes

DEFAULT_ETA = 3
DEFAULT_METRIC = "final_return"


def _evaluations(budget: Any, total: int) -> tuple[Fraction | None, str]:
    """(the budget in evaluations, exact, and how it was written, for messages), or (None,
    what is wrong with it)."""
    if isinstance(budget, int):
        return Fraction(budget), f"{budget} evaluation{'s' if budget != 1 else ''}"
    if isinstance(budget, float):
        return Fraction(budget) * total, f"{budget!r} of num_evaluations = {total}"
    text = budget.replace(" ", "")
    try:
        fraction = Fraction(text)
    except ZeroDivisionError:
        return None, f"{budget!r} divides by zero"
    except ValueError:  # digits past Python's int-conversion limit
        return None, f"{budget[:24]!r}... has {len(text):,} characters, too many digits"
    if not 0 < fraction <= 1:
        return None, f"{budget!r} is not a fraction in (0, 1]"
    return fraction * total, f"{text} of num_evaluations = {total}"


def _whole(value: Fraction, written: str, total: int) -> tuple[int | None, str | None]:
    """``value`` as a whole number of evaluations, or why it is not one."""
    nearest = round(value)
    if abs(value - nearest) <= Fraction(1, 10**9) * max(total, 1):  # a float's rounding
        return int(nearest), None
    return None, (f"{written} is {float(value):.4g} evaluations, but a rung ends on an "
                  f"evaluation point; write an evaluation count (an integer), or a fraction "
                  f"k/{total} as a string such as \"{max(1, int(value))}/{total}\"")


def halving_problems(sweep: Any, settings: Settings
                     ) -> tuple[Halving | None, list[tuple[str, str]], list[str]]:
    """(the plan's Halving or None, located problems, warnings) for the manifest's
    ``[sweep]`` table ``sweep`` with ``settings`` resolved."""
    problems: list[tuple[str, str]] = []
    if sweep.rungs is None:
        for key in ("eta", "rung_metric"):
            if getattr(sweep, key) is not None:
                problems.append((f"sweep.{key}", "only applies with rungs (successive "
                                                 "halving); add rungs or remove it"))
        return None, problems, []
    total = settings.num_evaluations
    group = chunk_group(total)
    eta_hint = sweep.eta if sweep.eta is not None else DEFAULT_ETA
    evaluations: list[int] = []
    for i, budget in enumerate(sweep.rungs):
        where = f"sweep.rungs[{i}]"
        value, written = _evaluations(budget, total)
        if value is None:
            problems.append((where, f"{written}; write a fraction such as \"1/{eta_hint}\" "
                                    "or an evaluation count"))
            continue
        count, problem = _whole(value, written, total)
        if count is None:
            problems.append((where, problem))
            continue
        if count < 1:  # a tiny fraction (a huge denominator) rounds to no training at all
            problems.append((where, f"{written} is less than one evaluation: a rung trains "
                                    f"at least one; use at least \"1/{total}\""))
        elif count > total:
            problems.append((where, f"{written} is more than the full budget "
                                    f"(num_evaluations = {total})"))
        elif count % group:
            problems.append((where, f"{written}: with num_evaluations = {total} the runtime "
                                    f"trains {group} evaluation chunks per call and can stop "
                                    f"only between calls; use a multiple of {group}"))
        elif evaluations and count <= evaluations[-1]:
            problems.append((where, f"rungs must grow: {written} is not more than the rung "
                                    f"before ({evaluations[-1]} evaluations)"))
        evaluations.append(count)
    if not problems and evaluations[-1] != total:
        problems.append(("sweep.rungs", f"the last rung must be the full budget: "
                                        f"{total} evaluations (num_evaluations), or \"1\"; got "
                                        f"{evaluations[-1]}; to train less, lower "
                                        "total_timesteps and num_evaluations"))
    if problems:
        return None, problems, []
    eta = sweep.eta if sweep.eta is not None else DEFAULT_ETA
    counts = rung_sizes(settings.num_samples, eta, len(evaluations))
    warnings = []
    for r in range(1, len(counts)):
        if counts[r] == counts[r - 1]:
            warnings.append(f"successive halving: rung {r} keeps all {counts[r]} samples of "
                            f"rung {r - 1} (eta = {eta} cannot halve fewer than {eta}); fewer "
                            "rungs or more samples would do")
            break
    halving = Halving(metric=sweep.rung_metric or DEFAULT_METRIC, eta=eta,
                      rungs=[Rung(evaluations=e, samples=n) for e, n in zip(evaluations, counts)])
    return halving, [], warnings


def checkpoint_problems(sweep: Any, settings: Settings) -> list[tuple[str, str]]:
    every = sweep.checkpoint_every
    if every > settings.num_evaluations:
        return [("sweep.checkpoint_every", f"{every} is more than num_evaluations = "
                                           f"{settings.num_evaluations}, so no checkpoint "
                                           "would be written; use 1 to "
                                           f"{settings.num_evaluations}, or 0 for none")]
    return []
