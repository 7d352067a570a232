"""A search space as Optuna distributions, and what Optuna asks back as hyperparameter values.

    uniform          -> FloatDistribution(low, high)
    log_uniform      -> FloatDistribution(low, high, log=True)
    int_uniform      -> IntDistribution(low, high)
    int_log_uniform  -> IntDistribution(low, high, log=True)
    quantized        -> IntDistribution or FloatDistribution(low, last grid point, step); a
                        float value is rounded to 12 significant digits, as the plan's rule does
    categorical      -> CategoricalDistribution(values); values that are lists (layer sizes)
                        travel as their JSON text, "[64, 64]", since Optuna's choices must be
                        scalars

Refused, with a located message: normal and log_normal (Optuna has no truncated-normal prior,
and TPE would replace it by its own anyway) and categorical weights (Optuna's categorical prior
is uniform). The prior only shapes TPE's first guesses, so uniform over [low, high] (or
log-uniform) is the honest replacement.

``space_problems`` needs no Optuna, so a bad space is reported before Optuna is even imported.
"""

from __future__ import annotations

import json
from typing import Any

from hyperlax.manifest.distributions import (Categorical, Distribution, IntLogUniform,
                                             IntUniform, LogNormal, LogUniform, Normal,
                                             Quantized, Uniform)
from hyperlax.storage.read import decode_json

_SCALARS = (bool, int, float, str, type(None))


def space_problems(space: dict[str, Distribution], sources: dict[str, str]
                   ) -> list[tuple[str, str]]:
    """Located problems of distributions Optuna cannot express."""
    problems = []
    for name, dist in space.items():
        where = f"space.{name}"
        origin = (" (it comes from the recipe's space: override it in [space] or pin it in "
                  "[fixed])") if sources.get(name) == "recipe space" else ""
        tag = type(dist).__struct_config__.tag
        if isinstance(dist, (Normal, LogNormal)):
            instead = "log_uniform" if isinstance(dist, LogNormal) else "uniform"
            problems.append((f"{where}.dist", f"{tag} has no Optuna distribution; a search "
                                              f"needs {instead} with low = {dist.low}, high = "
                                              f"{dist.high}{origin}"))
        elif isinstance(dist, Categorical):
            if dist.weights is not None:
                problems.append((f"{where}.weights", "Optuna's categorical has no weights (its "
                                                     "prior is uniform over the values); remove "
                                                     f"weights for a search{origin}"))
            elif len(set(_choices(dist))) != len(dist.values):
                problems.append((f"{where}.values", "two values have the same JSON text; "
                                                    f"make them distinct{origin}"))
    return problems


def _encoded(dist: Categorical) -> bool:
    """Whether the categorical's choices travel as JSON text (some value is not a scalar)."""
    return not all(isinstance(v, _SCALARS) for v in dist.values)


def _choices(dist: Categorical) -> list[Any]:
    if _encoded(dist):
        return [json.dumps(v) for v in dist.values]
    return list(dist.values)


def _last_point(dist: Quantized) -> float | int:
    """The largest grid value, so Optuna's (high - low) is a whole number of steps."""
    top = dist.low + (dist.points() - 1) * dist.step
    return top if dist.integral() else float(f"{top:.12g}")


def distributions(space: dict[str, Distribution]) -> dict[str, Any]:
    """Optuna distributions for ``space`` (checked by ``space_problems``), in its order."""
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)

    out: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, Uniform):
            out[name] = FloatDistribution(dist.low, dist.high)
        elif isinstance(dist, LogUniform):
            out[name] = FloatDistribution(dist.low, dist.high, log=True)
        elif isinstance(dist, IntUniform):
            out[name] = IntDistribution(dist.low, dist.high)
        elif isinstance(dist, IntLogUniform):
            out[name] = IntDistribution(dist.low, dist.high, log=True)
        elif isinstance(dist, Quantized):
            kind = IntDistribution if dist.integral() else FloatDistribution
            out[name] = kind(dist.low, _last_point(dist), step=dist.step)
        elif isinstance(dist, Categorical):
            out[name] = CategoricalDistribution(_choices(dist))
        else:  # refused by space_problems before we get here
            raise TypeError(f"{name}: {type(dist).__name__} has no Optuna distribution")
    return out


def to_values(params: dict[str, Any], space: dict[str, Distribution]) -> dict[str, Any]:
    """The hyperparameter values of Optuna's ``params``: JSON choices decoded, quantized
    floats on the plan's 12-digit grid, integers as int. In the space's (name) order."""
    values: dict[str, Any] = {}
    for name, dist in space.items():
        value = params[name]
        if isinstance(dist, Categorical) and _encoded(dist):
            value = decode_json(value, name, "categorical choice Optuna asked")
        elif isinstance(dist, Quantized):
            value = int(value) if dist.integral() else float(f"{value:.12g}")
        elif isinstance(dist, (IntUniform, IntLogUniform)):
            value = int(value)
        elif isinstance(dist, (Uniform, LogUniform)):
            value = float(value)
        values[name] = value
    return values
