"""What each metric a plan names (``format.RungMetric``: a rung's ranking, a search's objective)
means, as a function of a learning curve: a replicate's evaluation returns, in order. Defined
once, here; exec's summaries (final and best return of each replicate), successive halving's
ranking and a search's objectives all compute them with these. JAX-free (numpy).

- ``final_return``: the return at the last evaluation;
- ``best_return``: the highest evaluation return;
- ``auc``: the mean return over every evaluation point. Evaluations come after equal chunks of
  updates, so this is the area under the learning curve divided by its length in env steps
  (a right Riemann sum): it rewards learning fast, not only ending well.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

CURVE_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "final_return": lambda curves: curves[..., -1],
    "best_return": lambda curves: curves.max(axis=-1),
    "auc": lambda curves: curves.mean(axis=-1),
}


def curve_metric(curves: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each curve in ``curves`` (evaluations along the last axis), in their
    dtype: a scalar for one curve."""
    return CURVE_METRICS[metric](curves)


def sample_metric(curves: np.ndarray, metric: str) -> float | None:
    """A sample's ``metric``: the mean over its replicates' curves ([replicates, evaluations]),
    in float64; None when it has no point or any point is not finite (it diverged)."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.size == 0 or not bool(np.all(np.isfinite(curves))):
        return None
    value = float(curve_metric(curves, metric).mean())
    return value if math.isfinite(value) else None
