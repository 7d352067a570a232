"""The sweep directory's own files (the sweep record, success markers, claims, provenance
records), replaced by hostile ones between runs: a FIFO, a file nested too deeply for any
decoder, an oversized file, a link to /dev/zero or out of the output root. Each is a located
problem (exit status 2, or the entry reported corrupt), never a hang or a traceback, and
nothing is written outside the root.

FIFO cases run the command in a subprocess with a timeout: a regression that opened a FIFO
would block forever, and must fail the test instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from hyperlax.storage.claims import read_claim
from hyperlax.storage.sweepdir import MARKER, SWEEP_RECORD
from test_integrity import cli, complete, entry, status, sweep  # noqa: F401 (fixtures)

NESTED = b"[" * 200_000 + b"]" * 200_000


def hyperlax(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command in a process of its own, failing (not hanging) past ``timeout``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "hyperlax", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def replace_with(path: Path, kind: str, outside: Path) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "nested":
        path.write_bytes(NESTED)
    elif kind == "oversized":
        with open(path, "wb") as f:
            f.truncate(64 << 20)  # sparse: large on paper, no disk used
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "link-out":
        outside.write_bytes(b'{"plan_id": "someone else"}')
        path.symlink_to(outside)


KINDS = ["fifo", "nested", "oversized", "dev-zero", "link-out"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_sweep_record_is_refused_with_its_place(sweep, tmp_path, kind):
    plan, pid, plan_file, root = sweep
    replace_with(root / SWEEP_RECORD, kind, tmp_path / "elsewhere.json")
    started = time.monotonic()
    for command in ("status", "exec"):
        result = hyperlax(command, plan_file, "--output-root", root)
        assert result.returncode == 2, result.stderr
        assert f"{root / SWEEP_RECORD}: unreadable sweep record" in result.stderr
        assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 120
    if kind == "link-out":
        assert (tmp_path / "elsewhere.json").read_bytes() == b'{"plan_id": "someone else"}'


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_marker_makes_its_entry_corrupt_not_a_hang(sweep, tmp_path, kind):
    plan, pid, plan_file, root = sweep
    marker = entry(root, plan, 1) / MARKER
    replace_with(marker, kind, tmp_path / "elsewhere.txt")
    result = hyperlax("status", plan_file, "--output-root", root, "--verify")
    assert result.returncode == 1, result.stderr  # status --verify: 1 when something is corrupt
    assert f"corrupt  {plan.entries[1].path}  (2 samples): {MARKER} is" in result.stdout
    assert "1/2 done, 0 partial, 0 pending, 1 corrupt" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_fifo_provenance_record_is_an_unknown_environment(sweep):
    plan, pid, plan_file, root = sweep
    record = entry(root, plan, 0) / "provenance.json"
    record.unlink()
    os.mkfifo(record)
    result = hyperlax("status", plan_file, "--output-root", root)
    assert result.returncode == 0, result.stderr
    assert "2/2 done" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "nested", "oversized", "dev-zero"])
def test_a_hostile_claim_has_no_holder_and_only_an_age(tmp_path, kind):
    claim = tmp_path / "batch_00000.claim"
    claim.write_bytes(b"{}")
    replace_with(claim, kind, tmp_path / "elsewhere")
    info = read_claim(claim)
    assert info is not None and info.host == "" and info.holder() == "an unknown worker"


def test_exec_writes_nothing_through_a_recipe_directory_linked_out(sweep, tmp_path):
    """The entries' top directory replaced by a link to a directory outside the root: exec
    refuses every entry there and writes nothing outside."""
    plan, pid, plan_file, root = sweep
    top = root / plan.entries[0].path.split("/")[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    for p in sorted(top.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    top.rmdir()
    top.symlink_to(outside)
    result = cli("exec", plan_file, "--output-root", root)
    assert result.exit_code == 2, result.output
    assert "outside" in result.output and "Traceback" not in result.output
    assert list(outside.iterdir()) == []


def test_a_root_swapped_for_a_link_while_it_is_used_is_refused(tmp_path):
    """Where the root really is is pinned when the sweep directory is opened: a directory at
    or above it that is moved away and replaced by a link while a sweep runs (a search's
    rounds/ while a round trains) makes every later write a refusal, not a write elsewhere."""
    from hyperlax.storage.atomic import OutsideRootError
    from hyperlax.storage.sweepdir import SweepDir

    rounds = tmp_path / "search" / "rounds"
    (rounds / "round_0001").mkdir(parents=True)
    sweep = SweepDir(rounds / "round_0001")
    sweep.fresh_entry_dir("a/samples/batch_00000")  # fine while nothing moved
    outside = tmp_path / "outside"
    rounds.rename(outside)
    rounds.symlink_to(outside)
    with pytest.raises(OutsideRootError, match="outside"):
        sweep.fresh_entry_dir("a/samples/batch_00001")
    assert not (outside / "round_0001" / "a" / "samples" / "batch_00001").exists()


@pytest.mark.parametrize("where", ["header", "plan"])
def test_a_plan_file_nested_too_deeply_is_refused_not_a_traceback(tmp_path, where):
    """msgpack nested 100,000 deep where a plan file's header or its plan would be: every
    decoder recurses, and the plan reader turns that into its located refusal."""
    import msgspec

    from hyperlax.plan.format import FORMAT, FORMAT_VERSION

    nested = b"\x91" * 100_000 + b"\xc0"
    if where == "header":
        blob = b"\x82" + msgspec.msgpack.encode("format") + msgspec.msgpack.encode(FORMAT) \
            + msgspec.msgpack.encode("junk") + nested
    else:
        blob = b"\x83" + msgspec.msgpack.encode("format") + msgspec.msgpack.encode(FORMAT) \
            + msgspec.msgpack.encode("format_version") \
            + msgspec.msgpack.encode(FORMAT_VERSION) + msgspec.msgpack.encode("plan") + nested
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(blob)
    for command in (["show", plan_file], ["status", plan_file, "--output-root", tmp_path]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert f"{plan_file}: " in result.output and "nested too deeply" in result.output
        assert "Traceback" not in result.output


APPEND_TO_HOSTILE_LOGS = """
import os, sys
from pathlib import Path
from hyperlax.storage.atomic import NotRegularFileError, OutsideRootError, append_text
root, outside = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("fifo", "link", "dir"):
    try:
        append_text(root / name, "a line\\n", within=root)
        print(name, "written")
    except OutsideRootError:
        print(name, "outside")
    except NotRegularFileError:
        print(name, "not regular")
    except OSError as exc:
        print(name, "refused", exc.errno)
try:
    append_text(root / "out" / "hyperlax.log", "a line\\n", within=root)
except OutsideRootError:
    print("out outside")
append_text(root / "hyperlax.log", "one\\n", within=root)
append_text(root / "hyperlax.log", "two\\n", within=root)
print(repr((root / "hyperlax.log").read_text()))
"""


def test_a_log_is_appended_only_to_a_regular_file_inside_its_directory(tmp_path):
    # a subprocess with a timeout: opening the FIFO for writing must never block
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.mkfifo(root / "fifo")
    (outside / "log").write_text("")
    (root / "link").symlink_to(outside / "log")
    (root / "dir").mkdir()
    (root / "out").symlink_to(outside)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", APPEND_TO_HOSTILE_LOGS, root, outside],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("fifo refused")          # no reader: ENXIO, not a hang
    assert lines[1].startswith("link refused")          # O_NOFOLLOW: ELOOP
    assert lines[2].startswith("dir refused")           # EISDIR
    assert lines[3:] == ["out outside", "'one\\ntwo\\n'"]
    assert (outside / "log").read_text() == "" and list(outside.iterdir()) == [outside / "log"]
