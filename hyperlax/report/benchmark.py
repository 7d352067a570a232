"""A `run-benchmark` directory's runs plotted side by side, per environment (`plot-benchmark`)

The seed system's ``plot-benchmark``, on ``compare``'s statistics: every run directory of the
benchmark (one sweep per recipe x environment x mode) is read back as ``report`` reads a sweep,
its samples scored by their peak return (mean over replicates of the best evaluation), and
drawn per environment: the distribution of the scores (box plots with the IQM and its 95 %
bootstrap interval), the best configuration's learning curve, the IQM over the top-n
configurations' replicate curves at every evaluation with a 95 % bootstrap band (rliable's
aggregate), and one slice per sampled hyperparameter (the slice metric against the value, the
top-n highlighted). The combined figure is every environment's box plots in one image.

Files go to ``<benchmark>_plots/`` beside the benchmark directory, as the original put them,
so the benchmark directory itself holds runs only. JAX-free; matplotlib only when drawing.
"""

from __future__ import annotations

import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.report import compare as C
from hyperlax.report import results as R

# --slice-metric -> the summary's metric. "score" is what the top-n were ranked by: the peak
# return, the original's default ranking.
SLICE_METRICS = {"peak_return": "best", "final_return": "final", "score": "best"}
RANK_METRIC = "best"
COMBINED = "benchmark_best_found_return_distribution_combined.png"
DOCUMENT = "benchmark_plots.json"


@dataclass
class BenchmarkRun:
    name: str                 # the run's directory name
    sweep: C.SweepScores      # compare's view: label, task (env), collected, peak scores
    top: list[R.SampleResult]  # the top-n samples by peak return, best first


def plots_dir(benchmark: Path) -> Path:
    """Where the plots of ``benchmark`` go: ``<benchmark>_plots`` beside it."""
    if benchmark.name in ("", ".", ".."):   # `.` would put them inside it
        benchmark = benchmark.resolve()
    return benchmark.parent / f"{benchmark.name}_plots"


def run_label(name: str, plan: Any, with_info: bool) -> str:
    """The recipe, and with ``with_info`` what the directory name adds to recipe and env
    (mode, samples, run length: ``ppo_mlp batched-N8-quick``)."""
    recipe, env = plan.settings.recipe, plan.settings.env
    prefix = f"{recipe.replace('_', '-')}_{env}_"
    info = name[len(prefix):] if name.startswith(prefix) else ""
    return f"{recipe} {info}" if with_info and info else recipe


def find_runs(benchmark: Path, top_n: int, with_info: bool, note: Callable[[str], None],
              workers: int = 1) -> list[BenchmarkRun]:
    """Every run directory (one holding a plan copy) with completed entries, in name order,
    read ``workers`` at a time (reading is checksumming files: I/O and hashlib, which release
    the GIL); runs with nothing finished yet are skipped with a note."""
    from hyperlax.storage.sweepdir import PLAN_COPY

    if not benchmark.is_dir():
        raise HyperlaxError(str(benchmark), "no such directory",
                            "pass the benchmark directory: <output-root>/<benchmark-name>")
    paths = sorted(p for p in benchmark.iterdir() if (p / PLAN_COPY).is_file())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        read = list(pool.map(lambda p: _read_run(p, top_n, with_info), paths))
    runs = []
    for path, run in zip(paths, read):
        if isinstance(run, HyperlaxError):
            note(f"skipping {path.name}: " + "; ".join(m for _, m in run.problems))
        else:
            runs.append(run)
    if not runs:
        raise HyperlaxError(str(benchmark), "holds no run with finished entries",
                            "run it first with run-benchmark (the same command finishes it)")
    return runs


