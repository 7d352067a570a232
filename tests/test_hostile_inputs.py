"""Hostile inputs a user hands over: samples files (a manifest's samples_file and the seed's
--load-hyperparams), run-benchmark's --base-config, and the hints printed about them. Each is
refused with exit 2 and a located message (the file, the line or key, the fix), never a
traceback, and returns within seconds: a FIFO never blocks, an oversized file is refused before
it is read. The stored cases live in tests/bad_manifests/ (64-75, with samples/); the ones git
cannot hold (FIFOs, symbolic links, files of hundreds of KB or MB) are made here at run time.
No training: stops are simulated where a sweep would run."""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main

PACKAGE = Path(__file__).resolve().parents[1] / "hyperlax"


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught error
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output


def plan_with(tmp_path: Path, samples: str):
    (tmp_path / "m.toml").write_text('[sweep]\nname = "x"\nrecipe = "ppo_mlp"\n'
                                     f'env = "gymnax.cartpole"\nsamples_file = "{samples}"\n')
    return invoke("plan", tmp_path / "m.toml", "-o", tmp_path / "p.msgpack")


def load_hyperparams(tmp_path: Path, samples: Path):
    return invoke("sweep-hp-samples", "--algo-and-network-config", "ppo_mlp", "--env-config",
                  "gymnax.cartpole", "--load-hyperparams", samples, "--emit-manifest",
                  tmp_path / "emitted.toml")


# --- samples files ------------------------------------------------------------------------

def test_a_200_kb_nested_json_samples_file_is_a_located_error(tmp_path):
    depth = 100_000   # 200 KB of brackets: a RecursionError traceback before
    (tmp_path / "deep.json").write_text("[" * depth + "]" * depth)
    refused(plan_with(tmp_path, "deep.json"),
            "error: m.toml: samples_file deep.json: nested too deeply")
    assert not (tmp_path / "p.msgpack").exists()


def test_load_hyperparams_names_the_flag_and_the_line(tmp_path):
    extra = tmp_path / "picked.csv"
    extra.write_text("actor_lr,gamma\n0.001,0.99,7\n")
    refused(load_hyperparams(tmp_path, extra),
            "--load-hyperparams picked.csv line 2: has 3 cells; the header has 2 (actor_lr, gamma)",
            "hint: every row has one cell per column")
    twice = tmp_path / "twice.csv"
    twice.write_text("actor_lr,actor_lr\n0.001,0.002\n")
    refused(load_hyperparams(tmp_path, twice), "line 1: names column 'actor_lr' twice")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    refused(load_hyperparams(tmp_path, deep), "nested too deeply")
    assert not (tmp_path / "emitted.toml").exists()


def test_a_cell_past_the_csv_field_limit_is_a_located_error(tmp_path):
    (tmp_path / "wide.csv").write_text("actor_lr\n" + "1" * 200_000 + "\n")
    refused(plan_with(tmp_path, "wide.csv"),
            "samples_file wide.csv line 2: not CSV: field larger than field limit")


def test_a_byte_order_mark_is_read_as_text(tmp_path):
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfactor_lr\n0.001\n")
    result = plan_with(tmp_path, "bom.csv")
    assert result.exit_code == 0, result.output


def test_an_oversized_samples_file_is_refused_before_it_is_read(tmp_path):
    with open(tmp_path / "huge.csv", "wb") as f:   # sparse: 257 MiB without writing them
        f.truncate((256 << 20) + 1)
    started = time.monotonic()
    refused(plan_with(tmp_path, "huge.csv"), "sweep.samples_file: cannot read 'huge.csv'",
            "is 268,435,457 bytes, more than the 268,435,456")
    assert time.monotonic() - started < 5


