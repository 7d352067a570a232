"""Every resume / next-step hint is a command that works as printed: it keeps the
--output-root that was given (and exec's other options), and says --redo-corrupt when complete
entries are corrupt (without it exec leaves them alone and exits 1). No training: the sweeps
here are written by the runtime's own writer from made-up curves."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.exec.options import ExecOptions, exec_command_line
from hyperlax.storage.sweepdir import MARKER
from test_report import fake_sweep


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def entry_dir(root: Path, plan, index: int) -> Path:
    return root.joinpath(*plan.entries[index].path.split("/"))


def hint_line(output: str, prefix: str) -> str:
    [line] = [line.strip() for line in output.splitlines() if prefix in line]
    return line[line.index(prefix) + len(prefix):]


def test_exec_command_line_repeats_every_option_and_quotes():
    options = ExecOptions.parse(devices="2", shard="1/4", claim_timeout=60.0)
    line = exec_command_line(Path("my plans/plan.msgpack"), Path("runs/a b"), options,
                             compile_cache=Path("/tmp/cache"), manifest=Path("sweep.toml"),
                             redo_corrupt=True, quiet=True)
    assert shlex.split(line) == [
        "hyperlax", "exec", "my plans/plan.msgpack", "--output-root", "runs/a b",
        "--devices", "2", "--shard", "1/4", "--claim-timeout", "60",
        "--compile-cache", "/tmp/cache", "--manifest", "sweep.toml", "--quiet",
        "--redo-corrupt"]
    assert exec_command_line(Path("p.msgpack"), None) == "hyperlax exec p.msgpack"
    ray = ExecOptions.parse(ray_address="ray://head:10001", ray_gpus=0.5)
    assert exec_command_line(Path("p"), None, ray).endswith(
        "--ray=ray://head:10001 --ray-gpus 0.5")


def test_exec_command_line_parses_back_into_the_same_exec(tmp_path):
    """The printed words are exec's own options: click accepts them (here up to the point
    where the plan file is read, which does not exist)."""
    options = ExecOptions.parse(devices="all", shard="0/2", claim_timeout=30.0)
    line = exec_command_line(tmp_path / "none.msgpack", tmp_path / "out", options,
                             compile_cache=tmp_path / "cache", redo_corrupt=True, quiet=True)
    words = shlex.split(line)
    assert words[:2] == ["hyperlax", "exec"]
    result = invoke(*words[1:])
    assert result.exit_code == 2 and "no such plan file" in result.output, result.output


def test_status_hints_keep_the_output_root_and_ask_for_redo_corrupt(tmp_path):
    plan, plan_file, root = fake_sweep(tmp_path)
    assert len(plan.entries) >= 2
    moved = tmp_path / "elsewhere" / "sweep dir"  # not the plan's output_root; a space in it
    moved.parent.mkdir()
    shutil.move(root, moved)

    (entry_dir(moved, plan, 1) / MARKER).unlink()  # interrupted
    result = invoke("status", plan_file, "--output-root", moved)
    assert result.exit_code == 0, result.output
    command = hint_line(result.output, "finish it with: ").split("  (")[0]
    assert shlex.split(command) == ["hyperlax", "exec", str(plan_file), "--output-root",
                                    str(moved)]

    curves = entry_dir(moved, plan, 0) / "curves.csv"
    curves.write_bytes(curves.read_bytes() + b"\n")  # corrupt
    result = invoke("status", plan_file, "--output-root", moved, "--verify")
    assert result.exit_code == 1, result.output
    for prefix in ("re-run them with: ", "finish it with: "):
        command = hint_line(result.output, prefix).split("  (")[0]
        assert shlex.split(command) == ["hyperlax", "exec", str(plan_file), "--output-root",
                                        str(moved), "--redo-corrupt"]


def test_complete_status_prints_no_resume_hint(tmp_path):
    _, plan_file, root = fake_sweep(tmp_path)
    result = invoke("status", plan_file, "--output-root", root, "--verify")
    assert result.exit_code == 0, result.output
    assert "finish it with" not in result.output and "--redo-corrupt" not in result.output


def test_report_hints_keep_the_output_root_and_ask_for_redo_corrupt(tmp_path):
    plan, plan_file, root = fake_sweep(tmp_path)
    moved = tmp_path / "moved"
    shutil.move(root, moved)

    (entry_dir(moved, plan, 1) / MARKER).unlink()  # interrupted
    result = invoke("report", plan_file, "--output-root", moved, "--no-plots")
    assert result.exit_code == 0, result.output
    assert hint_line(result.output, "finish it with: ") == (
        f"hyperlax exec {plan_file} --output-root {moved}  (completed entries are skipped)")

    curves = entry_dir(moved, plan, 0) / "curves.csv"
    curves.write_bytes(curves.read_bytes() + b"\n")  # corrupt
    result = invoke("report", plan_file, "--output-root", moved, "--no-plots")
    assert result.exit_code == 0, result.output
    assert hint_line(result.output, "finish it with: ") == (
        f"hyperlax exec {plan_file} --output-root {moved} --redo-corrupt  (completed entries "
        "are skipped; --redo-corrupt re-runs the damaged ones)")


def test_report_of_a_sweep_directory_hints_its_plan_copy_and_root(tmp_path):
    plan, _, root = fake_sweep(tmp_path)
    (entry_dir(root, plan, 1) / MARKER).unlink()
    result = invoke("report", root, "--no-plots")
    assert result.exit_code == 0, result.output
    assert hint_line(result.output, "finish it with: ").split("  (")[0] == (
        f"hyperlax exec {root / 'plan.msgpack'} --output-root {root}")


def test_report_of_nothing_yet_hints_exec_with_the_output_root(tmp_path):
    _, plan_file, _ = fake_sweep(tmp_path)
    missing = tmp_path / "not run"
    result = invoke("report", plan_file, "--output-root", missing)
    assert result.exit_code == 2
    assert (f"hint: run the plan first: hyperlax exec {plan_file} --output-root "
            f"'{missing}'") in result.output
