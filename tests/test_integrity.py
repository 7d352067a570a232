"""Integrity of results and inputs: `status --verify` finds complete entries whose files changed,
were truncated or went missing; `exec` leaves such entries alone unless `--redo-corrupt`; a plan
edited by hand, truncated or from another format version is refused; so is a manifest that
changed after its plan was written, when both are given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.plan.format import FORMAT_VERSION, PlanFile
from hyperlax.exec.local_exec import execute
from hyperlax.storage.sweepdir import MARKER, Owner, SweepDir
from test_exec import tiny_plan


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A 2-entry tiny plan, its manifest, and one complete run of it (copied by each test)."""
    tmp = tmp_path_factory.mktemp("integrity")
    plan, pid, data = tiny_plan(tmp, n=4, batch=2, name="sweep.toml")
    (tmp / "plan.msgpack").write_bytes(data)
    execute(plan, pid, data, tmp / "reference")
    return plan, pid, tmp


@pytest.fixture
def sweep(complete, tmp_path):
    plan, pid, tmp = complete
    shutil.copytree(tmp / "reference", tmp_path / "out")
    shutil.copy(tmp / "plan.msgpack", tmp_path / "plan.msgpack")
    shutil.copy(tmp / "sweep.toml", tmp_path / "sweep.toml")
    return plan, pid, tmp_path / "plan.msgpack", tmp_path / "out"


def entry(root: Path, plan, index: int) -> Path:
    return root.joinpath(*plan.entries[index].path.split("/"))


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def status(plan_file: Path, root: Path, *extra: str):
    return cli("status", plan_file, "--output-root", root, *extra)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_intact_sweep_verifies(sweep):
    plan, pid, plan_file, root = sweep
    result = status(plan_file, root, "--verify")
    assert result.exit_code == 0, result.output
    assert "2/2 done, 0 partial, 0 pending, 0 corrupt" in result.output
    assert "verified: the files of all 2 complete entries match their markers" in result.output
    marker = json.loads((entry(root, plan, 0) / MARKER).read_text())
    assert set(marker["bytes"]) == set(marker["files"])


def _append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"0")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, damage, problem", [
    ("curves.csv", _append, "curves.csv changed after the entry completed (checksum differs)"),
    ("curves.npz", _truncate, "curves.npz is truncated (100 of "),
    ("summary.json", _flip, "summary.json changed after the entry completed"),
    ("samples.json", Path.unlink, "samples.json is missing"),
    (MARKER, lambda p: p.write_text("{half a mark"), f"{MARKER} is damaged (not JSON)"),
    (MARKER, lambda p: p.write_text("{}"), f"{MARKER} is damaged (no file checksums)"),
    (MARKER, lambda p: p.write_text(p.read_text().replace('"curves.csv"', '"other.csv"', 1)),
     f"{MARKER} does not vouch for curves.csv"),
])
def test_status_verify_finds_a_corrupt_entry(sweep, name, damage, problem):
    plan, pid, plan_file, root = sweep
    damage(entry(root, plan, 1) / name)

    plain = status(plan_file, root)  # without --verify: markers only, cheap
    assert plain.exit_code == 0 and "2/2 done" in plain.output

    result = status(plan_file, root, "--verify")
    assert result.exit_code == 1, result.output
    assert f"corrupt  {plan.entries[1].path}  (2 samples): {problem}" in result.output
    assert f"done     {plan.entries[0].path}" in result.output
    assert "1/2 done, 0 partial, 0 pending, 1 corrupt" in result.output
    assert (f"re-run them with: hyperlax exec {plan_file} --output-root {root} --redo-corrupt"
            in result.output)


def _set_size(value):
    """Damage success.txt's recorded size of summary.json: set it to ``value``, or remove it
    (``...``), or remove every size (``None``)."""
    def damage(marker_path: Path) -> None:
        marker = json.loads(marker_path.read_text())
        if value is None:
            del marker["bytes"]
        elif value is ...:
            del marker["bytes"]["summary.json"]
        else:
            marker["bytes"]["summary.json"] = value
        marker_path.write_text(json.dumps(marker))
    return damage


@pytest.mark.parametrize("damage, problem", [
    (_set_size(999999), f"{MARKER} is damaged (records 999999 bytes for summary.json, which "
                        "has "),
    (_set_size(0), f"{MARKER} is damaged (records 0 bytes for summary.json, which has "),
    (_set_size("abc"), f"{MARKER} is damaged (summary.json's size is 'abc')"),
    (_set_size(True), f"{MARKER} is damaged (summary.json's size is True)"),
    (_set_size(-1), f"{MARKER} is damaged (summary.json's size is -1)"),
    (_set_size(...), f"{MARKER} is damaged (no size for summary.json)"),
    (_set_size(None), f"{MARKER} is damaged (no file sizes)"),
], ids=["too-large", "zero", "text", "bool", "negative", "no-size", "no-sizes"])
def test_a_damaged_size_in_a_marker_is_corrupt(sweep, damage, problem):
    """The files are intact (their checksums match) but the marker's own fields are malformed
    or disagree with them: the marker is damaged, and the entry corrupt."""
    plan, pid, plan_file, root = sweep
    damage(entry(root, plan, 1) / MARKER)
    problems = SweepDir(root).verify(plan.entries[1].path, Owner.of(plan, pid), 1)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    result = status(plan_file, root, "--verify")
    assert result.exit_code == 1, result.output
    assert f"corrupt  {plan.entries[1].path}  (2 samples): {problem}" in result.output
    assert "1/2 done, 0 partial, 0 pending, 1 corrupt" in result.output
    assert "verified:" not in result.output