def _read_run(path: Path, top_n: int, with_info: bool) -> BenchmarkRun | HyperlaxError:
    from hyperlax.plan.read import read_plan
    from hyperlax.storage.sweepdir import PLAN_COPY

    try:
        plan, pid = read_plan(path / PLAN_COPY)
        collected = R.collect(plan, pid, path, str(path / PLAN_COPY), path)
    except HyperlaxError as exc:   # nothing finished yet, a damaged plan: a note, not the end
        return exc
    sweep = C.sweep_scores(collected, run_label(path.name, plan, with_info), RANK_METRIC)
    return BenchmarkRun(path.name, sweep, R.ranked(collected, RANK_METRIC)[:top_n])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def iqm_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The IQM over runs (rows) at each evaluation (column), and its 95 % percentile
    bootstrap band, runs resampled with the same draws at every evaluation (seeded)."""
    from scipy.stats import trim_mean

    rng = np.random.default_rng(C.SEED)
    idx = rng.integers(0, curves.shape[0], (C.RESAMPLES, curves.shape[0]))
    boot = trim_mean(curves[idx], 0.25, axis=1)
    alpha = (1 - C.CONFIDENCE) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return trim_mean(curves, 0.25, axis=0), low, high


def top_curves(run: BenchmarkRun) -> tuple[np.ndarray, np.ndarray] | None:
    """(env steps, [top samples x replicates, evaluations]) of the run's top-n; replicate
    curves with a non-finite return are left out."""
    top = [s for s in run.top if s.returns is not None]
    if not top:
        return None
    steps = top[0].eval_steps
    rows = [r for s in top if s.eval_steps.shape == steps.shape for r in s.returns
            if np.all(np.isfinite(r))]
    return (steps, np.array(rows)) if rows else None


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from hyperlax.report.plots import png_bytes

    fig.tight_layout()
    return png_bytes(fig, FigureCanvasAgg)


def render_best_curves(env: str, runs: list[BenchmarkRun]) -> bytes:
    """Each run's best configuration: mean over replicates, band from min to max."""
    fig = _figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for run in runs:
        if not run.top or run.top[0].returns is None:
            continue
        best = run.top[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(best.returns, axis=0)
            low, high = np.nanmin(best.returns, axis=0), np.nanmax(best.returns, axis=0)
        line, = ax.plot(best.eval_steps, mean, marker="o", markersize=3,
                        label=f"{run.sweep.label} (sample {best.index})")
        ax.fill_between(best.eval_steps, low, high, color=line.get_color(), alpha=0.18,
                        linewidth=0)
    ax.set_title(f"{env}: best configuration of each run (band: replicates' min to max)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def render_aggregate(env: str, runs: list[BenchmarkRun], top_n: int) -> bytes:
    """The IQM over the top-n configurations' replicate curves, with its bootstrap band."""
    fig = _figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for run in runs:
        data = top_curves(run)
        if data is None:
            continue
        steps, curves = data
        mid, low, high = iqm_band(curves)
        line, = ax.plot(steps, mid, marker="o", markersize=3,
                        label=f"{run.sweep.label} ({curves.shape[0]} curves)")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(f"{env}: IQM of the top-{top_n} configurations' replicate curves, "
                 f"{C.CONFIDENCE:.0%} bootstrap band")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _positions(row: Any, values: list[Any]) -> tuple[list[float], list[str] | None]:
    """x positions of ``values``: the numbers, or category indices and their labels."""
    from hyperlax.report.plots import is_categorical

    if not is_categorical(row):
        return [float(v) for v in values], None
    labels = sorted({R.value_text(v) for v in values})
    return [float(labels.index(R.value_text(v))) for v in values], labels


def render_slices(env: str, runs: list[BenchmarkRun], slice_metric: str) -> bytes | None:
    """One row per run, one panel per sampled hyperparameter: the slice metric of every
    finished sample against its value, the top-n in colour. None: nothing was sampled."""
    metric = SLICE_METRICS[slice_metric]
    names = list(dict.fromkeys(n for run in runs for n in run.sweep.collected.plan.sampled))
    if not names:
        return None
    fig = _figure(max(4.0, 3.2 * len(names)), 2.6 * len(runs) + 0.6)
    for r, run in enumerate(runs):
        plan = run.sweep.collected.plan
        scored = [s for s in R.ranked(run.sweep.collected, RANK_METRIC)
                  if s.score(metric) is not None]
        top = {s.index for s in run.top}
        for c, name in enumerate(names):
            ax = fig.add_subplot(len(runs), len(names), r * len(names) + c + 1)
            if r == 0 or c == 0:
                ax.set_title(name if r == 0 else "", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{run.sweep.label}\n{slice_metric}", fontsize=8)
            row = next((h for h in plan.hyperparams if h.name == name), None)
            if row is None or name not in plan.sampled or not scored:
                ax.text(0.5, 0.5, "not sampled", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="#777777")
                continue
            xs, labels = _positions(row, [plan.samples[s.index].values[name] for s in scored])
            ys = [s.score(metric) for s in scored]
            picked = [k for k, s in enumerate(scored) if s.index in top]
            ax.scatter(xs, ys, s=12, color="#9a9a9a", label="samples")
            ax.scatter([xs[k] for k in picked], [ys[k] for k in picked], s=30,
                       color="tab:red", label=f"top-{len(top)}")
            if labels is not None:
                ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30)
            elif row.log_scale and min(xs) > 0:
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: no overlap
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{env}: {slice_metric} against each sampled hyperparameter")
    return _png(fig)


def env_files(env: str, runs: list[BenchmarkRun], top_n: int, slice_metric: str
              ) -> dict[str, bytes]:
    """An environment's figures and each run's results table (names under the output dir)."""
    rows = [C.sweep_row(run.sweep) for run in runs]
    stem = _safe(env)
    files = {f"plots/{stem}_return_distribution.png":
             C.render_compare([run.sweep for run in runs], rows, RANK_METRIC),
             f"plots/{stem}_top1_comparison.png": render_best_curves(env, runs),
             f"plots/{stem}_aggregate_iqm_top{top_n}.png": render_aggregate(env, runs, top_n)}
    slices = render_slices(env, runs, slice_metric)
    if slices is not None:
        files[f"plots/{stem}_slice_{slice_metric}.png"] = slices
    for run in runs:
        files[f"data/{_safe(run.name)}_summary.csv"] = \
            R.results_csv(run.sweep.collected, RANK_METRIC).encode("utf-8")
    return files


@dataclass(frozen=True)
class PlotRequest:
    benchmark: Path
    top_n: int = 5
    slice_metric: str = "peak_return"
    combined_only: bool = False
    with_info: bool = True
    max_workers: int = 1


def plot_benchmark(request: PlotRequest, note: Callable[[str], None]
                   ) -> tuple[list[str], dict[str, Any]]:
    """Read the benchmark's runs, write the figures (and, unless combined only, the tables
    and ``benchmark_plots.json``) into ``plots_dir``; (lines to print, the JSON document)."""
    from hyperlax.storage import atomic

    runs = find_runs(request.benchmark, request.top_n, request.with_info, note,
                     request.max_workers)
    sweeps = [run.sweep for run in runs]
    rows = [C.sweep_row(s) for s in sweeps]
    files = {f"plots/{COMBINED}": C.render_compare(sweeps, rows, RANK_METRIC)}
    envs = list(dict.fromkeys(s.task for s in sweeps))
    if not request.combined_only:
        # Drawn one after another: matplotlib's text parsing is not thread-safe.
        for env in envs:
            files.update(env_files(env, [r for r in runs if r.sweep.task == env],
                                   request.top_n, request.slice_metric))
    methods = C.method_rows(sweeps)
    document = {"benchmark": str(request.benchmark), "metric": "peak_return",
                "top_n": request.top_n, "slice_metric": request.slice_metric,
                "combined_only": request.combined_only, "confidence": C.CONFIDENCE,
                "resamples": C.RESAMPLES,
                "runs": [{"run": run.name, **row, "top_samples": [s.index for s in run.top]}
                         for run, row in zip(runs, rows)],
                "labels": methods, "files": sorted(files)}
    if not request.combined_only:
        files[DOCUMENT] = (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
    out = plots_dir(request.benchmark)
    for name, data in files.items():
        try:
            # beside the benchmark, in the directory that holds it: never through a link
            atomic.atomic_write(out / name, data, within=out.parent)
        except OSError as exc:
            raise atomic.storage_error(out / name, exc, "cannot write the benchmark's plots"
                                       ) from None
    lines = C.compare_lines(rows, methods, "peak (best)")
    what = "the combined figure" if request.combined_only else \
        f"{len(files)} files ({len(envs)} environments, {len(runs)} runs)"
    return lines + ["", f"wrote {what} to {out}"], document
