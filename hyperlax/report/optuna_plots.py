"""Optuna's own figures of a search, drawn with its matplotlib backend (`--save-optuna-plots`)

The seed's ``optuna-hp-search --save-optuna-plots``: the optimization history, the parameter
importances and the parallel coordinates of the study mirrored into the search's Optuna
storage, one set per objective, as PNGs in ``optuna_plots/`` of the search directory. Optuna
and matplotlib are imported here only. Parameter importance uses Optuna's default evaluator,
fANOVA, when scikit-learn (which it needs) is installed, and PED-ANOVA otherwise; a figure
Optuna cannot draw (too few trials, one value per parameter) is skipped with a note. These
are conveniences: nothing here stops the command or changes its exit status.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Callable

from hyperlax.errors import HyperlaxError

PLOTS_DIR = "optuna_plots"


def importance_evaluator() -> tuple[Any, str]:
    """(evaluator, its name): fANOVA needs scikit-learn; PED-ANOVA needs only what Optuna
    needs."""
    import importlib.util

    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if importlib.util.find_spec("sklearn") is not None:
        return FanovaImportanceEvaluator(seed=0), "fANOVA"
    return PedAnovaImportanceEvaluator(), "PED-ANOVA (scikit-learn, for fANOVA, is not installed)"


def _png(axes: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figures(study: Any, metrics: list[str], note: Callable[[str], None]) -> dict[str, bytes]:
    """File name -> PNG, per objective (suffixed with its metric when there are several)."""
    import matplotlib

    matplotlib.use("Agg")   # no display needed; Optuna's backend draws through pyplot
    from optuna.visualization import matplotlib as vis

    evaluator, evaluator_name = importance_evaluator()
    out: dict[str, bytes] = {}
    for k, metric in enumerate(metrics):
        suffix = f"_{metric}" if len(metrics) > 1 else ""
        target = (lambda t, k=k: t.values[k]) if len(metrics) > 1 else None
        draws = {
            f"optimization_history{suffix}.png":
                lambda: vis.plot_optimization_history(study, target=target, target_name=metric),
            f"param_importances{suffix}.png":
                lambda: vis.plot_param_importances(study, evaluator=evaluator, target=target,
                                                   target_name=metric),
            f"parallel_coordinate{suffix}.png":
                lambda: vis.plot_parallel_coordinate(study, target=target, target_name=metric),
        }
        for name, draw in draws.items():
            try:
                # rc_context: Optuna's backend sets a pyplot style, which must not outlive it
                with matplotlib.rc_context(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # Optuna's "experimental" warnings
                    out[name] = _png(draw())
            except Exception as exc:   # a figure Optuna cannot draw from these trials
                note(f"note: skipped {name}: {type(exc).__name__}: {exc}")
    if any(name.startswith("param_importances") for name in out):
        note(f"note: parameter importance by {evaluator_name}")
    return out


def write_optuna_plots(root: Path, storage: str, study_name: str,
                       metrics: list[str]) -> list[str]:
    """Draw the figures of the study ``study_name`` in the search's storage into
    ``root/optuna_plots``; the lines to print (notes, and what was written)."""
    from hyperlax.search import sampler
    from hyperlax.storage.atomic import atomic_write

    lines: list[str] = []
    try:
        optuna = sampler.require_optuna()
        study = optuna.load_study(study_name=study_name,
                                  storage=sampler.open_storage(sampler.storage_url(root,
                                                                                   storage)))
    except Exception as exc:   # the search itself is done; say why there are no figures
        return [f"note: no Optuna figures: {type(exc).__name__}: {exc}"]
    drawn = figures(study, metrics, lines.append)
    out = root / PLOTS_DIR
    try:
        for name, data in drawn.items():
            atomic_write(out / name, data, within=root)
    except (OSError, HyperlaxError) as exc:  # a disk error, or a link planted out of root
        return lines + [f"warning: could not write the Optuna figures to {out}: "
                        f"{getattr(exc, 'strerror', None) or exc}"]
    if drawn:
        lines.append(f"wrote {len(drawn)} Optuna figures to {out}")
    return lines
