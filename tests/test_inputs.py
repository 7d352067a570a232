"""Inputs that are not what they seem, and paths that would leave the output root.

Manifests, recipes and plans are read only as regular files of bounded size, refused at once
otherwise; paths are checked when the plan is compiled, when it is read, and right before the
runtime writes or deletes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import MAX_MANIFEST_BYTES, read_text
from hyperlax.storage.paths import inside, path_problem
from hyperlax.storage.sweepdir import SweepDir

MANIFEST = """\
[sweep]
name = "t"
recipe = "ppo_mlp_small"
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = 2
"""


def plan(args: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["plan", *args])
    return result.exit_code, result.output, time.perf_counter() - start


def test_fifo_device_and_directory_are_refused_at_once(tmp_path):
    fifo = tmp_path / "sweep.toml"
    os.mkfifo(fifo)  # open() would block forever: nobody writes
    for path, kind in ((fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device"),
                       (tmp_path, "a directory")):
        code, output, seconds = plan([str(path), "-o", str(tmp_path / "p.msgpack")])
        assert code == 2 and f"the manifest is {kind}, not a regular file" in output, output
        assert seconds < 1.0
    assert not (tmp_path / "p.msgpack").exists()


def test_oversized_manifest_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: no time or disk spent
    code, output, seconds = plan([str(big)])
    assert code == 2 and "more than the" in output and seconds < 1.0


def test_byte_order_mark_is_accepted_and_changes_nothing(tmp_path):
    plain, marked = tmp_path / "a.toml", tmp_path / "b.toml"
    plain.write_text(MANIFEST)
    marked.write_bytes(b"\xef\xbb\xbf" + MANIFEST.encode())
    assert read_text(marked, "manifest") == MANIFEST
    for path in (plain, marked):
        code, output, _ = plan([str(path), "-o", str(tmp_path / f"{path.stem}.msgpack")])
        assert code == 0, output


def test_binary_manifest_names_the_byte(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b"[sweep]\nname = \"\xff\"\n")
    code, output, _ = plan([str(path)])
    assert code == 2 and "not UTF-8 text (byte 16 is 0xff)" in output


@pytest.mark.parametrize("path, problem", [
    ("", "is empty"), (".", "not a plain relative path"), ("a/../b", "not a plain relative"),
    ("/etc/x", "is absolute"), ("a//b", "not a plain"), ("a\0b", "NUL"), ("a\\b", "backslash"),
    ("C:/x", "is absolute"),
])
def test_path_problem(path, problem):
    assert problem in path_problem(path)


def test_plain_paths_pass():
    assert path_problem("ppo_mlp/gymnax_cartpole/samples/batch_00000") is None


def test_symlinks_out_of_the_root_are_refused_before_any_delete(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "r").mkdir(parents=True)
    outside.mkdir()
    precious = outside / "precious.txt"
    precious.write_text("keep me")
    sweep = SweepDir(root)
    # the entry's directory is a symlink to elsewhere: cleaning it would empty `outside`
    (root / "r" / "batch").symlink_to(outside, target_is_directory=True)
    with pytest.raises(HyperlaxError, match="outside the output root"):
        sweep.fresh_entry_dir("r/batch")
    # a parent directory on the way is the symlink
    (root / "s").symlink_to(outside, target_is_directory=True)
    with pytest.raises(HyperlaxError, match="outside the output root"):
        sweep.fresh_entry_dir("s/batch")
    with pytest.raises(HyperlaxError):
        sweep.claim_path("s/batch")
    # a symlink that stays inside the root is still never written through
    (root / "t").mkdir()
    (root / "r" / "inner").symlink_to(root / "t", target_is_directory=True)
    with pytest.raises(HyperlaxError, match="is a symlink"):
        sweep.fresh_entry_dir("r/inner")
    assert precious.read_text() == "keep me" and sorted(os.listdir(outside)) == ["precious.txt"]
    assert inside(root, "r/new") == root / "r" / "new"


def test_decode_json_with_unique_keys_refuses_a_key_named_twice():
    """A file a person writes: every JSON decoder keeps the last of two equal keys silently."""
    from hyperlax.storage.read import decode_json

    text = '[{"a": 1, "b": {"c": 2, "c": 3}}]'
    assert decode_json(text, "f.json", "samples file") == [{"a": 1, "b": {"c": 3}}]
    with pytest.raises(HyperlaxError, match="the samples file names 'c' twice in one object"):
        decode_json(text, "f.json", "samples file", unique_keys=True)
    assert decode_json('[{"a": 1}]', "f.json", "samples file", unique_keys=True) == [{"a": 1}]
    with pytest.raises(HyperlaxError, match="nested too deeply"):
        decode_json("[" * 100_000 + "]" * 100_000, "f.json", "x", unique_keys=True)
