"""``hyperlax search`` end to end on a tiny PPO (2 updates per trial, 16-unit networks, the
program test_seed_cli compiles): rounds are ordinary sweeps (status, check and report work on
each), the study file and the Optuna storage hold every trial, ``report`` reads the study, a
search stopped by SIGTERM in the middle of a round ends with 143 and resumes to the study an
uninterrupted search gives, and the seed's ``optuna-hp-search`` runs and resumes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main
from hyperlax.plan.read import read_plan

optuna = pytest.importorskip("optuna")

pytestmark = pytest.mark.slow


MANIFEST = """\
[sweep]
name = "tiny-search"
recipe = "tiny.toml"
recipe_space = "include"
env = "gymnax.cartpole"
batch_size = 2
output_root = "runs/tiny-search"

[search]
method = "tpe"
trials = 4
trials_per_round = 2
objectives = [{ metric = "final_return" }, ]
"""


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def study(root: Path) -> dict:
    return json.loads((root / "search.json").read_text())


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """An uninterrupted search of 2 rounds of 2 trials, in-process."""
    tmp = tmp_path_factory.mktemp("search")
    (tmp / "tiny.toml").write_text(TINY_RECIPE)
    (tmp / "search.toml").write_text(MANIFEST)
    root = tmp / "whole"
    result = invoke("search", tmp / "search.toml", "--output-root", root)
    assert result.exit_code == 0, result.output
    return tmp, root, result.output


def test_rounds_are_ordinary_sweeps_recorded_in_the_study_file(searched):
    tmp, root, output = searched
    record = study(root)
    assert [len(r["trials"]) for r in record["rounds"]] == [2, 2]
    assert all(t["state"] == "complete" for r in record["rounds"] for t in r["told"])
    assert "round 1: told 2 trials (2 complete, 0 failed)" in output
    seeds = set()
    for r in record["rounds"]:
        directory = root / r["path"]
        plan, pid = read_plan(directory / "plan.msgpack")
        assert pid == r["plan_id"] and plan.settings.sampling == "listed"
        seeds.add(plan.settings.seed)
        # the round's manifest compiles to exactly its plan: a round can be reviewed
        result = invoke("check", f"{directory}.toml", directory / "plan.msgpack")
        assert result.exit_code == 0, result.output
        result = invoke("status", directory / "plan.msgpack", "--output-root", directory,
                        "--verify")
        assert result.exit_code == 0 and "1/1 done, 0 partial" in result.output
        summary = json.loads(next(directory.rglob("summary.json")).read_text())
        finals = {s["sample"]: s["final_return"] for s in summary["samples"]}
        for trial, told in zip(r["trials"], r["told"]):
            assert told["values"] == [finals[trial["sample"]]]
            assert [s.values for s in plan.samples][trial["sample"]] == trial["values"]
    assert len(seeds) == 2  # rounds do not share training seeds
    stored = optuna.load_study(study_name="tiny-search",
                               storage=f"sqlite:///{root / 'optuna_study.db'}")
    assert [t.params for t in stored.trials] == [t["params"] for r in record["rounds"]
                                                 for t in r["trials"]]
    again = invoke("search", tmp / "search.toml", "--output-root", root)
    assert again.exit_code == 0 and "all 4 trials asked and told" in again.output


def test_report_reads_the_study(searched, tmp_path):
    _, root, _ = searched
    result = invoke("report", root, "-o", tmp_path / "r", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    record = study(root)
    values = [t["values"][0] for r in record["rounds"] for t in r["told"]]
    assert [h["round"] for h in document["history"]] == [0, 1]
    assert document["history"][1]["best_so_far"] == max(values)
    assert document["best"][0]["values"]["final_return"] == max(values)
    assert "[fixed]" in document["best_fixed_toml"] and "actor_lr = " in \
        document["best_fixed_toml"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "history.png", "search_report.json", "trials.csv"]
    assert len((tmp_path / "r" / "trials.csv").read_text().splitlines()) == 5
    text = invoke("report", root, "-o", tmp_path / "r", "--no-plots")
    assert "top 4 of 4 complete trials" in text.output and "no importance" in text.output


@pytest.mark.stops
@pytest.mark.subprocess
def test_stopped_mid_round_resumes_to_the_uninterrupted_study(searched):
    tmp, whole, _ = searched
    root = tmp / "stopped"
    # exec options that leave results alone: the resume hint must carry them
    options = ["--claim-timeout", "600", "--compile-workers", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "hyperlax", "search", str(tmp / "search.toml"),
                             "--output-root", str(root), *options], cwd=tmp,
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)],
                     daemon=True).start()
    seen, execs, deadline = [], 0, time.monotonic() + 240
    while True:  # stop once round 1's exec has begun: in the middle of a round
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, "".join(seen)
        seen.append(line)
        execs += line.startswith("exec: ")
        if execs == 2:
            break
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143, "".join(seen)
    assert time.monotonic() - stopped_at < 15
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    hint = next(line for line in seen if "resume with: " in line).split("resume with: ")[1]
    assert hint.startswith(f"hyperlax search {tmp / 'search.toml'} --output-root {root} ")
    assert hint.rstrip().endswith(" ".join(options)), hint
    partial = study(root)
    assert partial["rounds"][0]["told"] and partial["rounds"][1]["told"] is None
    result = invoke("search", tmp / "search.toml", "--output-root", root)
    assert result.exit_code == 0, result.output
    assert "round 1: resuming its training" in result.output
    assert study(root)["rounds"] == study(whole)["rounds"]


def test_seed_front_end_runs_resumes_and_refuses_contradicting_flags(searched):
    tmp, _, _ = searched
    root = tmp / "seed"
    flags = ["optuna-hp-search", "--algo-and-network-config", tmp / "tiny.toml",
             "--env-config", "gymnax.cartpole", "--study-name", "tiny_study", "--n-trials", 4,
             "--objective-names", "peak_performance", "final_performance",
             "--objective-directions", "maximize", "maximize", "--sampler", "nsgaii",
             "--optuna-study-batch-size", 2, "--runner-hparam-batch-size", 2]
    result = invoke(*flags, "--output-root", root)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in root.iterdir()) == [
        "hyperlax.log", "optuna_plots", "optuna_study.db", "rounds", "search.json",
        "search.lock", "search.toml"]  # hyperlax.log: --save-logs, True by default
    # two objectives: Optuna's figures once per objective
    assert len(list((root / "optuna_plots").glob("optimization_history_*.png"))) == 2
    record = study(root)
    assert record["method"] == "nsgaii" and [o["metric"] for o in record["objectives"]] == [
        "best_return", "final_return"]
    assert all(len(t["values"]) == 2 for r in record["rounds"] for t in r["told"])
    stored = optuna.load_study(study_name="tiny_study",
                               storage=f"sqlite:///{root / 'optuna_study.db'}")
    assert len(stored.trials) == 4 and len(stored.directions) == 2
    result = invoke("optuna-hp-search", "--resume-from", root / "rounds", "--seed", 7)
    assert result.exit_code == 2
    assert "--seed: 7 differs from the search being resumed (42)" in result.output
    result = invoke("optuna-hp-search", "--resume-from", root, "--n-trials", 6)
    assert result.exit_code == 0, result.output
    assert [len(r["told"]) for r in study(root)["rounds"]] == [2, 2, 2]
    assert "trials = 6" in (root / "search.toml").read_text()
    report = invoke("report", root, "--no-plots")
    assert report.exit_code == 0 and "Pareto front:" in report.output
    again = invoke("optuna-hp-search", "--resume", "True", "--output-root", root / "rounds")
    assert again.exit_code == 0 and "all 6 trials asked and told" in again.output
