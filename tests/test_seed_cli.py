"""The seed system's command line as a thin front end: sweep-hp-samples builds the equivalent
manifest, writes it and its plan into the sweep directory and executes it; --emit-manifest only
writes the manifest; --resume-from skips completed entries; generate-hp-samples writes CSV."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main
from hyperlax.cli.seed.logfile import LOG_NAME
from hyperlax.compiler import compile_manifest
from hyperlax.errors import HyperlaxError
from hyperlax.plan.read import read_plan
from hyperlax.storage.sweepdir import MARKER, SWEEP_RECORD


SAME_PLAN_FIELDS = ["settings", "hyperparams", "constants", "sampled", "structures", "samples",
                    "groups", "entries", "recipe_text"]


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def seed_flags(recipe: Path, root: Path, *extra: object) -> list[object]:
    return ["sweep-hp-samples", "--algo-and-network-config", recipe,
            "--env-config", "gymnax.cartpole", "--num-samples", 4, "--hparam-batch-size", 2,
            "--sampling-method", "qmc_sobol", "--output-root", root, "--log-level", "INFO",
            "--num-agents-slash-seeds", 1, *extra]


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory):
    """`python -m hyperlax.cli sweep-hp-samples ...` run once (in-process) into a new dir."""
    tmp = tmp_path_factory.mktemp("seed")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    root = tmp / "sweeps"
    result = invoke(*seed_flags(recipe, root))
    assert result.exit_code == 0, result.output
    return recipe, root, result.output


def test_sweep_writes_manifest_plan_and_the_seed_layout(seed_sweep):
    recipe, root, output = seed_sweep
    assert "2 entries run, 0 skipped" in output and f"next: hyperlax report {root}" in output
    # the cost, before anything runs
    assert "cost: 4 configurations x 1 seeds, 512 env steps in all; 1 structures, 1 programs" \
        in output
    assert {"sweep.toml", "plan.msgpack", SWEEP_RECORD} <= {p.name for p in root.iterdir()}
    samples = root / "tiny" / "gymnax_cartpole" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["batch_00000", "batch_00001"]
    for batch in samples.iterdir():
        assert (batch / MARKER).exists() and (batch / "curves.npz").exists()
    manifest = (root / "sweep.toml").read_text()
    assert 'recipe = "../tiny.toml"' in manifest and 'mode = "batched"' in manifest
    assert "sweep-hp-samples --algo-and-network-config" in manifest  # how it was made


def test_sweep_plan_is_the_plan_of_its_manifest(seed_sweep, tmp_path):
    recipe, root, _ = seed_sweep
    result = invoke("plan", root / "sweep.toml", "-o", tmp_path / "p.msgpack")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.msgpack").read_bytes() == (root / "plan.msgpack").read_bytes()

    # ... and the same plan as a hand-written equivalent manifest (comments and name aside)
    hand = tmp_path / "hand.toml"
    hand.write_text(f"""\
[sweep]
name = "tiny-cartpole"
recipe = "{recipe.as_posix()}"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 4
batch_size = 2
seed = 42
seeds_per_sample = 1
output_root = "{root.as_posix()}"
""")
    hand_plan, _ = compile_manifest(hand)
    seed_plan, _ = read_plan(root / "plan.msgpack")
    for field in SAME_PLAN_FIELDS:
        assert getattr(hand_plan, field) == getattr(seed_plan, field), field


@pytest.mark.parametrize("flags, mode", [
    ([], "batched"),
    (["--sequential", "True"], "sequential"),
    (["--sequential"], "sequential"),
    (["--group-by-structural-hparams", "True"], "grouped"),
    (["--group-by-structural-hparams", "False", "--sequential", "false"], "batched"),
])
def test_emit_manifest_equals_the_handwritten_manifest(tmp_path, flags, mode):
    emitted = tmp_path / "a" / "sweep.toml"
    result = invoke("sweep-hp-samples", "--algo-and-network-config", "ppo_mlp",
                    "--env-config", "gymnax.pendulum", "--num-samples", 64,
                    "--hparam-batch-size", 16, "--sampling-method", "qmc_sobol",
                    "--output-root", "runs/pendulum", "--log-level", "INFO", *flags,
                    "--emit-manifest", emitted)
    assert result.exit_code == 0, result.output
    assert f"wrote {emitted}: 64 samples" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "sweep.toml"]  # no training
    hand = tmp_path / "b" / "sweep.toml"
    hand.parent.mkdir()
    hand.write_text(f"""\
