"""The report's PNGs: learning curves of the top samples, final return against each sampled
hyperparameter, a one-page overview, and for a population-based training sweep its best
member's schedule (each explored hyperparameter against env steps).

matplotlib is imported inside ``render_plots`` only, and figures are drawn on the Agg canvas
directly (no pyplot, no global backend switch), so importing this module costs nothing and a
report never opens a window or changes the caller's matplotlib state.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np

from hyperlax.plan.format import HyperParamRow
from hyperlax.report.results import Collected, SampleResult, ranked, sample_values, value_text

TOP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#17becf", "#bcbd22", "#7f7f7f"]
OTHERS = "#8fa3bf"
DIVERGED = "#c0392b"
MAX_CONTEXT_CURVES = 200


def render_plots(collected: Collected, metric: str, top_k: int) -> dict[str, bytes]:
    """{file name: PNG bytes} for curves.png, hyperparams.png and overview.png."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = ranked(collected, metric)
    top = order[:top_k]
    out = {}

    fig = Figure(figsize=(9, 5.5), dpi=100)
    ax = fig.add_subplot()
    _draw_curves(ax, collected, top, metric)
    ax.set_title(f"{collected.plan.settings.name}: learning curves of the top {len(top)} by "
                 f"{metric} return")
    fig.tight_layout()
    out["curves.png"] = png_bytes(fig, FigureCanvasAgg)

    names = collected.plan.sampled
    ncols = max(1, min(4, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), dpi=100)
    if names:
        for k, name in enumerate(names):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            _draw_param(ax, collected, name, top, metric, ylabel=k % ncols == 0)
        fig.suptitle(f"{collected.plan.settings.name}: {metric} return against each sampled "
                     "hyperparameter (colored: top samples; red x: diverged)")
    else:
        fig.text(0.5, 0.5, "no hyperparameter was sampled", ha="center", va="center")
    fig.tight_layout()
    out["hyperparams.png"] = png_bytes(fig, FigureCanvasAgg)

    out["overview.png"] = png_bytes(_overview(Figure, collected, order, top, metric),
                               FigureCanvasAgg)
    return out


