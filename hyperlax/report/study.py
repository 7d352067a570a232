"""``hyperlax report`` of a search directory (one holding ``search.json``): the study's history
round by round, its best trials (the Pareto front with several objectives), the ``[fixed]``
block that pins the best, and which hyperparameters mattered.

Everything comes from the study file, the truth of a search; the round plans (for the
``[fixed]`` block) are read when present. Importance is Optuna's PED-ANOVA (Watanabe et al.,
2023), computed per objective over the complete trials: Optuna's default evaluator, fANOVA,
needs scikit-learn, which hyperlax does not depend on; PED-ANOVA needs nothing but Optuna. It
compares the hyperparameters of the best 10 % of trials with all of them, so it is reported
only from 20 complete trials on (the top 10 % must hold at least 2). Without Optuna installed
the report is the same, without importance. JAX-free; matplotlib only for the plot.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from hyperlax.errors import HyperlaxError
from hyperlax.report.results import csv_cell, fixed_toml, pinned_values, value_text
from hyperlax.report.write import write_files
from hyperlax.search.rounds import best_of, better
from hyperlax.storage.provenance import mixed_warning, records_under
from hyperlax.search.study_file import STUDY_FILE, StudyFile, Told, TrialRecord, read_study
from hyperlax.search.verify import check_told
from hyperlax.storage.atomic import inside_root

MIN_IMPORTANCE_TRIALS = 20


def is_search_dir(path: Path) -> bool:
    """A directory holding a study file, whatever it is: a link or a FIFO there is refused by
    the reader with a located error, not taken for a plan file."""
    study = path / STUDY_FILE
    return path.is_dir() and (study.exists() or study.is_symlink())


@dataclass
class Trial:
    record: TrialRecord
    round: int
    path: str           # the round's sweep directory, relative to the search dir
    told: Told | None   # None: asked, not told yet


@dataclass
class SearchReport:
    text: str
    json_text: str
    document: dict[str, Any]


def write_search_report(root: Path, report_dir: Path | None, top_k: int,
                        plots: bool = True) -> SearchReport:
    """Read the study file in ``root``, write trials.csv, search_report.json (and
    history.png) to ``report_dir`` (default ``<root>/report``), and compose the text."""
    record = read_study(root / STUDY_FILE)
    check_told(root, record)  # the told values are ranked: they must be the curves'
    trials = [Trial(t, r.index, r.path, told) for r in record.rounds
              for t, told in zip(r.trials, r.told or [None] * len(r.trials))]
    if not any(t.told is not None for t in trials):
        raise HyperlaxError(str(root), "no trial of this search has been told yet",
                            f"run the search first: its manifest with hyperlax search "
                            f"--output-root {root}")
    within = report_dir if report_dir is not None else root  # -o is the user's; report/ is ours
    report_dir = report_dir if report_dir is not None else root / "report"
    metrics = [o["metric"] for o in record.objectives]
    directions = [o["direction"] for o in record.objectives]
    best = best_trials(trials, directions)
    importance, why = _importance(record, trials, metrics, directions)
    files = {"trials.csv": trials_csv(trials, metrics, list(record.space)).encode("utf-8")}
    if plots:
        files["history.png"] = render_history(record, trials, metrics, directions)
    names = ["trials.csv", "search_report.json", *(n for n in files if n.endswith(".png"))]
    document = {
        "search": {"name": record.name, "study_name": record.study_name,
                   "method": record.method, "objectives": record.objectives,
                   "seed": record.seed, "trials": record.trials,
                   "trials_per_round": record.trials_per_round,
                   "optuna_version": record.optuna_version, "space": record.space},
        "search_dir": str(root),
        "asked": len(trials), "told": sum(t.told is not None for t in trials),
        "complete": sum(t.told is not None and t.told.state == "complete" for t in trials),
        "history": history(record, directions),
        "pareto_front": len(directions) > 1,
        "best": [_trial_json(t, metrics) for t in best[:top_k if len(directions) == 1
                                                      else len(best)]],
        "best_fixed_toml": fixed_block(root, record, best[0], metrics) if best else None,
        "importance": importance, "importance_note": why,
        "files": [str(report_dir / n) for n in names],
        "environment_warning": mixed_warning(
            [p for r in record.rounds for p in records_under(root / r.path).values()],
            "rounds' entries"),
    }
    json_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    files["search_report.json"] = json_text.encode("utf-8")
    write_files(report_dir, files, names, within=within)
    return SearchReport(text(record, trials, best, document, top_k), json_text, document)


# --- what the study found --------------------------------------------------------------------

def dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    """a is at least as good as b in every objective and better in one."""
    return all(not better(y, x, d) for x, y, d in zip(a, b, directions)) and any(
        better(x, y, d) for x, y, d in zip(a, b, directions))


def best_trials(trials: list[Trial], directions: list[str]) -> list[Trial]:
    """One objective: complete trials, best first. Several: the Pareto front (no other trial
    is as good in every objective and better in one), ordered by the first objective."""
    done = [t for t in trials if t.told is not None and t.told.state == "complete"
            and all(math.isfinite(v) for v in t.told.values)]
    sign = -1.0 if directions[0] == "maximize" else 1.0
    done.sort(key=lambda t: (sign * t.told.values[0], t.record.number))
    if len(directions) == 1:
        return done
    return [t for t in done if not any(dominates(o.told.values, t.told.values, directions)
                                       for o in done if o is not t)]


def history(record: StudyFile, directions: list[str]) -> list[dict[str, Any]]:
    """Per round: trials, complete, failed, the round's best and the best so far (first
    objective)."""
    rows, seen = [], []
    for r in record.rounds:
        told = r.told or []
        seen += told
        here, so_far = best_of(told, directions), best_of(seen, directions)
        rows.append({"round": r.index, "trials": len(r.trials), "told": r.told is not None,
                     "complete": sum(t.state == "complete" for t in told),
                     "failed": sum(t.state == "fail" for t in told),
                     "round_best": None if here is None else here.values[0],
                     "round_best_trial": None if here is None else here.number,
                     "best_so_far": None if so_far is None else so_far.values[0],
                     "best_so_far_trial": None if so_far is None else so_far.number})
    return rows


def _trial_json(t: Trial, metrics: list[str]) -> dict[str, Any]:
    return {"trial": t.record.number, "round": t.round, "sample": t.record.sample,
            "values": dict(zip(metrics, t.told.values)), "params": t.record.values}


def fixed_block(root: Path, record: StudyFile, best: Trial, metrics: list[str]) -> str:
    """The [fixed] block that pins ``best``: every searched value and, from its round's plan
    when it is there, what the manifest pinned."""
    values = dict(best.record.values)
    try:
        from hyperlax.plan.read import read_plan
        from hyperlax.storage.sweepdir import PLAN_COPY

        plan, _ = read_plan(root / best.path / PLAN_COPY)
        values = pinned_values(plan, best.record.sample)
    except (HyperlaxError, OSError, IndexError, TypeError):
        pass  # the round's directory is gone: the searched values alone
    scores = ", ".join(f"{m} {v:.6g}" for m, v in zip(metrics, best.told.values))
    return fixed_toml([f"# trial {best.record.number} of search {record.name} (round "
                       f"{best.round}, sample {best.record.sample}): {scores}"], values)


def _importance(record: StudyFile, trials: list[Trial], metrics: list[str],
                directions: list[str]) -> tuple[dict[str, dict[str, float]] | None, str]:
    """{metric: {hyperparameter: importance}} by PED-ANOVA, or None and why not."""
    done = [t for t in trials if t.told is not None and t.told.state == "complete"]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return None, (f"importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials "
                      f"(PED-ANOVA's top 10 % must hold 2); this search has {len(done)}")
    try:
        import optuna
    except ImportError:
        return None, "importance needs Optuna: pip install 'hyperlax[optuna]'"
    import warnings

    from hyperlax.manifest.distributions import Distribution
    from hyperlax.search.spaces import distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {n: msgspec.convert(d, Distribution) for n, d in record.space.items()}
    dists = distributions(space)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental
        for i, (metric, direction) in enumerate(zip(metrics, directions)):
            study = optuna.create_study(direction=direction)
            study.add_trials([optuna.trial.create_trial(
                params=t.record.params, distributions=dists, value=t.told.values[i])
                for t in done])
            scores = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
            out[metric] = {n: float(v) for n, v in scores.items()}
    return out, "PED-ANOVA over the complete trials (Optuna)"


# --- files and text --------------------------------------------------------------------------

def trials_csv(trials: list[Trial], metrics: list[str], names: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", "round", "state", *metrics, "note", "sample", "round_dir",
                     *names])
    for t in trials:
        told = t.told
        values = told.values if told is not None and told.values else [None] * len(metrics)
        state = "asked" if told is None else told.state
        note = t.record.problem or (told.note if told is not None else None)
        writer.writerow([t.record.number, t.round, state, *map(csv_cell, values),
                         csv_cell(note), csv_cell(t.record.sample), t.path,
                         *(csv_cell(t.record.values.get(n)) for n in names)])
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def text(record: StudyFile, trials: list[Trial], best: list[Trial], document: dict[str, Any],
         top_k: int) -> str:
    objectives = ", ".join(f"{o['metric']} ({o['direction']})" for o in record.objectives)
    lines = [f"search {record.name}: {record.method} on {objectives}, seed {record.seed}; "
             f"{document['told']} of {document['asked']} asked trials told "
             f"({document['complete']} complete), budget {record.trials}",
             "", f"  {'round':>5}  {'trials':>6}  {'complete':>8}  {'failed':>6}  "
                 f"{'round best':>12}  {'best so far':>12}"]
    for h in document["history"]:
        lines.append(f"  {h['round']:>5}  {h['trials']:>6}  {h['complete']:>8}  "
                     f"{h['failed']:>6}  {_num(h['round_best']):>12}  "
                     f"{_num(h['best_so_far']):>12}" + ("" if h["told"] else "  (not told)"))
    metrics = [o["metric"] for o in record.objectives]
    shown = best if len(metrics) > 1 else best[:top_k]
    title = (f"Pareto front: {len(best)} trial{'s' if len(best) != 1 else ''}"
             if len(metrics) > 1
             else f"top {len(shown)} of {len(best)} complete trials")
    lines += ["", title]
    for t in shown:
        scores = ", ".join(f"{m} {v:.6g}" for m, v in zip(metrics, t.told.values))
        params = ", ".join(f"{n} = {value_text(v)}" for n, v in t.record.values.items())
        lines.append(f"  trial {t.record.number} (round {t.round}): {scores}; {params}")
    if document["best_fixed_toml"]:
        lines += ["", "to pin the best in a follow-up manifest, paste:",
                  document["best_fixed_toml"].rstrip("\n")]
    lines.append("")
    if document["importance"]:
        for metric, scores in document["importance"].items():
            ranked = ", ".join(f"{n} {v:.2f}" for n, v in scores.items())
            lines.append(f"importance for {metric} ({document['importance_note']}): {ranked}")
    else:
        lines.append(f"no importance: {document['importance_note']}")
    if document["environment_warning"]:
        lines += ["", document["environment_warning"]]
    files = ", ".join(Path(f).name for f in document["files"])
    lines += ["", f"wrote {files} to {Path(document['files'][0]).parent}"]
    return "\n".join(lines) + "\n"


def render_history(record: StudyFile, trials: list[Trial], metrics: list[str],
                   directions: list[str]) -> bytes:
    """Each objective against the trial number, the best so far as a line, rounds shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hyperlax.report.plots import png_bytes

    fig = Figure(figsize=(7, 2.8 * len(metrics)), constrained_layout=True)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    done = [t for t in trials if t.told is not None and t.told.state == "complete"]
    for i, (ax, metric, direction) in enumerate(zip(axes, metrics, directions)):
        for r in record.rounds[::2]:  # every other round shaded: where rounds begin and end
            numbers = [t.number for t in r.trials]
            ax.axvspan(min(numbers) - 0.5, max(numbers) + 0.5, color="0.93", linewidth=0)
        xs = [t.record.number for t in done]
        ys = [t.told.values[i] for t in done]
        ax.scatter(xs, ys, s=14, color="tab:blue", label="trial")
        best, line = None, []
        for x, y in sorted(zip(xs, ys)):
            best = y if best is None or better(y, best, direction) else best
            line.append((x, best))
        if line:
            ax.step(*zip(*line), where="post", color="tab:orange", label="best so far")
        ax.set_ylabel(f"{metric} ({direction[:3]})")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("trial (shaded: every other round)")
    axes[0].set_title(f"{record.name}: {record.method} search history")
    axes[0].legend(loc="best", fontsize=8)
    return png_bytes(fig, FigureCanvasAgg)