def test_exec_reports_a_damaged_size_and_leaves_the_entry_alone(sweep):
    plan, pid, plan_file, root = sweep
    _set_size(999999)(entry(root, plan, 0) / MARKER)
    damaged = snapshot(entry(root, plan, 0))
    result = cli("exec", plan_file, "--output-root", root)
    assert result.exit_code == 1, result.output
    assert (f"warning: {plan.entries[0].path}: {MARKER} is damaged (records 999999 bytes for "
            "summary.json" in result.output)
    assert f"warning: {plan.entries[0].path}: complete but corrupt; left alone" in result.output
    assert snapshot(entry(root, plan, 0)) == damaged


@pytest.mark.slow
def test_exec_leaves_a_corrupt_entry_alone_unless_asked(sweep, complete):
    plan, pid, plan_file, root = sweep
    reference = complete[2] / "reference"
    _append(entry(root, plan, 0) / "curves.csv")
    shutil.rmtree(entry(root, plan, 1))  # pending: exec still runs it
    damaged = snapshot(entry(root, plan, 0))

    result = cli("exec", plan_file, "--output-root", root)
    assert result.exit_code == 1, result.output
    assert (f"warning: {plan.entries[0].path}: curves.csv changed after the entry completed"
            in result.output)
    assert f"warning: {plan.entries[0].path}: complete but corrupt; left alone" in result.output
    assert ("error: " + str(root) + ": 1 complete entries have files that changed after "
            "completion; they were left alone") in result.output
    assert "--redo-corrupt" in result.output and "Traceback" not in result.output
    assert snapshot(entry(root, plan, 0)) == damaged  # untouched
    for name in ("curves.csv", "samples.json"):  # entry 1 ran (summary.json has timings)
        assert (entry(root, plan, 1) / name).read_bytes() == \
            (entry(reference, plan, 1) / name).read_bytes()

    result = cli("exec", plan_file, "--output-root", root, "--redo-corrupt")
    assert result.exit_code == 0, result.output
    assert "running it again (--redo-corrupt)" in result.output
    assert "1 entries run, 1 skipped" in result.output
    with np.load(entry(root, plan, 0) / "curves.npz") as a, \
            np.load(entry(reference, plan, 0) / "curves.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in b.files)
    assert (entry(root, plan, 0) / "curves.csv").read_bytes() == \
        (entry(reference, plan, 0) / "curves.csv").read_bytes()
    assert status(plan_file, root, "--verify").exit_code == 0


# --- plans and manifests -----------------------------------------------------------------------

def _hand_edit(data: bytes) -> bytes:
    """Change one sample's value and re-encode, keeping the recorded plan id."""
    envelope = msgspec.msgpack.decode(data, type=PlanFile)
    sample = envelope.plan.samples[0]
    edited = msgspec.structs.replace(sample, values={**sample.values, "actor_lr": 0.5})
    plan = msgspec.structs.replace(envelope.plan, samples=[edited, *envelope.plan.samples[1:]])
    return msgspec.msgpack.encode(msgspec.structs.replace(envelope, plan=plan))


def _with_version(version: int):
    def change(data: bytes) -> bytes:
        envelope = msgspec.msgpack.decode(data, type=PlanFile)
        return msgspec.msgpack.encode(msgspec.structs.replace(envelope,
                                                              format_version=version))
    return change


@pytest.mark.parametrize("damage, message", [
    (_hand_edit, "plan id does not match its contents: the file was edited"),
    (lambda b: b[:-1], "not a hyperlax plan file (corrupt or truncated"),
    (lambda b: b[:len(b) * 3 // 4], "not a hyperlax plan file (corrupt or truncated"),
    (lambda b: b[:40], "not a hyperlax plan file (corrupt or truncated"),
    (_with_version(FORMAT_VERSION + 1), f"plan format version {FORMAT_VERSION + 1} is newer "
                                        f"than this hyperlax reads ({FORMAT_VERSION})"),
    (_with_version(FORMAT_VERSION - 1), f"plan format version {FORMAT_VERSION - 1} is older "),
], ids=["hand-edited", "last-byte", "three-quarters", "header-only", "newer", "older"])
@pytest.mark.parametrize("command", ["exec", "status", "show"])
def test_damaged_or_foreign_version_plans_are_refused(complete, tmp_path, damage, message,
                                                      command):
    _, _, tmp = complete
    data = (tmp / "plan.msgpack").read_bytes()
    bad = damage(data)
    assert bad != data
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(bad)
    out = tmp_path / "out"
    args = [command, plan_file] + (["--output-root", out] if command != "show" else [])
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert f"error: {plan_file}: {message}" in result.output
    assert "hint: " in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_exec_refuses_a_manifest_changed_after_its_plan(sweep):
    plan, pid, plan_file, root = sweep
    manifest = plan_file.parent / "sweep.toml"
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    same = cli("exec", plan_file, "--output-root", root, "--manifest", manifest)
    assert same.exit_code == 0, same.output  # unchanged: runs (here: nothing left to do)

    manifest.write_text(manifest.read_text().replace("seed = 5", "seed = 6"))
    changed = cli("exec", plan_file, "--output-root", root, "--manifest", manifest)
    assert changed.exit_code == 2, changed.output
    assert (f"error: {manifest}: changed after {plan_file} was compiled from it"
            in changed.output)
    assert f"hint: see what differs with: hyperlax check {manifest} {plan_file}" in \
        changed.output
    assert "Traceback" not in changed.output

    manifest.write_text(manifest.read_text() + "# a comment is a change too\n")
    assert cli("exec", plan_file, "--output-root", root, "--manifest",
               manifest).exit_code == 2
    missing = cli("exec", plan_file, "--output-root", root, "--manifest",
                  manifest.parent / "nope.toml")
    assert missing.exit_code == 2 and "no such manifest file" in missing.output
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