[sweep]
name = "pendulum-lr"
recipe = "ppo_mlp"
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = 64
sampling = "qmc_sobol"
seed = 42
mode = "{mode}"
batch_size = 16
seeds_per_sample = 8
output_root = "runs/pendulum"
""")
    a, _ = compile_manifest(emitted)
    b, _ = compile_manifest(hand)
    assert a.settings == msgspec.structs.replace(b.settings, name=a.settings.name)
    for field in SAME_PLAN_FIELDS[1:]:
        assert getattr(a, field) == getattr(b, field), field
    assert a.entries[0].path.startswith("ppo_mlp/gymnax_pendulum/samples/")

    again = invoke("sweep-hp-samples", "--emit-manifest", emitted)
    assert again.exit_code == 2 and "already exists" in again.output


def test_rerunning_the_same_command_skips_everything(seed_sweep):
    recipe, root, _ = seed_sweep
    before = files_of(root)
    log_before = before.pop(LOG_NAME)
    result = invoke(*seed_flags(recipe, root))
    assert result.exit_code == 0, result.output
    assert "continuing sweep" in result.output and "0 entries run, 2 skipped" in result.output
    quiet = invoke(*seed_flags(recipe, root, "--log-level", "WARNING"))
    assert quiet.exit_code == 0 and quiet.output == ""
    after = files_of(root)
    log_after = after.pop(LOG_NAME)
    assert after == before
    # --save-logs (on by default, as in the original) appends this run's lines to the log
    assert log_after.startswith(log_before)
    assert b"continuing sweep" in log_after[len(log_before):]


def logged(root: Path) -> list[str]:
    """The log's lines without their time stamps, which every line must carry."""
    lines = (root / LOG_NAME).read_text("utf-8").splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines), lines
    return [line[20:] for line in lines]


def test_save_logs_keeps_what_the_sweep_printed_in_its_directory(seed_sweep):
    recipe, root, output = seed_sweep
    printed = output.splitlines()
    started = next(i for i, line in enumerate(printed) if line.startswith("started sweep"))
    log = logged(root)
    # the log starts when the sweep directory is the sweep's, and has every line printed since
    # (stdout and stderr: the cost, exec's progress and summary) in the order printed
    assert log[:len(printed) - started] == printed[started:]
    assert any(line.startswith("cost: 4 configurations") for line in log)
    assert any("2 entries run, 0 skipped" in line for line in log)
    assert f"next: hyperlax report {root}" in log


def test_save_logs_false_writes_no_log_and_a_log_is_never_written_through_a_link(seed_sweep,
                                                                               tmp_path):
    recipe, root, _ = seed_sweep
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / LOG_NAME).unlink()
    result = invoke("sweep-hp-samples", "--resume-from", copy, "--save-logs", "False")
    assert result.exit_code == 0 and "resuming the sweep" in result.output
    assert not (copy / LOG_NAME).exists()
    # a symbolic link planted where the log goes is not followed: said once, the run goes on
    outside = tmp_path / "outside.log"
    outside.write_text("")
    (copy / LOG_NAME).symlink_to(outside)
    result = invoke("sweep-hp-samples", "--resume-from", copy)
    assert result.exit_code == 0 and "0 entries run, 2 skipped" in result.output
    assert result.output.count("warning: --save-logs: cannot append to") == 1
    assert outside.read_text() == ""


def test_a_redrawn_progress_line_is_logged_once_as_it_last_read(tmp_path):
    from hyperlax.cli.seed.logfile import saving_logs

    with saving_logs(True, tmp_path, within=tmp_path):
        for text in ("\r\033[Kentries 0/2", "\r\033[Kentries 1/2", "\r\033[K",
                     "batch_00000: done\n", "\r\033[Kentries 2/2", "\n", "no newline"):
            sys.stderr.write(text)   # as exec's progress draws on a terminal
        print("on stdout")
    assert logged(tmp_path) == ["batch_00000: done", "entries 2/2", "on stdout",
                                "no newline"]
    with saving_logs(True, tmp_path, within=tmp_path):
        print("a second run appends")
    assert logged(tmp_path)[-1] == "a second run appends"
    with saving_logs(False, tmp_path, within=tmp_path):
        print("--save-logs False")
    assert len(logged(tmp_path)) == 5


