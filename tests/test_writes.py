"""Every write is atomic and replaces only a regular file: a FIFO, a device, a directory, a
socket or a dangling symbolic link at the target is refused (quickly: a FIFO is never opened),
and a symbolic link to a regular file is written through (the link stays). A failed disk
operation's hint names the cause its errno tells, not always "free disk space"."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, SPECS
from hyperlax.cli.main import main
from hyperlax.storage.atomic import (NotRegularFileError, OutsideRootError, atomic_write,
                                     make_dirs, make_new_dir, publish_new, remove_empty_dir,
                                     remove_file, remove_tree, rename_within, storage_error)
from hyperlax.storage.sweepdir import Owner, SweepDir

MANIFEST = SPECS / "quickstart.toml"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(path: Path) -> tuple:
    """What must not change about a refused target: its type, inode, and where a link points."""
    st = os.lstat(path)
    return (stat.S_IFMT(st.st_mode), st.st_ino, st.st_rdev,
            os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)


def fifo(tmp: Path) -> Path:
    path = tmp / "target"
    os.mkfifo(path)
    return path


def char_device(tmp: Path) -> Path:
    """A character device node (the same numbers as /dev/null) where root may make one, else a
    symbolic link to /dev/null."""
    path = tmp / "target"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    except (PermissionError, OSError):
        path.symlink_to("/dev/null")
    return path


def link_to_dev_null(tmp: Path) -> Path:
    path = tmp / "target"
    path.symlink_to("/dev/null")
    return path


def directory(tmp: Path) -> Path:
    path = tmp / "target"
    path.mkdir()
    (path / "inside").write_text("kept")
    return path


def dangling_link(tmp: Path) -> Path:
    path = tmp / "target"
    path.symlink_to(tmp / "nowhere")
    return path


def link_to_fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe")
    path = tmp / "target"
    path.symlink_to("pipe")
    return path


def unix_socket(tmp: Path) -> Path:
    path = tmp / "target"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
    except OSError:
        pytest.skip("cannot bind a unix socket here")
    finally:
        s.close()
    return path


SPECIAL = {"fifo": fifo, "char-device": char_device, "link-to-dev-null": link_to_dev_null,
           "directory": directory, "dangling-link": dangling_link, "link-to-fifo": link_to_fifo,
           "socket": unix_socket}


@pytest.mark.parametrize("kind", SPECIAL)
def test_atomic_write_refuses_a_target_that_is_not_a_regular_file(tmp_path, kind):
    target = SPECIAL[kind](tmp_path)
    before = snapshot(target)
    listing = sorted(p.name for p in tmp_path.iterdir())
    started = time.monotonic()
    with pytest.raises(NotRegularFileError) as caught:
        atomic_write(target, b"data", within=tmp_path)
    assert time.monotonic() - started < 5  # a FIFO is never opened, so nothing blocks
    assert isinstance(caught.value, OSError) and caught.value.filename == str(target)
    assert "not a regular file" in caught.value.strerror
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temporary left behind
    if kind == "directory":
        assert (target / "inside").read_text() == "kept"
    if kind == "dangling-link":
        assert not (tmp_path / "nowhere").exists()


def test_a_real_character_device_as_root_is_refused(tmp_path):
    path = tmp_path / "null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    with pytest.raises(NotRegularFileError, match="character device"):
        atomic_write(path, b"data", within=tmp_path)
    assert stat.S_ISCHR(os.lstat(path).st_mode)


def test_a_symlink_to_a_regular_file_is_written_through(tmp_path):
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "plan.msgpack"
    real.write_bytes(b"old")
    link = tmp_path / "plan.msgpack"
    link.symlink_to(Path("data") / "plan.msgpack")
    chain = tmp_path / "chain"
    chain.symlink_to("plan.msgpack")  # a link to a link to the file
    atomic_write(link, b"new", within=tmp_path)
    assert link.is_symlink() and os.readlink(link) == str(Path("data") / "plan.msgpack")
    assert real.read_bytes() == b"new" and not real.is_symlink()
    atomic_write(chain, b"newer", within=tmp_path)
    assert chain.is_symlink() and link.is_symlink() and real.read_bytes() == b"newer"
    # the temporary file went into the target's directory and is gone
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["plan.msgpack"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain", "data", "plan.msgpack"]


def test_a_regular_file_and_a_missing_one_are_written(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "new.txt", b"1", within=tmp_path)
    assert (tmp_path / "a" / "b" / "new.txt").read_bytes() == b"1"
    (tmp_path / "old.txt").write_bytes(b"old")
    atomic_write(tmp_path / "old.txt", b"2", within=tmp_path)
    assert (tmp_path / "old.txt").read_bytes() == b"2"


@pytest.mark.parametrize("kind", ["fifo", "char-device", "link-to-dev-null", "directory",
                                  "dangling-link"])
def test_plan_o_refuses_a_special_target_with_a_located_message(tmp_path, kind):
    target = SPECIAL[kind](tmp_path)
    before = snapshot(target)
    result = run("plan", MANIFEST, "-o", target)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"error: {target}: cannot write the plan: it is " in result.output
    assert "not a regular file: refusing to replace it" in result.output
    assert "hint: choose another path with -o" in result.output
    assert snapshot(target) == before


def test_plan_o_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.msgpack"
    real.write_bytes(b"old")
    link = tmp_path / "plan.msgpack"
    link.symlink_to("real.msgpack")
    result = run("plan", MANIFEST, "-o", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == "real.msgpack"
    assert real.read_bytes()[:1] != b"o"  # a plan, not the old bytes
    assert run("show", link).exit_code == 0


@pytest.mark.subprocess
def test_plan_o_on_a_fifo_returns_quickly_in_a_real_process(tmp_path):
    """Out of process, so a blocking open of the FIFO would hang the command, not the test:
    the timeout would catch it."""
    target = fifo(tmp_path)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hyperlax", "plan", str(MANIFEST), "-o",
                           str(target)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {target}: cannot write the plan: it is a FIFO" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert time.monotonic() - started < 60


def test_every_user_named_output_refuses_a_fifo(tmp_path):
    pipe = fifo(tmp_path)
    before = snapshot(pipe)
    init = run("init", "-o", pipe, "--force")
    assert init.exit_code == 2, init.output
    assert f"error: {pipe}: cannot write the manifest: it is a FIFO" in init.output
    emit = run("sweep-hp-samples", "--emit-manifest", pipe, "--force")
    assert emit.exit_code == 2, emit.output
    assert f"error: {pipe}: cannot write: it is a FIFO" in emit.output
    generate = run("generate-hp-samples", "--output-file", pipe)
    assert generate.exit_code == 2, generate.output
    assert f"error: {pipe}: cannot write: it is a FIFO" in generate.output
    assert snapshot(pipe) == before
    for result in (init, emit, generate):
        assert "Traceback" not in result.output


def test_report_o_refuses_a_fifo_among_its_files(tmp_path):
    from test_report import fake_sweep  # written by the runtime's writer, no training

    _, plan_file, root = fake_sweep(tmp_path)
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    os.mkfifo(report_dir / "results.csv")
    result = run("report", plan_file, "--output-root", root, "-o", report_dir, "--no-plots")
    assert result.exit_code == 2, result.output
    assert f"error: {report_dir}: cannot write the report: it is a FIFO" in result.output
    assert stat.S_ISFIFO(os.lstat(report_dir / "results.csv").st_mode)


# --- the hint of a failed disk operation follows its errno ---------------------------------

def hint_of(where: Path, exc: OSError, then: str = "run the same command again") -> str:
    return storage_error(where, exc, "cannot write", then).hint


@pytest.mark.parametrize("code", [errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)])
def test_disk_full_says_free_disk_space(tmp_path, code):
    hint = hint_of(tmp_path, OSError(code, os.strerror(code)))
    assert hint.startswith("free disk space") and "permission" not in hint
    assert hint.endswith(", then run the same command again")


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_errors_say_permissions(tmp_path, code):
    hint = hint_of(tmp_path, OSError(code, os.strerror(code)))
    assert "permissions" in hint and "disk space" not in hint


def test_read_only_file_system_says_read_only(tmp_path):
    hint = hint_of(tmp_path, OSError(errno.EROFS, os.strerror(errno.EROFS)))
    assert "read-only" in hint and "disk space" not in hint


def test_a_file_in_the_way_of_an_entry_directory_is_named(tmp_path):
    (tmp_path / "ppo").write_text("not a directory")
    entry = tmp_path / "ppo" / "pendulum" / "entry_0000"
    with pytest.raises(OSError) as caught:
        entry.mkdir(parents=True)
    hint = hint_of(entry, caught.value)
    assert "disk space" not in hint
    assert f"something that is not a directory is in the way of {entry}: " in hint
    assert f"move {tmp_path / 'ppo'} (a regular file) away" in hint


def test_a_symlinked_entry_directory_is_named(tmp_path):
    (tmp_path / "elsewhere.txt").write_text("a file")
    entry = tmp_path / "entry_0000"
    entry.symlink_to("elsewhere.txt")
    with pytest.raises(OSError) as caught:
        (entry / "summary.json").write_text("{}")
    for exc in (caught.value, OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(entry)),
                OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(entry))):
        hint = hint_of(entry, exc)
        assert "disk space" not in hint
        assert f"move {entry} (a symbolic link) away" in hint


def test_a_non_regular_file_at_a_written_path_is_named(tmp_path):
    pipe = fifo(tmp_path)
    with pytest.raises(NotRegularFileError) as caught:
        atomic_write(pipe, b"x", within=tmp_path)
    hint = hint_of(tmp_path, caught.value)
    assert f"move {pipe} out of the way" in hint and "disk space" not in hint


def test_another_errno_gets_a_generic_hint(tmp_path):
    hint = hint_of(tmp_path, OSError(errno.EIO, os.strerror(errno.EIO)))
    assert "disk space" not in hint and hint.startswith("check the disk")


def test_exec_into_a_blocked_entry_directory_names_what_is_in_the_way(tmp_path):
    from test_exec import tiny_plan

    plan, pid, data = tiny_plan(tmp_path, n=2, batch=2)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    SweepDir(root).claim(data, Owner.of(plan, pid))  # a sweep directory of this plan
    first = plan.entries[0].path.split("/")[0]
    (root / first).write_text("in the way")
    result = run("exec", plan_file, "--output-root", root, "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "disk space" not in result.output
    assert f"move {root / first} (a regular file) away" in result.output
    assert (root / first).read_text() == "in the way"


# --- never outside the directory a write was given -----------------------------------------

def planted(tmp_path: Path) -> tuple[Path, Path]:
    """An output root and, beside it, a directory outside it with one file in it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"precious")
    return root, outside


def outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_bytes() == b"precious"


def test_a_file_symlinked_out_of_the_root_is_not_written_through(tmp_path):
    root, outside = planted(tmp_path)
    (root / "search.json").symlink_to(outside / "victim.txt")
    with pytest.raises(OutsideRootError, match="outside") as caught:
        atomic_write(root / "search.json", b"new", within=root)
    assert getattr(caught.value, "exit_status", 2) == 2 and "symbolic link" in caught.value.hint
    outside_untouched(outside)
    assert (root / "search.json").is_symlink()


def test_a_directory_symlinked_out_of_the_root_is_not_written_into(tmp_path):
    root, outside = planted(tmp_path)
    (root / "report").symlink_to(outside)
    for write in (lambda: atomic_write(root / "report" / "results.csv", b"x", within=root),
                  lambda: atomic_write(root / "report" / "deep" / "a.png", b"x", within=root),
                  lambda: make_dirs(root / "report" / "tb" / "run", within=root),
                  lambda: make_new_dir(root / "report" / "new", within=root),
                  lambda: remove_file(root / "report" / "victim.txt", within=root),
                  lambda: remove_tree(root / "report", within=root),
                  lambda: remove_empty_dir(root / "report" / "x", within=root),
                  lambda: rename_within(root / "report" / "victim.txt", root / "moved",
                                        within=root)):
        with pytest.raises(OutsideRootError):
            write()
        outside_untouched(outside)
    assert not (root / "moved").exists()


