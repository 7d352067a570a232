"""plot-benchmark: a run-benchmark directory's runs compared and plotted

The seed system's ``plot-benchmark --results-dir-to-plot DIR``, over ``hyperlax.report.benchmark``
(which builds on ``compare``). Registered on the ``hyperlax`` group by ``hyperlax.cli.main``.
Module level stays JAX-free and matplotlib-free: ``--help`` and flag errors are instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from hyperlax.cli.errors import user_errors
from hyperlax.cli.seed.flags import LOG_LEVEL_OPTION, QUIET_LEVELS, SeedCommand, bool_option

COMMAND = "plot-benchmark"


@click.command(COMMAND, cls=SeedCommand)
@click.option("--results-dir-to-plot", "results_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="the benchmark directory run-benchmark wrote: <output-root>/<benchmark-name>")
@click.option("--top-n", default=5, show_default=True, type=click.IntRange(min=1),
              help="configurations per run in the aggregate IQM curve and highlighted in the "
                   "slices (ranked by peak return)")
@click.option("--slice-metric", type=click.Choice(["peak_return", "final_return", "score"]),
              default="peak_return", show_default=True,
              help="the y axis of the slice plots (score: the ranking score, the peak return)")
@bool_option("--combined-only", "only the combined box plot figure of every environment")
@bool_option("--include-additional-info-in-titles",
             "label runs with the recipe and what their directory name adds (mode, samples, "
             "run length); False: the recipe alone", default=True)
@click.option("--max-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="threads reading (and checksumming) the runs' results")
@LOG_LEVEL_OPTION
@user_errors
def plot_benchmark_command(results_dir: Path, top_n: int, slice_metric: str,
                           combined_only: bool, include_additional_info_in_titles: bool,
                           max_workers: int, log_level: str) -> None:
    """The seed system's benchmark plots: every run of a run-benchmark directory read back
    and compared per environment (peak-return box plots with the IQM and its 95% bootstrap
    interval, the best curve of each run, the IQM of the top-n configurations' curves with a
    bootstrap band, slice plots per hyperparameter), into <benchmark>_plots/ beside it.
    Partial runs count what they have finished."""
    from hyperlax.report.benchmark import PlotRequest, plot_benchmark

    quiet = log_level.upper() in QUIET_LEVELS
    request = PlotRequest(results_dir, top_n, slice_metric, combined_only,
                          include_additional_info_in_titles, max_workers)
    if not quiet and max_workers > 1:
        click.echo(f"reading the runs on up to {max_workers} threads", err=True)
    lines, _ = plot_benchmark(request, lambda line: click.echo(f"note: {line}", err=True))
    if not quiet:
        for line in lines:
            click.echo(line)