def png_bytes(fig: Any, canvas_class: Any) -> bytes:
    """A matplotlib Figure rendered to PNG bytes with the given (Agg) canvas."""
    canvas_class(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _mean_curve(s: SampleResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after divergence
        return (s.eval_steps, np.nanmean(s.returns, axis=0), np.nanmin(s.returns, axis=0),
                np.nanmax(s.returns, axis=0))


def _draw_curves(ax: Any, collected: Collected, top: list[SampleResult], metric: str,
                 legend: bool = True) -> None:
    top_ids = {s.index for s in top}
    context = [s for s in collected.samples if s.returns is not None and s.index not in top_ids]
    for k, s in enumerate(context[:MAX_CONTEXT_CURVES]):
        steps, mean, _, _ = _mean_curve(s)
        ax.plot(steps, mean, color=OTHERS, alpha=0.35, linewidth=0.8,
                label="other samples" if k == 0 else None)
    for k, s in enumerate(top):
        color = TOP_COLORS[k % len(TOP_COLORS)]
        steps, mean, low, high = _mean_curve(s)
        ax.plot(steps, mean, color=color, linewidth=2, marker="o", markersize=3,
                label=f"#{k + 1} sample {s.index}: {s.score(metric):.4g}")
        if s.returns.shape[0] > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    reps = collected.plan.settings.seeds_per_sample
    if reps > 1:
        ax.text(0.01, 0.01, f"line: mean of {reps} replicates; band: min to max",
                transform=ax.transAxes, fontsize=8, color="#555555")
    if legend and (top or context):
        ax.legend(fontsize=8, loc="best")


def is_categorical(row: HyperParamRow) -> bool:
    dist = row.distribution or {}
    return dist.get("dist") == "categorical" or row.type in ("str", "bool", "int_list")


def _categories(row: HyperParamRow, values: list[Any]) -> list[str]:
    declared = (row.distribution or {}).get("values")
    if declared:
        return [value_text(v) for v in declared]
    return sorted({value_text(v) for v in values})


def _param_points(collected: Collected, name: str, metric: str
                  ) -> tuple[HyperParamRow, list[tuple[SampleResult, Any, float]],
                             list[tuple[SampleResult, Any]]]:
    row = next(r for r in collected.plan.hyperparams if r.name == name)

    def value(s: SampleResult) -> Any:  # with PBT, the last interval's
        return sample_values(collected, s.index)[name]

    scored = [(s, value(s), s.score(metric)) for s in ranked(collected, metric)]
    diverged = [(s, value(s)) for s in collected.samples if s.status == "diverged"]
    return row, scored, diverged


def influence(collected: Collected, name: str, metric: str) -> tuple[str, float] | None:
    """How strongly the score depends on one hyperparameter, in [0, 1]: |Spearman rho| for a
    numeric one, the correlation ratio eta for a categorical one. None with under 3 points."""
    row, scored, _ = _param_points(collected, name, metric)
    if len(scored) < 3:
        return None
    y = np.asarray([p[2] for p in scored], dtype=float)
    if is_categorical(row):
        labels = [value_text(p[1]) for p in scored]
        total = float(np.sum((y - y.mean()) ** 2))
        if total == 0:
            return "η", 0.0
        between = sum(len(g) * (np.mean(g) - y.mean()) ** 2 for g in
                      ([y[i] for i, lab in enumerate(labels) if lab == c] for c in set(labels)))
        return "η", float(math.sqrt(between / total))
    x = np.asarray([p[1] for p in scored], dtype=float)
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return "ρ", 0.0
    return "ρ", float(abs(np.corrcoef(rx, ry)[0, 1]))


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks


def _draw_param(ax: Any, collected: Collected, name: str, top: list[SampleResult],
                metric: str, ylabel: bool = True) -> None:
    row, scored, diverged = _param_points(collected, name, metric)
    top_rank = {s.index: k for k, s in enumerate(top)}
    categorical = is_categorical(row)
    if categorical:
        cats = _categories(row, [p[1] for p in scored] + [p[1] for p in diverged])
        where = {c: i for i, c in enumerate(cats)}
        rng = np.random.default_rng(0)

        def xpos(v: Any) -> float:
            return where.get(value_text(v), len(cats)) + float(rng.uniform(-0.18, 0.18))
    else:
        def xpos(v: Any) -> float:
            return float(v)
    others = [(xpos(v), y) for s, v, y in scored if s.index not in top_rank]
    if others:
        ax.scatter([p[0] for p in others], [p[1] for p in others], s=16, color=OTHERS,
                   alpha=0.8, linewidths=0)
    for s, v, y in scored:
        k = top_rank.get(s.index)
        if k is not None:
            ax.scatter([xpos(v)], [y], s=90 if k == 0 else 45, marker="*" if k == 0 else "o",
                       color=TOP_COLORS[k % len(TOP_COLORS)], edgecolors="black",
                       linewidths=0.6, zorder=3)
    if diverged:
        ax.scatter([xpos(v) for _, v in diverged], [0.03] * len(diverged), marker="x",
                   color=DIVERGED, s=25, transform=ax.get_xaxis_transform(), clip_on=False)
    if categorical:
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, rotation=20 if max(map(len, cats), default=0) > 6 else 0,
                           fontsize=8)
        ax.set_xlim(-0.6, len(cats) - 0.4)
    else:
        xs = [float(v) for _, v, _ in scored] + [float(v) for _, v in diverged]
        if xs:
            _numeric_xlim(ax, min(xs), max(xs), row.log_scale)
    stat = influence(collected, name, metric)
    title = name + (" (log scale)" if row.log_scale else "")
    if stat is not None:
        title += f"   {stat[0]}={stat[1]:.2f}"
    ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(f"{metric} return")
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def _numeric_xlim(ax: Any, low: float, high: float, log: bool) -> None:
    """Limits that hold every point (diverged markers too), and on a log axis readable ticks
    at 1, 2 and 5 times powers of ten instead of crowded minor labels."""
    if log and low > 0:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.set_xlim(low / 1.25, high * 1.25)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        return
    pad = (high - low) * 0.06 or abs(low) * 0.06 or 1.0
    ax.set_xlim(low - pad, high + pad)


def _overview(figure_class: Any, collected: Collected, order: list[SampleResult],
              top: list[SampleResult], metric: str) -> Any:
    plan, s = collected.plan, collected.plan.settings
    counts = collected.sample_counts()
    fig = figure_class(figsize=(16, 10), dpi=100)
    grid = fig.add_gridspec(2, 4, height_ratios=[3, 2.6], hspace=0.3, wspace=0.28,
                            left=0.05, right=0.98, top=0.89, bottom=0.06)
    state = "complete" if collected.complete else "PARTIAL"
    fig.text(0.05, 0.975, f"{s.name}: {s.recipe} ({s.algorithm}) on {s.env}", fontsize=15,
             weight="bold", va="top")
    fig.text(0.05, 0.935, f"{state}: {counts['ok']} ok, {counts['diverged']} diverged, "
                          f"{counts['missing']} missing of {len(plan.samples)} samples  |  "
                          f"{s.sampling}, {s.mode}, {s.total_timesteps:,} env steps per run, "
                          f"{s.seeds_per_sample} replicate(s)  |  plan {collected.plan_id[:12]}",
             fontsize=10, va="top", color="#b03a2e" if not collected.complete else "black")

    ax = fig.add_subplot(grid[0, :2])
    _draw_curves(ax, collected, top, metric)
    ax.set_title(f"learning curves, top {len(top)}", fontsize=10)

    ax = fig.add_subplot(grid[0, 2:])
    scores = [x.score(metric) for x in order]
    colors = [TOP_COLORS[k % len(TOP_COLORS)] if k < len(top) else OTHERS
              for k in range(len(order))]
    ranks = np.arange(1, len(order) + 1)
    if len(order) <= 200:
        ax.bar(ranks, scores, color=colors, width=0.85)
        if s.seeds_per_sample > 1:
            ax.errorbar(ranks, scores, yerr=[x.spread(metric) or 0 for x in order], fmt="none",
                        ecolor="#333333", elinewidth=0.8, capsize=2)
    else:
        ax.plot(ranks, scores, color=OTHERS)
        ax.scatter(ranks[:len(top)], scores[:len(top)], color=colors[:len(top)], zorder=3)
    ax.set_xlabel("rank")
    ax.set_ylabel(f"{metric} return")
    ax.set_title(f"{metric} return of every finished sample, ranked", fontsize=10)
    if counts["diverged"] or counts["missing"]:
        ax.text(0.99, 0.97, f"not shown: {counts['diverged']} diverged, {counts['missing']} "
                            "missing", transform=ax.transAxes, ha="right", va="top", fontsize=9,
                color=DIVERGED)
    ax.grid(alpha=0.3, axis="y")

    stats = [(name, influence(collected, name, metric)) for name in plan.sampled]
    strongest = sorted(stats, key=lambda p: -(p[1][1] if p[1] else -1.0))[:3]
    for k, (name, _) in enumerate(strongest):
        _draw_param(fig.add_subplot(grid[1, k]), collected, name, top, metric,
                    ylabel=k == 0)
    text = fig.add_subplot(grid[1, 3])
    text.axis("off")
    lines = ["no sample finished without diverging"]
    if order:
        best = order[0]
        lines = [f"best: sample {best.index}",
                 f"{metric} return {best.score(metric):.4g} ± {best.spread(metric) or 0:.3g}", ""]
        values = {n: v for n, v in sample_values(collected, best.index).items()
                  if n in plan.samples[best.index].values}
        shown = list(values.items())[:14]
        lines += [f"{n} = {value_text(v)}" for n, v in shown]
        if len(values) > len(shown):
            lines.append(f"... {len(values) - len(shown)} more in the report's [fixed] block")
    if strongest:
        lines += ["", "left: the sampled hyperparameters", "with the strongest effect",
                  "(ρ: |rank correlation|,", " η: correlation ratio)"]
    text.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=9)
    return fig


