"""Which hyperparameters matter: first-order and total Sobol indices, with bootstrap confidence
intervals, from a sweep planned with ``sampling = "saltelli"``.

The plan's samples are Saltelli's blocks A, B and AB_0..AB_{d-1} (``compiler.sample
.saltelli_points``); the report hands their scores (mean over replicates of the final or best
return) to ``scipy.stats.sobol_indices``, which computes the indices (Saltelli 2010 / Jansen
estimators); ``scipy.stats.bootstrap`` resamples the evaluations for 95 % percentile intervals, with
a generator seeded from the manifest seed, so the same results give the same report. Every evaluation is needed: with a
sample missing or diverged there are no indices, and the report says which.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from hyperlax.report.results import Collected

CONFIDENCE = 0.95
RESAMPLES = 999


def sobol_analysis(collected: Collected, metric: str) -> dict[str, Any] | None:
    """{"indices": {name: {first_order, first_order_ci, total_order, total_order_ci}}, ...}, a
    {"unavailable": why} when the sweep cannot give them yet, or None for a plan that is not a
    Saltelli design."""
    plan = collected.plan
    if plan.settings.sampling != "saltelli":
        return None
    names, dims = list(plan.sampled), len(plan.sampled)
    base = len(plan.samples) // (dims + 2)
    scores = [s.score(metric) for s in collected.samples]
    bad = [s.index for s, x in zip(collected.samples, scores)
           if x is None or not math.isfinite(x)]
    if bad:
        return {"unavailable": f"{len(bad)} of {len(scores)} evaluations are missing or "
                               f"diverged (e.g. sample {bad[0]}); Sobol indices need all of "
                               "them", "base_samples": base}
    from scipy.stats import bootstrap, sobol_indices

    def flat(x: Any) -> np.ndarray:  # scipy drops the output axis when there is one output
        return np.asarray(x, dtype=float).reshape(-1)

    f = np.asarray(scores, dtype=float)
    blocks = {"f_A": f[:base][None, :], "f_B": f[base:2 * base][None, :],
              "f_AB": f[2 * base:].reshape(dims, 1, base)}
    def indices_of(columns: np.ndarray) -> np.ndarray:
        """[first order..., total order...] from the evaluations' columns ``columns``."""
        part = {k: v[..., columns] for k, v in blocks.items()}
        res = sobol_indices(func=part, n=base)
        return np.concatenate([flat(res.first_order), flat(res.total_order)])

    with warnings.catch_warnings():
        # a hyperparameter with no effect makes its bootstrap degenerate: its interval is
        # reported as unknown (null), which is what it is
        warnings.simplefilter("ignore")
        point = indices_of(np.arange(base))
        # SobolResult.bootstrap draws from an unseeded generator; resample the evaluations'
        # columns ourselves with one seeded by the manifest seed, so a report is reproducible
        boot = bootstrap((np.arange(base),), indices_of, vectorized=False, method="percentile",
                         n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                         rng=np.random.default_rng(plan.settings.seed))
    first, total = point[:dims], point[dims:]
    low, high = flat(boot.confidence_interval.low), flat(boot.confidence_interval.high)
    bounds = {"first_order_ci": (low[:dims], high[:dims]),
              "total_order_ci": (low[dims:], high[dims:])}
    indices = {name: {"first_order": _num(first[i]), "total_order": _num(total[i]),
                      **{key: [_num(lo[i]), _num(hi[i])] for key, (lo, hi) in bounds.items()}}
               for i, name in enumerate(names)}
    return {"metric": metric, "base_samples": base, "confidence": CONFIDENCE,
            "indices": dict(sorted(indices.items(),
                                   key=lambda kv: -(kv[1]["total_order"] or 0.0)))}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _fmt(x: float | None, width: int) -> str:
    return f"{x:{width}.2f}" if x is not None else "?".rjust(width)


