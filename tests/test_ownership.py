"""A sweep directory belongs to the results, not to the manifest's text: a comment-only edit
or a renamed manifest re-plans to a plan with another plan id but the same results id, and its
exec keeps (skips) the completed entries; a changed sample is another plan's results and is
refused untouched. ``check`` says which kind of difference it found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.plan.format import results_id
from hyperlax.plan.read import read_plan
from hyperlax.storage.sweepdir import MARKER, PLAN_COPY, SWEEP_RECORD
from conftest import tiny_sweep

SAME_RESULTS = "only the manifest's text differs (comments/formatting/file name): the " \
               "results are the same; completed results stay valid"


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def plan(manifest: Path, plan_file: Path) -> Path:
    result = cli("plan", manifest, "-o", plan_file)
    assert result.exit_code == 0, result.output
    return plan_file


def exec_into(plan_file: Path, root: Path):
    return cli("exec", plan_file, "--output-root", root)


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and mtime (ns), to show nothing was touched."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def markers(root: Path) -> dict[str, tuple[bytes, int]]:
    return {k: v for k, v in tree(root).items() if k.endswith(MARKER)}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The tiny 4-sample, 2-entry sweep planned from sweep.toml and run once."""
    tmp = tmp_path_factory.mktemp("owned")
    manifest = tmp / "sweep.toml"
    manifest.write_text(tiny_sweep(n=4))
    plan_file = plan(manifest, tmp / "plan.msgpack")
    root = tmp / "out"
    result = exec_into(plan_file, root)
    assert result.exit_code == 0, result.output
    assert "2 entries run, 0 skipped" in result.output
    return manifest, plan_file, root


@pytest.fixture
def sweep(ran, tmp_path):
    """A private copy of the completed sweep, with the same mtimes."""
    import shutil

    manifest, plan_file, root = ran
    copy = tmp_path / "out"
    shutil.copytree(root, copy)
    return manifest, plan_file, copy


def test_a_comment_only_edit_keeps_the_completed_results(sweep, tmp_path):
    manifest, old_plan, root = sweep
    edited = tmp_path / "sweep.toml"
    edited.write_text("# reviewed: widen the search next time\n" + manifest.read_text()
                      .replace("seed = 5", "seed = 5   # the sampler's seed"))
    new_plan = plan(edited, tmp_path / "plan.msgpack")
    (a, a_id), (b, b_id) = read_plan(old_plan), read_plan(new_plan)
    assert a_id != b_id and results_id(a) == results_id(b)

    check = cli("check", edited, old_plan)
    assert check.exit_code == 1
    assert "manifest text changed since the plan was written" in check.output
    assert SAME_RESULTS in check.output

    before, copy = markers(root), (root / PLAN_COPY).read_bytes()
    result = exec_into(new_plan, root)
    assert result.exit_code == 0, result.output
    assert "0 entries run, 2 skipped" in result.output
    assert markers(root) == before  # nothing retrained, no marker rewritten
    assert (root / PLAN_COPY).read_bytes() == copy  # the first plan's copy stays
    status = cli("status", new_plan, "--output-root", root, "--verify")
    assert status.exit_code == 0 and "2/2 done" in status.output
    report = cli("report", new_plan, "--output-root", root, "--no-plots")
    assert report.exit_code == 0, report.output


def test_a_renamed_manifest_keeps_the_completed_results(sweep, tmp_path):
    manifest, old_plan, root = sweep
    renamed = tmp_path / "ppo-cartpole.toml"
    renamed.write_text(manifest.read_text())
    new_plan = plan(renamed, tmp_path / "plan.msgpack")
    assert read_plan(new_plan)[1] != read_plan(old_plan)[1]
    check = cli("check", renamed, old_plan)
    assert check.exit_code == 1
    assert "manifest file name: sweep.toml -> ppo-cartpole.toml" in check.output
    assert SAME_RESULTS in check.output

    before = markers(root)
    result = exec_into(new_plan, root)
    assert result.exit_code == 0, result.output
    assert "0 entries run, 2 skipped" in result.output
    assert markers(root) == before


def test_a_changed_sample_is_refused_untouched(sweep, tmp_path):
    manifest, old_plan, root = sweep
    changed = tmp_path / "sweep.toml"
    changed.write_text(manifest.read_text().replace("high = 1e-2 }", "high = 1e-3 }", 1))
    new_plan = plan(changed, tmp_path / "plan.msgpack")
    assert results_id(read_plan(new_plan)[0]) != results_id(read_plan(old_plan)[0])
    check = cli("check", changed, old_plan)
    assert check.exit_code == 1 and "the results differ" in check.output
    assert SAME_RESULTS not in check.output

    before = tree(root)
    result = exec_into(new_plan, root)
    assert result.exit_code == 2, result.output
    assert "belongs to another plan" in result.output and "nothing was touched" in result.output
    assert tree(root) == before
    status = cli("status", new_plan, "--output-root", root)
    assert status.exit_code == 2 and "belongs to another plan" in status.output


def test_a_directory_an_older_hyperlax_made_belongs_to_its_plan_id(sweep, tmp_path):
    """Records and markers with a plan id only: the same plan resumes; a plan with only
    another manifest text is refused, as that hyperlax refused it."""
    manifest, old_plan, root = sweep
    _, pid = read_plan(old_plan)
    (root / SWEEP_RECORD).write_text(json.dumps({"plan_id": pid}))
    for path in root.rglob(MARKER):
        marker = json.loads(path.read_text())
        del marker["results_id"]
        path.write_text(json.dumps(marker))
    status = cli("status", old_plan, "--output-root", root, "--verify")
    assert status.exit_code == 0 and "verified" in status.output, status.output

    before = markers(root)
    result = exec_into(old_plan, root)
    assert result.exit_code == 0 and "0 entries run, 2 skipped" in result.output
    assert markers(root) == before

    edited = tmp_path / "sweep.toml"
    edited.write_text("# a comment\n" + manifest.read_text())
    result = exec_into(plan(edited, tmp_path / "plan.msgpack"), root)
    assert result.exit_code == 2 and f"belongs to another plan ({pid[:12]})" in result.output
    assert markers(root) == before


def test_status_refuses_a_folder_of_other_files_as_exec_does(tmp_path):
    """An output root that holds something other than a sweep (here a note) is refused by
    ``status`` as by ``exec``: the same message, exit status 2, nothing touched. An absent or
    empty output root is simply all pending."""
    manifest = tmp_path / "sweep.toml"
    manifest.write_text(tiny_sweep(n=4))
    plan_file = plan(manifest, tmp_path / "plan.msgpack")
    misc = tmp_path / "misc"
    misc.mkdir()
    (misc / "notes.txt").write_text("not a sweep\n")
    before = tree(misc)

    refused = cli("status", plan_file, "--output-root", misc)
    assert refused.exit_code == 2, refused.output
    executed = exec_into(plan_file, misc)
    assert executed.exit_code == 2, executed.output
    message = f"error: {misc}: is not empty and is not a hyperlax sweep directory"
    assert message in refused.output and message in executed.output
    assert refused.output == executed.output
    assert "pending" not in refused.output
    assert tree(misc) == before

    for root in (tmp_path / "absent", tmp_path / "empty"):
        if root.name == "empty":
            root.mkdir()
        pending = cli("status", plan_file, "--output-root", root)
        assert pending.exit_code == 0, pending.output
        assert f"0/2 done, 0 partial, 2 pending in {root}" in pending.output
    assert not (tmp_path / "absent").exists()
    assert list((tmp_path / "empty").iterdir()) == []
