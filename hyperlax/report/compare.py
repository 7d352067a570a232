"""Many sweeps side by side (``hyperlax compare``): one table and plots over several sweeps'
results, with the interquartile mean and stratified bootstrap intervals of the rliable
methodology (Agarwal et al., 2021). JAX-free; matplotlib only when plots are drawn.

A sweep is a *method* on a *task*: its label (``--label``, default the sweep name) and its
environment. Its runs are its samples' scores (the mean over replicates of the final or best
return; missing and diverged samples count as missing, and are reported). Per sweep: how many
samples finished, the best, the median and the IQM (mean of the middle 50 %) of the scores,
with a 95 % percentile bootstrap interval. Per method across tasks: scores are min-max
normalized per task over every sweep of that task (returns of different environments are not
comparable otherwise), and the IQM over all runs gets a *stratified* bootstrap interval, runs
resampled within each task. Bootstraps are seeded, so the same results give the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperlax.report.results import Collected

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


@dataclass
class SweepScores:
    label: str
    task: str                 # the environment
    collected: Collected
    scores: np.ndarray        # finished samples' scores
    missing: int              # samples missing or diverged


def sweep_scores(collected: Collected, label: str, metric: str) -> SweepScores:
    raw = [s.score(metric) for s in collected.samples]
    good = np.array([x for x in raw if x is not None and math.isfinite(x)], dtype=float)
    return SweepScores(label, collected.plan.settings.env, collected, good,
                       len(raw) - len(good))


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % (scipy.stats.trim_mean, 25 % cut)."""
    from scipy.stats import trim_mean

    return float(trim_mean(x, 0.25))


def _interval(groups: list[np.ndarray]) -> tuple[float | None, float | None]:
    """95 % percentile bootstrap interval of the IQM of the pooled groups, each group resampled
    on its own (stratified; one group is the plain bootstrap)."""
    groups = [g for g in groups if g.size]
    if not groups or sum(g.size for g in groups) < 2:
        return None, None
    rng = np.random.default_rng(SEED)
    stats = np.empty(RESAMPLES)
    for k in range(RESAMPLES):
        pooled = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        stats[k] = iqm(pooled)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def sweep_row(s: SweepScores) -> dict[str, Any]:
    has = s.scores.size > 0
    low, high = _interval([s.scores])
    return {"label": s.label, "task": s.task, "sweep": s.collected.plan.settings.name,
            "algorithm": s.collected.plan.settings.algorithm,
            "samples": len(s.collected.samples), "finished": int(s.scores.size),
            "missing_or_diverged": s.missing,
            "best": float(s.scores.max()) if has else None,
            "median": float(np.median(s.scores)) if has else None,
            "iqm": iqm(s.scores) if has else None, "iqm_ci": [low, high],
            "sweep_dir": str(s.collected.root)}


def method_rows(sweeps: list[SweepScores]) -> list[dict[str, Any]]:
    """Per label across tasks: the IQM of min-max normalized scores, stratified by task."""
    bounds: dict[str, tuple[float, float]] = {}
    for task in {s.task for s in sweeps}:
        pooled = np.concatenate([s.scores for s in sweeps if s.task == task] or [np.zeros(0)])
        if pooled.size:
            bounds[task] = (float(pooled.min()), float(pooled.max()))
    rows = []
    for label in dict.fromkeys(s.label for s in sweeps):
        groups, tasks = [], []
        for s in sweeps:
            if s.label != label or s.task not in bounds:
                continue
            lo, hi = bounds[s.task]
            groups.append((s.scores - lo) / (hi - lo) if hi > lo else np.full(s.scores.size,
                                                                               0.5))
            tasks.append(s.task)
        pooled = np.concatenate(groups) if groups else np.zeros(0)
        low, high = _interval(groups)
        rows.append({"label": label, "tasks": sorted(set(tasks)), "runs": int(pooled.size),
                     "normalized_iqm": iqm(pooled) if pooled.size else None,
                     "normalized_iqm_ci": [low, high]})
    return rows


def _num(x: float | None, width: int = 9) -> str:
    return f"{x:{width}.2f}" if x is not None else "-".rjust(width)


def compare_lines(rows: list[dict[str, Any]], methods: list[dict[str, Any]],
                  metric: str) -> list[str]:
    lw = max([len(r["label"]) for r in rows] + [5])
    tw = max([len(r["task"]) for r in rows] + [4])
    out = [f"{metric} return per sweep: samples finished, best, median, IQM [95% bootstrap "
           "interval]",
           f"  {'label':<{lw}}  {'task':<{tw}}  finished       best     median        IQM "
           f"  interval"]
    for r in rows:
        lo, hi = r["iqm_ci"]
        out.append(f"  {r['label']:<{lw}}  {r['task']:<{tw}}  {r['finished']:>4}/"
                   f"{r['samples']:<4} {_num(r['best'], 10)} {_num(r['median'], 10)} "
                   f"{_num(r['iqm'], 10)}  [{_num(lo, 0).strip()}, {_num(hi, 0).strip()}]")
    if len({r["task"] for r in rows}) > 1 or len(methods) < len(rows):
        out += ["", "per label across tasks: IQM of min-max normalized scores, stratified "
                    "bootstrap over tasks"]
        for m in methods:
            lo, hi = m["normalized_iqm_ci"]
            out.append(f"  {m['label']:<{lw}}  {m['runs']:>5} runs on {len(m['tasks'])} tasks"
                       f"  IQM {_num(m['normalized_iqm'], 0).strip()} "
                       f"[{_num(lo, 0).strip()}, {_num(hi, 0).strip()}]")
    return out