def test_save_logs_keeps_the_error_that_ended_a_run(seed_sweep, tmp_path, monkeypatch):
    from hyperlax.cli.seed import sweep as S

    recipe, root, _ = seed_sweep
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)

    def disk_full(*args, **kwargs):
        raise HyperlaxError(str(copy), "cannot write: No space left on device",
                            "free disk space")

    monkeypatch.setattr(S, "execute", disk_full)
    result = invoke("sweep-hp-samples", "--resume-from", copy)
    assert result.exit_code == 2
    log = logged(copy)
    assert log[-2:] == [f"error: {copy}: cannot write: No space left on device",
                        "hint: free disk space"]
    assert result.output.splitlines()[-2:] == log[-2:]  # as the user saw it


def test_resume_from_skips_completed_entries(seed_sweep, tmp_path):
    recipe, root, _ = seed_sweep
    copy = tmp_path / "sweeps"
    shutil.copytree(root, copy)
    samples = copy / "tiny" / "gymnax_cartpole" / "samples"
    done_before = files_of(samples / "batch_00000")
    shutil.rmtree(samples / "batch_00001")  # interrupted before its second batch
    (samples / "batch_00000" / "stray.txt").write_text("not touched")
    # as the seed documents it: --resume-from <output-root>/<recipe>/<env>/, bare --sequential
    result = invoke("sweep-hp-samples", "--algo-and-network-config", recipe,
                    "--env-config", "gymnax.cartpole", "--num-samples", 4,
                    "--resume-from", copy / "tiny" / "gymnax_cartpole", "--log-level", "INFO")
    assert result.exit_code == 0, result.output
    assert f"resuming the sweep in {copy}" in result.output
    assert "1 entries run, 1 skipped" in result.output
    assert (samples / "batch_00001" / MARKER).exists()
    after = files_of(samples / "batch_00000")
    assert after.pop("stray.txt") == b"not touched" and after == done_before
    original = root / "tiny" / "gymnax_cartpole" / "samples" / "batch_00001"
    assert (samples / "batch_00001" / "curves.csv").read_bytes() == \
        (original / "curves.csv").read_bytes()


def test_resume_refuses_flags_that_contradict_the_sweep(seed_sweep):
    recipe, root, _ = seed_sweep
    before = files_of(root)
    result = invoke("sweep-hp-samples", "--resume-from", root, "--num-samples", 8,
                    "--sequential", "True")
    assert result.exit_code == 2
    assert "--num-samples: 8 differs from the sweep being resumed (4)" in result.output
    assert "--sequential: True differs from the sweep being resumed (False)" in result.output
    assert "hint: drop those flags" in result.output and "Traceback" not in result.output
    result = invoke("sweep-hp-samples", "--resume-from", root.parent / "nowhere")
    assert result.exit_code == 2 and "no such directory" in result.output
    result = invoke("sweep-hp-samples", "--resume-from", recipe.parent)
    assert result.exit_code == 2 and "is not a hyperlax sweep directory" in result.output
    assert files_of(root) == before


def test_foreign_directories_are_refused_untouched(seed_sweep, tmp_path):
    recipe, root, _ = seed_sweep
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    result = invoke(*seed_flags(recipe, home))
    assert result.exit_code == 2 and "not a hyperlax sweep directory" in result.output
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]

    before = files_of(root)
    other = seed_flags(recipe, root)
    other[other.index("--num-samples") + 1] = 8
    result = invoke(*other)
    assert result.exit_code == 2 and "belongs to another plan" in result.output
    assert f"continue that sweep with --resume-from {root}" in result.output
    assert files_of(root) == before


def test_bad_flags_are_named(tmp_path):
    result = invoke("sweep-hp-samples", "--num-samples", 0, "--output-root", tmp_path / "x")
    assert result.exit_code == 2
    assert "sweep-hp-samples: --num-samples: must be >= 1, got 0" in result.output
    result = invoke("sweep-hp-samples", "--env-config", "gymnax.pendullum",
                    "--output-root", tmp_path / "x")
    assert result.exit_code == 2 and "--env-config: unknown env 'gymnax.pendullum'" in \
        result.output
    assert not (tmp_path / "x").exists()
    result = invoke("sweep-hp-samples")
    assert result.exit_code == 2 and "--output-root: is required" in result.output


