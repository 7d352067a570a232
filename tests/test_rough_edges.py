"""Rough edges a new user hit (issue #24): each test fails without its fix."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hyperlax.report.rungs import rung_lines


def _row(sample, reached, ranks):
    row = {"sample": sample, "reached": reached, "status": "done"}
    for r in range(2):
        rank = ranks.get(r)
        row[f"rung_{r}_value"] = None if rank is None else float(-rank)
        row[f"rung_{r}_rank"] = rank
        row[f"rung_{r}_survived"] = None if rank is None else (r == 0 and reached == 1)
    return row


def test_rung_table_lists_samples_stopped_at_rung_0_by_rank():
    halving = SimpleNamespace(metric="final", eta=2, rungs=[object(), object()])
    plan = SimpleNamespace(halving=halving, settings=SimpleNamespace(num_evaluations=4))
    collected = SimpleNamespace(plan=plan, rungs=[SimpleNamespace(rung=0), SimpleNamespace(rung=1)])
    rows = [_row(0, 0, {0: 4}), _row(1, 1, {0: 2, 1: 2}), _row(2, 0, {0: 3}),
            _row(3, 1, {0: 1, 1: 1})]
    lines = rung_lines(collected, {"summary": [], "rows": rows})
    table = [line.split() for line in lines if line.startswith("  ") and line.split()[0].isdigit()]
    assert [int(cells[0]) for cells in table] == [3, 1, 2, 0]


def _analysis(base, first, total, ci):
    return {"metric": "final", "base_samples": base, "confidence": 0.95,
            "indices": {"actor_lr": {"first_order": first, "total_order": total,
                                     "first_order_ci": ci, "total_order_ci": ci},
                        "gamma": {"first_order": 0.01, "total_order": 0.02,
                                  "first_order_ci": [0.0, 0.02], "total_order_ci": [0.0, 0.03]}}}


def test_sobol_report_warns_at_a_tiny_base_sample_and_aligns_its_columns():
    from hyperlax.report.sensitivity import sensitivity_lines

    lines = sensitivity_lines(_analysis(8, -0.34, 1.59, [-1.2, 0.9]))
    assert lines[-1].startswith("warning: ") and "8 base samples" in lines[-1]
    assert "outside [0, 1]" in lines[-1] and "num_samples >= 256" in lines[-1]
    header, *rows = lines[1:-1]
    total_end = header.index("total") + len("total")
    for row in rows:  # each total ends right under its header, whatever the signs
        assert row[total_end - 1] != " " and row[total_end] == " "
    calm = sensitivity_lines(_analysis(256, 0.7, 0.75, [0.65, 0.8]))
    assert not any(line.startswith("warning") for line in calm)


def test_status_shows_an_entry_interrupted_without_checkpoints_as_partial(tmp_path):
    """A stop in entry 0's training (the tiny plan has no checkpoints): status says partial,
    and its resume line keeps the exec's --compile-cache."""
    import shlex
    import signal

    from click.testing import CliRunner

    from hyperlax.cli.main import main
    from test_exec import tiny_plan
    from test_stops import Exec

    plan, _, data = tiny_plan(tmp_path, n=4, batch=2)
    assert not plan.checkpoint_every
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root, cache = tmp_path / "out", tmp_path / "my cache"
    run = Exec(plan_file, root, args=("--compile-cache", str(cache)))
    try:
        run.wait_for("train 0")
        stopped = run.stop((0.0, signal.SIGINT))
    finally:
        run.kill()
    assert stopped.code == 128 + signal.SIGINT, stopped.stderr
    status = CliRunner().invoke(main, ["status", str(plan_file), "--output-root", str(root)])
    first = plan.entries[0].path
    assert f"partial  {first}" in status.output, status.output
    resume = status.output[status.output.index("finish it with: "):].splitlines()[0]
    words = shlex.split(resume[len("finish it with: "):].split("  (")[0])
    assert words[words.index("--compile-cache") + 1] == str(cache.resolve())