def render_compare(sweeps: list[SweepScores], rows: list[dict[str, Any]], metric: str) -> bytes:
    """compare.png: per sweep, a box plot of its samples' scores with the IQM and its interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hyperlax.report.plots import png_bytes

    tasks = list(dict.fromkeys(s.task for s in sweeps))
    fig = Figure(figsize=(max(6.0, 2.2 * len(sweeps)), 3.6 * len(tasks)), dpi=100)
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(len(tasks), 1, t + 1)
        mine = [(s, r) for s, r in zip(sweeps, rows) if s.task == task]
        data = [s.scores if s.scores.size else np.array([np.nan]) for s, _ in mine]
        ax.boxplot(data, showfliers=True)
        for k, (_, r) in enumerate(mine):
            if r["iqm"] is not None:
                lo, hi = r["iqm_ci"]
                yerr = None if lo is None else [[r["iqm"] - lo], [hi - r["iqm"]]]
                ax.errorbar(k + 1.25, r["iqm"], yerr=yerr, fmt="D", color="tab:red",
                            capsize=4, label="IQM, 95% interval" if k == 0 else None)
        ax.set_xticks(range(1, len(mine) + 1), [r["label"] for _, r in mine])
        ax.set_ylabel(f"{metric} return")
        ax.set_title(task)
        # right of the axes, not inside them: wherever it sits inside, some box is under it
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    return png_bytes(fig, FigureCanvasAgg)


def compare_sweeps(sources: list[Any], labels: list[str] | None, metric: str,
                   output: Any, plots: bool = True) -> tuple[list[str], dict[str, Any]]:
    """Read each sweep (a plan file or a sweep directory; partial sweeps count what they
    have), write compare.csv, compare.json and compare.png into ``output`` (None: ``compare/``
    beside the sweep directories, ``exec.benchmark.comparison_dir``); (text lines, the JSON
    document)."""
    import csv
    import io
    import json
    from pathlib import Path

    from hyperlax.errors import HyperlaxError
    from hyperlax.plan.read import read_plan
    from hyperlax.report import results as R
    from hyperlax.storage import atomic
    from hyperlax.storage.provenance import mixed_warning
    from hyperlax.storage.sweepdir import PLAN_COPY, sweep_root

    if labels and len(labels) != len(sources):
        raise HyperlaxError("compare", [("--label", f"{len(labels)} labels for {len(sources)} "
                                                    "sweeps; give one per sweep, in order")])
    sweeps = []
    for k, source in enumerate(map(Path, sources)):
        plan_file, root_given = (source / PLAN_COPY, source) if source.is_dir() else (source,
                                                                                      None)
        plan, pid = read_plan(plan_file)
        collected = R.collect(plan, pid, sweep_root(plan, root_given), str(plan_file),
                              root_given)
        sweeps.append(sweep_scores(collected, labels[k] if labels else plan.settings.name,
                                   metric))
    rows = [sweep_row(s) for s in sweeps]
    methods = method_rows(sweeps)
    # Side by side, differences of library versions or devices are differences of results too.
    warning = mixed_warning([r for s in sweeps for r in s.collected.provenance.values()],
                            "sweeps' entries")
    document = {"metric": metric, "confidence": CONFIDENCE, "resamples": RESAMPLES,
                "sweeps": rows, "labels": methods, "environment_warning": warning}
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    columns = ["label", "task", "sweep", "algorithm", "samples", "finished",
               "missing_or_diverged", "best", "median", "iqm", "iqm_low", "iqm_high",
               "sweep_dir"]
    writer.writerow(columns)
    for r in rows:
        flat = {**r, "iqm_low": r["iqm_ci"][0], "iqm_high": r["iqm_ci"][1]}
        writer.writerow(["" if flat[c] is None else flat[c] for c in columns])
    files = {"compare.csv": table.getvalue().encode(),
             "compare.json": (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()}
    if plots:
        files["compare.png"] = render_compare(sweeps, rows, metric)
    if output is None:
        from hyperlax.exec.benchmark import comparison_dir

        output = comparison_dir([s.collected.root for s in sweeps])
        if output is None:
            raise HyperlaxError("compare", [("-o", "the sweeps share no folder but the "
                                                   "filesystem's root to write beside")],
                                "name the output directory with -o")
    out = Path(output)
    try:
        for name, data in files.items():
            atomic.atomic_write(out / name, data, within=out)
    except OSError as exc:
        raise HyperlaxError(str(out), f"cannot write the comparison: {exc.strerror}",
                            "choose another directory with -o") from None
    lines = compare_lines(rows, methods, metric) + ([warning] if warning else [])
    return lines + ["", f"wrote {', '.join(files)} to {out}"], document