# --- population-based training ---------------------------------------------------------------

MAX_SCHEDULES = 50   # other members' schedules drawn faintly behind the best's


def render_schedule(collected: Collected, order: list[SampleResult]) -> bytes:
    """pbt_schedule.png: one panel per explored hyperparameter, its value against env steps
    as a step line, for the best member (``order[0]``) through the weights it carried, over
    the other finished members' schedules."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = collected.pbt
    assert history is not None and order
    names = [n for n in history.explored() if n in history.names()] or history.names()
    ncols = max(1, min(3, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.8 * ncols, 3.4 * nrows), dpi=100)
    best = order[0]
    for k, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        row = next(r for r in collected.plan.hyperparams if r.name == name)
        categorical = is_categorical(row)
        cats = _categories(row, []) if categorical else []

        def y_of(v: Any) -> float:
            if categorical:
                text = value_text(v)
                return float(cats.index(text)) if text in cats else float(len(cats))
            return float(v)

        for s in order[1:MAX_SCHEDULES + 1]:
            x, y = _schedule_line(history, s.index, name, y_of)
            ax.step(x, y, where="post", color=OTHERS, alpha=0.7, linewidth=0.9)
        x, y = _schedule_line(history, best.index, name, y_of)
        ax.step(x, y, where="post", color=TOP_COLORS[0], linewidth=2,
                label=f"best: sample {best.index}")
        if categorical:
            ax.set_yticks(range(len(cats)))
            ax.set_yticklabels(cats, fontsize=8)
        elif row.log_scale and min(y) > 0:
            ax.set_yscale("log")
        ax.set_title(name + (" (log scale)" if row.log_scale else ""), fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k == 0:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{collected.plan.settings.name}: the best member's schedule (sample "
                 f"{best.index}, through the weights it carried); grey: the other members'",
                 fontsize=10)
    fig.tight_layout()
    return png_bytes(fig, FigureCanvasAgg)


def _schedule_line(history: Any, sample: int, name: str, y_of: Any
                   ) -> tuple[list[int], list[float]]:
    """A member's schedule of ``name`` as step-line points, held to the end of training."""
    stages = [s for s in history.schedule(sample) if name in s.values]
    x = [s.step for s in stages] + [history.end_step(sample)]
    y = [y_of(s.values[name]) for s in stages]
    return x, y + y[-1:]