def test_a_program_compiled_again_is_counted_and_said_not_quietly_added():
    """Announced: the distinct programs (4); the pool drops program 0 while 1-3 run and
    compiles it again: the log says 5, and why, instead of raising 4 to 5 unexplained."""
    import io

    from hyperlax.exec.programs import ProgramCache
    from hyperlax.exec.progress import Progress
    from hyperlax.exec.schedule import Use
    from test_compile_ahead import K, FakeCompiler

    stream = io.StringIO()
    progress = Progress(stream)
    order = [0, 1, 2, 3, 0]
    progress.announce("exec: 5 entries to run", programs=len(set(order)))
    cache = ProgramCache(FakeCompiler(), ("init", "chunk"), workers=1, window=2,
                         listener=progress)
    try:
        for i, s in enumerate(order):
            cache.want(Use(K(t), [t]) for t in order[i:])
            cache.get(K(s), [s])
    finally:
        cache.close()
    assert cache.compiles == 5 and cache.again == 1
    lines = stream.getvalue().splitlines()
    assert "5 programs to compile, not 4: 1 dropped to save memory and compiled again" in lines
    assert "compiled 5/5 programs" in lines[-1]


def test_a_seed_budget_too_small_hints_the_smallest_run_length_modifier(tmp_path):
    """The hint speaks in flags, and the number it names compiles."""
    import re

    from click.testing import CliRunner

    from hyperlax.cli.main import main
    from hyperlax.compiler import compile_manifest

    csv = tmp_path / "f.csv"
    common = ["--algo-and-network-config", "ppo_mlp", "--env-config", "gymnax.cartpole"]
    made = CliRunner().invoke(main, ["generate-hp-samples", *common, "--num-samples", "4",
                                     "--output-file", str(csv)])
    assert made.exit_code == 0, made.output
    loaded = [*common, "--load-hyperparams", str(csv)]
    quick = CliRunner().invoke(main, ["sweep-hp-samples", *loaded, "--run-length-modifier",
                                      "quick", "--output-root", str(tmp_path / "sweep")])
    assert quick.exit_code == 2
    hint = [line for line in quick.output.splitlines() if line.startswith("hint: ")][-1]
    assert "[space]" not in hint and "[fixed]" not in hint
    steps = re.search(r"--run-length-modifier (\d+) or more", hint)[1]
    manifest = tmp_path / "m.toml"
    emitted = CliRunner().invoke(main, ["sweep-hp-samples", *loaded, "--run-length-modifier",
                                        steps, "--emit-manifest", str(manifest)])
    assert emitted.exit_code == 0, emitted.output
    compile_manifest(manifest)  # raises if the named budget were still too small
    fewer = manifest.read_text().replace(f"total_timesteps = {steps}",
                                         f"total_timesteps = {int(steps) - 1}")
    assert fewer != manifest.read_text()
    manifest.write_text(fewer)
    try:
        compile_manifest(manifest)
    except Exception as exc:
        assert "is less than" in str(exc) or "less than" in repr(exc.problems)
    else:
        raise AssertionError("one step fewer compiled: the hint's number is not the smallest")


def test_init_schema_line_resolves_wherever_the_manifest_is_written(tmp_path, monkeypatch):
    import json
    import tomllib
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from click.testing import CliRunner

    from hyperlax.cli.main import main

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    for where in (tmp_path / "a.toml", tmp_path / "deep" / "er" / "b.toml"):
        where.parent.mkdir(parents=True, exist_ok=True)
        result = CliRunner().invoke(main, ["init", "-o", str(where)])
        assert result.exit_code == 0, result.output
        first = where.read_text().splitlines()[0]
        assert first.startswith("#:schema file://"), first
        schema = Path(unquote(urlparse(first.split(" ", 1)[1]).path))
        assert schema.is_file()
        # the same schema as schemas/, and inside the package, so an install ships it
        assert json.loads(schema.read_text()) == json.loads(
            (root / "schemas" / "manifest.schema.json").read_text())
        assert schema.parent == root / "hyperlax" / "manifest"
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert "manifest/*.schema.json" in data["tool"]["setuptools"]["package-data"]["hyperlax"]