def test_links_that_stay_inside_the_root_are_used(tmp_path):
    root, outside = planted(tmp_path)
    (root / "data").mkdir()
    (root / "data" / "real.json").write_bytes(b"old")
    (root / "link.json").symlink_to(Path("data") / "real.json")
    atomic_write(root / "link.json", b"new", within=root)
    assert (root / "data" / "real.json").read_bytes() == b"new"
    assert (root / "link.json").is_symlink()
    remove_file(root / "link.json", within=root)  # the link goes, never what it points to
    assert (root / "data" / "real.json").read_bytes() == b"new"


def test_a_root_that_is_itself_a_link_is_where_its_files_go(tmp_path):
    root, outside = planted(tmp_path)
    named = tmp_path / "named"
    named.symlink_to(outside)  # the user named a link to a scratch disk: that is the root
    atomic_write(named / "sweep" / "a.json", b"{}", within=named)
    assert (outside / "sweep" / "a.json").read_bytes() == b"{}"


def test_publish_new_never_links_outside(tmp_path):
    root, outside = planted(tmp_path)
    (root / "rungs").symlink_to(outside)
    staged = root / ".staged"
    staged.write_bytes(b"decision")
    with pytest.raises(OutsideRootError):
        publish_new(staged, root / "rungs" / "decision_0.json", within=root)
    outside_untouched(outside)


def test_remove_tree_refuses_a_link_and_the_root_itself(tmp_path):
    root, outside = planted(tmp_path)
    (root / "entry").symlink_to(outside)
    with pytest.raises(OutsideRootError, match="symbolic link"):
        remove_tree(root / "entry", within=root)
    with pytest.raises(OutsideRootError, match="refusing to delete"):
        remove_tree(root, within=root)
    outside_untouched(outside)
    assert root.is_dir()