def test_a_fifo_as_samples_file_never_blocks(tmp_path):
    """In a subprocess with a timeout: if the FIFO blocked, the test fails, it does not hang."""
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "m.toml").write_text('[sweep]\nname = "x"\nrecipe = "ppo_mlp"\n'
                                     'env = "gymnax.cartpole"\nsamples_file = "pipe.csv"\n')
    proc = subprocess.run([sys.executable, "-m", "hyperlax", "plan", "m.toml", "-o", "p.msgpack"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "the samples file is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "p.msgpack").exists()


def test_a_samples_file_symlinked_to_a_device_or_a_directory_is_refused(tmp_path):
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    refused(plan_with(tmp_path, "zero.csv"), "is a character device, not a regular file")
    (tmp_path / "dir.json").symlink_to(tmp_path)
    refused(plan_with(tmp_path, "dir.json"), "is a directory, not a regular file")


# --- run-benchmark's --base-config --------------------------------------------------------

BASE = 'algos = ["ppo_mlp"]\nenvs = ["gymnax.cartpole"]\noutput_root = "out"\n'


@pytest.mark.parametrize("line, expected", [
    ("num_agents_slash_seeds = 0", "num_agents_slash_seeds: Expected int >= 1, got 0"),
    ("num_agents_slash_seeds = -2", "num_agents_slash_seeds: Expected int >= 1, got -2"),
    ("num_agents_slash_seeds = 5000", "num_agents_slash_seeds: Expected int <= 1024, got 5000"),
    ("num_agents_slash_seeds = true", "num_agents_slash_seeds: Expected int, got bool"),
    ("num_agents_slash_seeds = 8.0", "num_agents_slash_seeds: Expected int, got float"),
    ("num_samples_per_run = 0", "num_samples_per_run: Expected int >= 1, got 0"),
    ("hparam_batch_size = -1", "hparam_batch_size: Expected int >= 1, got -1"),
    ("seed = -1", "seed: Expected int >= 0, got -1"),
    ("seed = 4.5", "seed: Expected int, got float"),
    ("run_length_modifier = 0", "run_length_modifier: must be >= 1 env steps, got 0"),
    ("run_length_modifier = 2.5", "run_length_modifier: Expected int | str, got float"),
    ("group_by_structural_hparams = 1", "group_by_structural_hparams: Expected bool, got int"),
    ("sampling_method = \"sobol\"", "sampling_method: Invalid enum value 'sobol'"),
    ("benchmark_name = \"../up\"", "benchmark_name: Expected str matching regex"),
    ("log_level = \"loud\"", "log_level: 'loud' is not one of DEBUG"),
])
def test_a_base_config_value_out_of_its_flags_range_is_refused_at_its_key(tmp_path,
                                                                          monkeypatch, line,
                                                                          expected):
    """num_agents_slash_seeds = 0 trained the default 8 seeds: a 0 read as 'not given'."""
    monkeypatch.chdir(tmp_path)
    Path("bench.toml").write_text(BASE + line + "\n")
    refused(invoke("run-benchmark", "--base-config", "bench.toml"), f"error: bench.toml: {expected}")
    assert not Path("out").exists()


def test_an_empty_list_in_a_base_config_is_refused_at_its_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bench.toml").write_text('algos = []\nenvs = ["gymnax.cartpole"]\noutput_root = "o"\n')
    refused(invoke("run-benchmark", "--base-config", "bench.toml"),
            "error: bench.toml: algos: Expected array of length >= 1, got []",
            "hint: give algos a value --algos takes")


def test_hostile_base_config_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("deep.toml").write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    refused(invoke("run-benchmark", "--base-config", "deep.toml"),
            "error: deep.toml: TOML nested too deeply")
    os.mkfifo("pipe.toml")
    proc = subprocess.run([sys.executable, "-m", "hyperlax", "run-benchmark", "--base-config",
                           "pipe.toml"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "a FIFO (named pipe), not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


RUN = "ppo-mlp_gymnax.cartpole_batched-N1-quick"
RUN_BENCHMARK = ["run-benchmark", "--algos", "ppo_mlp", "--envs", "gymnax.cartpole",
                 "--num-samples-per-run", "1", "--run-length-modifier", "quick",
                 "--benchmark-name", "B", "--output-root", "bo"]


def test_a_benchmark_directory_linked_out_of_the_output_root_is_refused(tmp_path, monkeypatch):
    """<output-root>/<benchmark-name> and a run directory in it are hyperlax's to make: a
    symbolic link planted there that leads out is refused before anything is made through it."""
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    Path("bo").mkdir()
    Path("bo/B").symlink_to(outside, target_is_directory=True)
    refused(invoke(*RUN_BENCHMARK), "error: bo/B: refusing to run a benchmark here",
            f"outside {tmp_path / 'bo'}")
    Path("bo/B").unlink()
    Path("bo/B").mkdir()
    Path(f"bo/B/{RUN}").symlink_to(outside / "gone")
    refused(invoke(*RUN_BENCHMARK), f"it leads to {outside / 'gone'}, outside")
    assert list(outside.iterdir()) == []


def test_a_fifo_in_the_way_of_a_run_directory_is_a_disk_error_with_its_cause(tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bo/B").mkdir(parents=True)
    os.mkfifo(f"bo/B/{RUN}")
    result = invoke(*RUN_BENCHMARK)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"error: bo/B/{RUN}: cannot make the sweep directory" in result.output
    assert "(a FIFO) away, then run the same command again" in result.output


# --- hints --------------------------------------------------------------------------------

def stopped_sweep(monkeypatch) -> list[str]:
    """run_exec replaced by a sweep stopped at once by SIGINT: it prints the hint exec would."""
    from hyperlax.exec import run_plan

    hints: list[str] = []

    def stopped(request, echo):
        hints.append(request.command_line())
        return 130

    monkeypatch.setattr(run_plan, "run_exec", stopped)
    return hints


def test_a_stopped_run_benchmark_resumes_the_whole_benchmark(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hints = stopped_sweep(monkeypatch)
    flags = ["--algos", "ppo_mlp", "--algos", "sac_mlp", "--envs", "gymnax.pendulum",
             "--num_samples_per_run", "2", "--num-agents-slash-seeds", "1",
             "--output-root", "my out", "--compile-workers", "0"]
    result = invoke("run-benchmark", *flags)
    assert result.exit_code == 130, result.output
    [hint] = hints
    assert shlex.split(hint) == ["python", "-m", "hyperlax.cli", "run-benchmark", "--algos",
                                 "ppo_mlp", "--algos", "sac_mlp", "--envs", "gymnax.pendulum",
                                 "--num-samples-per-run", "2", "--num-agents-slash-seeds", "1",
                                 "--output-root", "my out", "--compile-workers", "0"]
    Path("bench.toml").write_text(BASE)   # a --base-config is part of the command as given
    result = invoke("run-benchmark", "--base-config", "bench.toml")
    assert result.exit_code == 130 and hints[-1] == ("python -m hyperlax.cli run-benchmark "
                                                     "--base-config bench.toml")


def test_a_stopped_benchmark_resumes_the_whole_benchmark(tmp_path, monkeypatch):
    hints = stopped_sweep(monkeypatch)
    manifest = tmp_path / "a.toml"
    manifest.write_text('[sweep]\nname = "a"\nrecipe = "ppo_mlp"\nenv = "gymnax.cartpole"\n'
                        'num_samples = 2\nrecipe_space = "include"\n')
    result = invoke("benchmark", manifest, "--output-root", tmp_path / "out", "--quiet")
    assert result.exit_code == 130, result.output
    [words] = [shlex.split(hint) for hint in hints]
    if "--compile-cache" in words:   # the test session's cache, set in the environment
        at = words.index("--compile-cache")
        del words[at:at + 2]
    assert words == ["hyperlax", "benchmark", str(manifest), "--output-root",
                     str(tmp_path / "out"), "--quiet"]


def storage_error_thens() -> list[tuple[str, int, str]]:
    """(module, line, the static text of ``then``) of every storage_error call in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1]
                    == "storage_error"):
                continue
            then = next((k.value for k in node.keywords if k.arg == "then"),
                        node.args[3] if len(node.args) > 3 else None)
            if then is not None:
                text = "".join(part.value if isinstance(part, ast.Constant) else "{}"
                               for part in (then.values if isinstance(then, ast.JoinedStr)
                                            else [then]))
                found.append((path.relative_to(PACKAGE).as_posix(), node.lineno, text))
    return found


def test_every_storage_error_hint_reads_as_one_sentence():
    """storage_error's hint is '<what the errno says to fix>, then <then>': a ``then`` that
    names a cause again ('free space or ..., then ...') doubled it: "free disk space, then free
    space or set checkpoint_every = 0, then run the same command again"."""
    thens = storage_error_thens()
    assert len(thens) >= 8   # the scan finds the call sites
    causes = ("free ", "disk", "space", "permission", "out of the way", "quota", "read-only")
    for module, line, text in thens:
        where = f"{module}:{line}: then={text!r}"
        assert text and text[0].islower() and not text.endswith("."), where
        assert "then" not in text.split(": then:")[0], where   # one 'then': storage_error's
        assert not any(cause in text for cause in causes), where


def test_the_disk_full_hint_of_a_checkpoint_reads_as_one_sentence(tmp_path):
    import errno

    from hyperlax.storage.atomic import storage_error

    [(_, _, then)] = [t for t in storage_error_thens()
                      if t[0] == "exec/checkpoints/snapshots.py"]
    hint = storage_error(tmp_path, OSError(errno.ENOSPC, "No space left on device"),
                         "cannot write a checkpoint", then).hint
    assert hint == ("free disk space, then run the same command again (checkpoint_every = 0 "
                    "writes no checkpoints)")