# Below this many base samples Saltelli's estimators scatter widely (first-order indices below 0,
# totals above 1), whatever the bootstrap says: Saltelli et al. (2010) use N in the hundreds.
MEANINGFUL_BASE = 64
# An interval wider than this spans most of [0, 1]: the index is not known at all.
WIDE_INTERVAL = 0.5


def small_sample_warning(analysis: dict[str, Any]) -> str | None:
    """Why these indices may mean little, or None: too few base samples, estimates outside
    [0, 1], or intervals wider than half of it."""
    base, why = analysis["base_samples"], []
    if base < MEANINGFUL_BASE:
        why.append(f"{base} base samples (fewer than {MEANINGFUL_BASE})")
    values = [v[k] for v in analysis["indices"].values() for k in ("first_order", "total_order")
              if v[k] is not None]
    if any(x < -0.05 or x > 1.05 for x in values):
        why.append("indices outside [0, 1], which true ones never are")
    widths = [hi - lo for v in analysis["indices"].values()
              for lo, hi in (v["first_order_ci"], v["total_order_ci"])
              if lo is not None and hi is not None]
    if any(w > WIDE_INTERVAL for w in widths):
        why.append(f"intervals wider than {WIDE_INTERVAL}")
    if not why:
        return None
    dims = len(analysis["indices"])
    return (f"warning: these indices are noise more than measurement: {'; '.join(why)}. A "
            f"Saltelli sweep of {dims} hyperparameters needs num_samples = N x {dims + 2} with "
            f"N >= {MEANINGFUL_BASE} (num_samples >= {MEANINGFUL_BASE * (dims + 2)}) before "
            "the intervals say much")


def sensitivity_lines(analysis: dict[str, Any]) -> list[str]:
    if "unavailable" in analysis:
        return [f"sensitivity: no Sobol indices yet: {analysis['unavailable']}"]
    lines = [f"sensitivity of the {analysis['metric']} return (Sobol indices, "
             f"{analysis['base_samples']} base samples, {analysis['confidence']:.0%} bootstrap "
             "intervals), most influential first:"]
    rows = [["hyperparameter", "first order", "interval", "total", "interval"]]
    for name, v in analysis["indices"].items():
        lo, hi = v["first_order_ci"]
        tlo, thi = v["total_order_ci"]
        rows.append([name, _fmt(v["first_order"], 5), f"[{_fmt(lo, 5)}, {_fmt(hi, 5)}]",
                     _fmt(v["total_order"], 5), f"[{_fmt(tlo, 5)}, {_fmt(thi, 5)}]"])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for i, row in enumerate(rows):  # names left-aligned, numbers right-aligned under headers
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  " + "  ".join(cells).rstrip())
    warning = small_sample_warning(analysis)
    return lines + ([warning] if warning else [])


def render_sensitivity(analysis: dict[str, Any], title: str) -> bytes:
    """sensitivity.png: first-order and total indices per hyperparameter, with intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hyperlax.report.plots import png_bytes

    names = list(analysis["indices"])
    rows = analysis["indices"]
    y = np.arange(len(names))
    fig = Figure(figsize=(8, 1.2 + 0.45 * len(names)), dpi=100)
    ax = fig.add_subplot()
    for offset, key, label in ((-0.18, "first_order", "first order"),
                               (0.18, "total_order", "total")):
        values = np.array([rows[n][key] for n in names], dtype=float)
        ci = np.array([rows[n][f"{key}_ci"] for n in names], dtype=float)  # None -> nan
        err = np.nan_to_num(np.abs(np.stack([values - ci[:, 0], ci[:, 1] - values])))
        values = np.nan_to_num(values)
        ax.barh(y + offset, values, height=0.34, xerr=err, capsize=3, label=label)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Sobol index of the {analysis['metric']} return "
                  f"({analysis['confidence']:.0%} intervals)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return png_bytes(fig, FigureCanvasAgg)