def test_compare_writes_beside_its_inputs_and_benchmark_names_where(tmp_path):
    import shlex

    from hyperlax.cli.main import main
    from hyperlax.exec.benchmark import Outcome, Run, comparison_dir, summary_lines

    roots = [tmp_path / "runs" / "ppo" / "cartpole", tmp_path / "runs" / "dqn" / "cartpole"]
    assert comparison_dir(roots) == tmp_path / "runs" / "compare"
    assert comparison_dir([tmp_path / "a"]) == tmp_path / "compare"
    runs = [Run(label=str(k), root=r, plan=None, plan_id="") for k, r in enumerate(roots)]
    line = summary_lines(runs, Outcome(done=runs))[-1]
    words = shlex.split(line[len("compare them: "):])
    assert words[words.index("-o") + 1] == str(tmp_path / "runs" / "compare")
    output = next(p for p in main.commands["compare"].params if p.name == "output")
    assert output.default is None  # not ./compare in whatever the current directory is


def test_compare_legend_covers_no_box(monkeypatch):
    from hyperlax.report import plots
    from hyperlax.report.compare import render_compare, sweep_row, sweep_scores
    from test_compare import fake

    figures = []
    real = plots.png_bytes
    monkeypatch.setattr(plots, "png_bytes", lambda fig, canvas: figures.append(fig)
                        or real(fig, canvas))
    # scores filling the whole height, so a legend anywhere inside the axes covers data
    sweeps = [sweep_scores(fake("quickstart.plan.msgpack", list(x)), label, "final")
              for x, label in ((range(-1000, 0, 100), "a"), (range(-900, 100, 100), "b"))]
    render_compare(sweeps, [sweep_row(s) for s in sweeps], "final")
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))
        assert fig.bbox.contains(legend.x1 - 1, legend.y0 + 1)  # and it is not cut off


def test_a_resume_counts_only_the_steps_left_and_this_runs_training_time(tmp_path, monkeypatch):
    """Crash after evaluation 2 of 4 was checkpointed, resume: exec's first line and the
    progress count half the steps, and the training time is this exec's, within its wall."""
    from hyperlax.exec.checkpoints import files as checkpoint_files
    from hyperlax.exec.local_exec import execute
    from hyperlax.exec.progress import Progress
    from hyperlax.exec.schedule import checkpointed, describe, entry_steps
    from test_checkpoints import PPO, Crash, crash_at, make_plan, no_crash

    plan, pid, data = make_plan(tmp_path, PPO)
    root = tmp_path / "out"
    entry = plan.entries[0]
    full = entry_steps(plan, entry)
    crash_at(monkeypatch, "checkpoint:2@0")
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    no_crash(monkeypatch)
    assert checkpoint_files.progress(root, entry) == [2]
    saved = checkpointed(plan, root, [entry])
    assert entry_steps(plan, entry, saved[entry.path]) == full // 2
    assert f"{full // 2:,} env steps" in describe(plan, [entry], 0, 1, 0, saved)
    assert checkpointed(plan, root, [entry], redo={entry.path}) == {}  # redone: from scratch
    progress = Progress(quiet=True)
    report = execute(plan, pid, data, root, progress=progress)
    assert progress.steps_total == full // 2 == report.env_steps
    assert 0 < report.train_seconds <= report.seconds
    import json

    # the entry's own record keeps both runs' training; the exec's summary only its own
    recorded = json.loads((root.joinpath(*entry.path.split("/")) / "summary.json").read_text())
    assert report.train_seconds < recorded["train_seconds"]


