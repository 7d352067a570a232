"""The seed's `plot-benchmark` on a tiny `run-benchmark` directory: every flag is accepted and
changes what a test can see (files, labels, the JSON document, what is printed), the files go
to `<benchmark>_plots/` beside the benchmark, and a directory that is not a benchmark is refused
with an error, not a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main
from hyperlax.report.benchmark import iqm_band, plots_dir

ENVS = ("gymnax.cartpole", "gymnax.acrobot")


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A benchmark of the tiny recipe on two environments, 4 samples of 2 replicates each."""
    root = tmp_path_factory.mktemp("bench")
    (root / "tiny.toml").write_text(TINY_RECIPE)
    result = invoke("run-benchmark", "--benchmark-name", "B", "--algos", root / "tiny.toml",
                    "--envs", *ENVS, "--num-samples-per-run", 4, "--hparam-batch-size", 4,
                    "--num-seeds", 2, "--output-root", root / "out")
    assert result.exit_code == 0, result.output
    assert f"plot them: hyperlax plot-benchmark --results-dir-to-plot {root / 'out' / 'B'}" \
        in result.output
    return root / "out" / "B"


def plotted(bench: Path, *flags: object) -> tuple[object, Path]:
    out = bench.parent / "B_plots"
    if out.exists():
        shutil.rmtree(out)
    return invoke("plot-benchmark", "--results-dir-to-plot", bench, *flags), out


def files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
def test_plot_benchmark_writes_the_comparison_beside_the_benchmark(bench):
    result, out = plotted(bench)
    assert result.exit_code == 0, result.output
    assert files(out) == sorted([
        "benchmark_plots.json",
        "data/tiny_gymnax.acrobot_batched-N4-default_summary.csv",
        "data/tiny_gymnax.cartpole_batched-N4-default_summary.csv",
        "plots/benchmark_best_found_return_distribution_combined.png",
        *[f"plots/{env}_{kind}.png" for env in ENVS for kind in (
            "return_distribution", "top1_comparison", "aggregate_iqm_top5",
            "slice_peak_return")]])
    assert all((out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
               for f in files(out) if f.endswith(".png"))
    assert not any(p.name.endswith("_plots") for p in bench.iterdir())  # runs only in there
    doc = json.loads((out / "benchmark_plots.json").read_text())
    assert [r["task"] for r in doc["runs"]] == list(reversed(ENVS))   # directory name order
    assert all(r["finished"] == 4 and len(r["top_samples"]) == 4 for r in doc["runs"])
    assert {r["label"] for r in doc["runs"]} == {"tiny batched-N4-default"}
    assert "peak (best) return per sweep" in result.output and "IQM" in result.output
    # the per-run table is report's results.csv: one row per sample
    table = (out / "data/tiny_gymnax.cartpole_batched-N4-default_summary.csv").read_text()
    assert len(table.splitlines()) == 5 and "actor_lr" in table.splitlines()[0]


@pytest.mark.slow
def test_plot_benchmark_flags_change_what_is_drawn(bench):
    result, out = plotted(bench, "--top-n", 1, "--slice-metric", "final_return",
                          "--include-additional-info-in-titles", "False",
                          "--max-workers", 2)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "benchmark_plots.json").read_text())
    assert doc["top_n"] == 1 and all(len(r["top_samples"]) == 1 for r in doc["runs"])
    assert {r["label"] for r in doc["runs"]} == {"tiny"}
    assert doc["slice_metric"] == "final_return"
    assert "plots/gymnax.cartpole_aggregate_iqm_top1.png" in files(out)
    assert "plots/gymnax.cartpole_slice_final_return.png" in files(out)
    assert "reading the runs on up to 2 threads" in result.output

    result, out = plotted(bench, "--combined-only", "True", "--log-level", "ERROR")
    assert result.exit_code == 0, result.output
    assert files(out) == ["plots/benchmark_best_found_return_distribution_combined.png"]
    assert result.output == ""   # ERROR: nothing but errors

    result, _ = plotted(bench, "--slice-metric", "score", "--top_n", 2)  # tyro's spelling
    assert result.exit_code == 0, result.output

    # a run with nothing to read yet is skipped with a note; the others are plotted
    unfinished = bench / "zz_unfinished"
    unfinished.mkdir()
    shutil.copy(next(bench.glob("tiny_*")) / "plan.msgpack", unfinished / "plan.msgpack")
    try:
        result, out = plotted(bench)
    finally:
        shutil.rmtree(unfinished)
    assert result.exit_code == 0, result.output
    assert "note: skipping zz_unfinished: is not a hyperlax sweep directory" in result.output
    assert len(json.loads((out / "benchmark_plots.json").read_text())["runs"]) == 2


def test_plot_benchmark_refuses_what_is_not_a_benchmark(tmp_path):
    result = invoke("plot-benchmark", "--results-dir-to-plot", tmp_path / "missing")
    assert result.exit_code == 2 and "no such directory" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("plot-benchmark", "--results-dir-to-plot", tmp_path / "empty")
    assert result.exit_code == 2 and "holds no run with finished entries" in result.output
    assert "Traceback" not in result.output
    for flag, value in (("--top-n", 0), ("--slice-metric", "auc"), ("--max-workers", 0)):
        result = invoke("plot-benchmark", "--results-dir-to-plot", tmp_path, flag, value)
        assert result.exit_code == 2 and flag in result.output


def test_iqm_band_is_the_trimmed_mean_with_a_band_around_it():
    curves = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [100.0, 13.0]])
    mid, low, high = iqm_band(curves)
    assert mid.tolist() == [1.5, 11.5]   # the middle 50 %: rows 1 and 2
    assert np.all(low <= mid) and np.all(mid <= high) and high[0] > low[0]


def test_the_plots_go_beside_the_benchmark_directory_however_it_is_named(tmp_path, monkeypatch):
    bench = tmp_path / "B"
    bench.mkdir()
    assert plots_dir(Path(str(bench) + "/")) == tmp_path / "B_plots"
    monkeypatch.chdir(bench)
    assert plots_dir(Path(".")) == tmp_path.resolve() / "B_plots"   # never inside it