def test_generate_hp_samples_writes_the_plan_samples_in_full_precision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("generate-hp-samples", "--algo-and-network-config", "ppo_mlp",
                    "--num-samples", 16, "--seed", 3)
    assert result.exit_code == 0, result.output
    out = tmp_path / "hyperparam_samples.csv"   # the original's default file
    assert "wrote 16 samples of ppo_mlp to hyperparam_samples.csv" in result.output
    result = invoke("sweep-hp-samples", "--algo-and-network-config", "ppo_mlp",
                    "--num-samples", 16, "--seed", 3, "--emit-manifest", tmp_path / "m.toml")
    assert result.exit_code == 0, result.output
    plan, _ = compile_manifest(tmp_path / "m.toml")
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 16 and list(rows[0])[:4] == ["sample", "seed", "structure", "actor_lr"]
    for row, sample in zip(rows, plan.samples):
        assert int(row["seed"]) == sample.seed and int(row["structure"]) == sample.structure
        for name, value in sample.values.items():   # exact: floats are not rounded
            parsed = row[name] if isinstance(value, str) else json.loads(row[name])
            assert parsed == value and type(parsed) is type(value), name
    stdout = invoke("generate-hp-samples", "--num-samples", 16, "--seed", 3,
                    "--output-file", "-")
    assert stdout.output == out.read_text()


@pytest.mark.subprocess
def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "hyperlax.cli", "generate-hp-samples", "--env-config",
         "gymnax.cartpole", "--num-samples", "2", "--log-level", "INFO", "--output-file", "-"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sample,seed,structure,") and len(
        result.stdout.splitlines()) == 3


@pytest.mark.parametrize("form", ["root", "run dir", "samples dir", "plan file",
                                  "resume True"])
def test_resume_accepts_the_originals_path_forms(seed_sweep, form):
    recipe, root, _ = seed_sweep
    run_dir = root / "tiny" / "gymnax_cartpole"
    args = {"root": ["--resume-from", root],
            "run dir": ["--resume-from", run_dir],          # what the original's docs show
            "samples dir": ["--resume-from", run_dir / "samples"],
            "plan file": ["--resume-from", root / "plan.msgpack"],
            "resume True": ["--resume", "True", "--output-root", run_dir]}[form]
    result = invoke("sweep-hp-samples", *args)
    assert result.exit_code == 0, result.output
    assert f"resuming the sweep in {root}" in result.output
    assert "0 entries run, 2 skipped" in result.output


def test_resume_refuses_budget_seed_and_structure_flags_that_differ(seed_sweep):
    recipe, root, _ = seed_sweep
    result = invoke("sweep-hp-samples", "--resume-from", root, "--run-length-modifier", "long",
                    "--num-agents-slash-seeds", 8, "--structures", 2)
    assert result.exit_code == 2, result.output
    assert ("--run-length-modifier: long differs from the sweep being resumed (128 env steps, "
            "2 evaluations of 2 episodes)") in result.output
    assert "--num-agents-slash-seeds: 8 differs from the sweep being resumed (1)" in result.output
    assert "--structures: 2 differs from the sweep being resumed (None)" in result.output
    same = invoke("sweep-hp-samples", "--resume-from", root, "--run-length-modifier", "default",
                  "--num-seeds", 1, "--log-level", "WARNING")
    assert same.exit_code == 0 and same.output == ""
    result = invoke("sweep-hp-samples", "--resume", "True")
    assert result.exit_code == 2 and "--resume: needs --output-root" in result.output


@pytest.mark.slow
def test_run_single_hp_trains_the_recipes_defaults_once_and_resumes(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    root = tmp_path / "single"
    args = ["run-single-hp", "--algo-and-network-config", recipe, "--env-config",
            "gymnax.cartpole", "--num-agents-slash-seeds", 2, "--output-root", root]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "1 entries run, 0 skipped" in result.output
    plan, _ = read_plan(root / "plan.msgpack")
    assert len(plan.samples) == 1 and plan.sampled == [] and plan.settings.seeds_per_sample == 2
    assert plan.constants["num_envs"] == 4 and plan.constants["network.activation"] == "tanh"
    manifest = (root / "sweep.toml").read_text()
    assert "[space]" in manifest and "run-single-hp --algo-and-network-config" in manifest
    summary = json.loads((root / "tiny" / "gymnax_cartpole" / "samples" / "batch_00000" /
                          "summary.json").read_text())
    assert len(summary["samples"][0]["replicates"]) == 2
    again = invoke(*args)
    assert again.exit_code == 0 and "0 entries run, 1 skipped" in again.output
    result = invoke("run-single-hp", "--algo-and-network-config", recipe)
    assert result.exit_code == 2 and "--output-root: is required" in result.output
