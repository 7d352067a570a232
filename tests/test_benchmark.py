"""Several sweeps as one benchmark: `hyperlax benchmark MANIFEST...` and the seed's
`run-benchmark` plan every sweep first, run each into a directory of its own, skip complete
sweeps and resume partial ones; bad input is refused before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

# the tiny sweep, and its program as a recipe for the seed's run-benchmark
from conftest import TINY_RECIPE, tiny_sweep
from hyperlax.cli.main import main
from hyperlax.storage.sweepdir import MARKER


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def manifests(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for seed, name in enumerate(names):
        path = tmp_path / f"{name}.toml"
        path.write_text(tiny_sweep(name=name, seed=seed))
        paths.append(path)
    return paths


def markers(root: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob(MARKER))


@pytest.mark.slow
def test_benchmark_runs_each_sweep_in_its_own_directory_and_resumes(tmp_path):
    a, b = manifests(tmp_path, "a", "b")
    out = tmp_path / "bench"
    result = invoke("benchmark", a, b, "--output-root", out)
    assert result.exit_code == 0, result.output
    assert f"[1/2] {a}: 2 samples, 1 entries into {out / 'a'}" in result.output
    assert "benchmark: 2 of 2 sweeps complete (0 were already), 0 failed" in result.output
    assert f"compare them: hyperlax compare {out / 'a'} {out / 'b'}" in result.output
    entry = "ppo_mlp_fixed_net/gymnax_cartpole/samples/batch_00000"
    assert markers(out / "a") == markers(out / "b") == [entry]
    done_a = {p: p.read_bytes() for p in (out / "a").rglob("*") if p.is_file()}

    again = invoke("benchmark", a, b, "--output-root", out)
    assert again.exit_code == 0 and "complete in" in again.output and "skipped" in again.output
    assert "benchmark: 2 of 2 sweeps complete (2 were already)" in again.output

    shutil.rmtree(out / "b" / entry)   # b was interrupted
    resumed = invoke("benchmark", a, b, "--output-root", out)
    assert resumed.exit_code == 0, resumed.output
    assert f"[1/2] {a}: complete in {out / 'a'}, skipped" in resumed.output
    assert "1 entries run, 0 skipped" in resumed.output and markers(out / "b") == [entry]
    assert {p: p.read_bytes() for p in (out / "a").rglob("*") if p.is_file()} == done_a


def test_benchmark_refuses_bad_input_before_anything_runs(tmp_path):
    a, b = manifests(tmp_path, "a", "b")
    out = tmp_path / "bench"
    b.write_text(b.read_text().replace('name = "b"', 'name = "a"'))
    result = invoke("benchmark", a, b, "--output-root", out)
    assert result.exit_code == 2 and f"would run into {out / 'a'}, as {a} does" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(a.read_text().replace("num_samples = 2", "num_samples = 0"))
    result = invoke("benchmark", a, bad, "--output-root", out)
    assert result.exit_code == 2 and "sweep.num_samples: must be >= 1, got 0" in result.output
    (out / "a").mkdir(parents=True)
    (out / "a" / "thesis.tex").write_text("precious")
    result = invoke("benchmark", a, "--output-root", out)
    assert result.exit_code == 2 and "is not a hyperlax sweep directory" in result.output
    assert [p.name for p in out.rglob("*")] == ["a", "thesis.tex"]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_run_benchmark_takes_the_originals_flags_and_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TINY_RECIPE)
    flags = ["run-benchmark", "--benchmark-name", "B", "--algos", "tiny.toml",
             "--envs", "gymnax.cartpole", "--sweep-modes", "batched",
             "--num_samples_per_run", 2, "--hparam-batch-size", 2,
             "--num-agents-slash-seeds", 1, "--output-root", "out"]
    result = invoke(*flags)
    assert result.exit_code == 0, result.output
    run = Path("out/B/tiny_gymnax.cartpole_batched-N2-default")
    assert (run / "sweep.toml").is_file() and (run / "plan.msgpack").is_file()
    assert markers(run) == ["tiny/gymnax_cartpole/samples/batch_00000"]
    assert "benchmark: 1 of 1 sweeps complete (0 were already), 0 failed" in result.output
    # --save-logs (on by default): what it printed, from the cost lines on, in the benchmark
    # directory's hyperlax.log, beside the sweeps (plot-benchmark reads only those)
    log = [line[20:] for line in Path("out/B/hyperlax.log").read_text().splitlines()]
    printed = result.output.splitlines()
    assert log == printed[len(printed) - len(log):] and "benchmark: 1 of 1" in "".join(log)
    assert log[0].startswith("tiny.toml") or log[0].startswith("tiny_")

    again = invoke(*flags)   # the same command: nothing to do
    assert again.exit_code == 0 and "complete in out/B/tiny_" in again.output
    for resume in (["--resume-from", "out/B"], ["--resume", "True", "--output-root", "out/B"]):
        result = invoke(*flags[:-2], *resume)
        assert result.exit_code == 0 and "(1 were already)" in result.output, result.output

    # --base-config: the same settings from a file; flags given win
    Path("bench.toml").write_text('benchmark_name = "B"\nalgos = ["tiny.toml"]\n'
                                  'envs = ["gymnax.cartpole"]\nnum_samples_per_run = 2\n'
                                  'hparam_batch_size = 2\nnum_agents_slash_seeds = 1\n'
                                  'output_root = "out"\n')
    result = invoke("run-benchmark", "--base-config", "bench.toml")
    assert result.exit_code == 0 and "(1 were already)" in result.output, result.output
    Path("bad.toml").write_text('algos = "tiny.toml"\n')
    result = invoke("run-benchmark", "--base-config", "bad.toml")
    assert result.exit_code == 2 and "bad.toml: algos: Expected array" in result.output


def test_run_benchmark_skips_what_cannot_run_and_refuses_what_it_has_not(tmp_path):
    out = tmp_path / "out"
    result = invoke("run-benchmark", "--algos", "dqn_mlp_small", "--envs", "gymnax.pendulum",
                    "--output-root", out)
    assert result.exit_code == 2
    assert "skipping dqn-mlp-small_gymnax.pendulum_batched-N8-default: DQN cannot act in " \
           "gymnax.pendulum" in result.output
    assert "no recipe x env combination can run" in result.output
    result = invoke("run-benchmark", "--algos", "ppo_mlp", "--envs", "gymnax.pendulum",
                    "--sweep-modes", "optuna", "--output-root", out)
    assert result.exit_code == 2 and "run-benchmark runs sampled sweeps only" in result.output
    result = invoke("run-benchmark", "--algos", "ppo_mlp", "--envs", "gymnax.pendulum")
    assert result.exit_code == 2 and "--output-root: is required" in result.output
    result = invoke("run-benchmark", "--algos", "ppo_mlp", "--envs", "../../escape",
                    "--output-root", out)
    assert result.exit_code == 2 and "--envs: unknown env '../../escape'" in result.output
    assert not out.exists()