def test_cost_says_training_and_compile_time_from_what_exec_measured_here(tmp_path,
                                                                          monkeypatch):
    import json
    import re

    from click.testing import CliRunner

    from hyperlax.cli.main import main
    from hyperlax.cli.seed.sweep import cost_lines
    from hyperlax.exec import throughput
    from test_exec import tiny_plan

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plan, _, data = tiny_plan(tmp_path, n=2, batch=2)
    before = cost_lines(plan)[1]
    # no figure: a range, and why, never one precise-looking number
    assert before.startswith("time: unknown here (no exec has measured this machine yet)")
    assert re.search(r"at \S+ to \S+ env steps/s, .+ to .+ of training", before), before
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    ran = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root",
                                    str(tmp_path / "out"), "-q"])
    assert ran.exit_code == 0, ran.output
    stored = json.loads(throughput.cache_file().read_text())
    key = f"{plan.settings.algorithm} {plan.settings.env}"
    assert stored["figures"][key]["steps_per_second"] > 0
    after = cost_lines(plan)[1]
    assert after.startswith("time: about ") and f"measured here for {key}" in after
    assert "just now" in after and "compiling at" in after
    # a week and more later, or with another JAX, the figure is not used
    week = throughput.STALE_DAYS * 86400 + 3600
    import time

    assert "days old" in cost_lines(plan, now=time.time() + week)[1]
    stored["figures"][key]["jax"] = "0.0.1"
    throughput.cache_file().write_text(json.dumps(stored))
    assert "jax changed since" in cost_lines(plan)[1]
    # a finished sweep run again: no cost
    assert cost_lines(plan, tmp_path / "out") == []


def test_cost_of_a_partial_sweep_is_what_is_left(reference_run, tmp_path, monkeypatch):
    import shutil

    from hyperlax.cli.seed.sweep import cost_lines
    from hyperlax.storage.sweepdir import MARKER

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plan = reference_run.plan
    root = tmp_path / "copy"
    shutil.copytree(reference_run.root, root)
    fresh = cost_lines(plan)[0]
    assert "left of" not in fresh and cost_lines(plan, tmp_path / "absent")[0] == fresh
    assert cost_lines(plan, root) == []
    last = plan.entries[-1]
    (root.joinpath(*last.path.split("/")) / MARKER).unlink()
    left = cost_lines(plan, root)[0]
    assert left.startswith(f"cost: {len(last.samples)} configurations (left of "
                           f"{len(plan.samples)})")


def _hint_lines(text: str) -> list[str]:
    """The lines that carry a hint; each must start with it (issue #24 item 15 saw `show`
    print `...per runhint:`, a hint glued to the end of the line before)."""
    lines = [line for line in text.splitlines() if "hint:" in line]
    assert all(line.startswith("hint:") for line in lines), lines
    return lines


def test_every_hint_starts_its_own_line_in_plan_show_and_the_seed_cost(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from conftest import SPECS
    from hyperlax.cli.main import main
    from hyperlax.cli.seed.sweep import cost_lines
    from hyperlax.plan.read import read_plan

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifests = sorted(SPECS.glob("*.toml"))
    # and one that hints: ppo_structures without `structures = 4` gives nearly every sample a
    # structure of its own, which `plan` and the seed commands' cost line both hint about
    one_each = tmp_path / "one_each.toml"
    one_each.write_text((SPECS / "ppo_structures.toml").read_text()
                        .replace("structures = 4\n", "").replace("#:schema", "#"))
    hints = []
    for manifest in [*manifests, one_each]:
        plan_file = tmp_path / f"{manifest.stem}.msgpack"
        planned = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(plan_file)])
        assert planned.exit_code == 0, planned.output
        hints += _hint_lines(planned.output)  # stdout and stderr, interleaved as printed
        for flags in ([], ["--samples"]):
            shown = CliRunner().invoke(main, ["show", *flags, str(plan_file)])
            assert shown.exit_code == 0, shown.output
            assert shown.output.endswith("\n")  # what a shell prints next starts a line
            hints += _hint_lines(shown.output)
        lines = cost_lines(read_plan(plan_file)[0])
        assert all("\n" not in line for line in lines), lines  # each printed by one echo
        hints += _hint_lines("\n".join(lines))
    assert len(manifests) >= 8 and len(hints) == 2, hints  # plan's and the cost line's
