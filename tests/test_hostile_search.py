"""Hostile files in a search directory (issue #23): ``hyperlax search`` and ``hyperlax report``
refuse, with status 2 and a located message, a study file that is damaged, nested, oversized,
a FIFO or a symbolic link leading out, or whose told values are not bound to their trials (a
told value that is not what its round's curves give, a told number that is not its round's
trial); the Optuna mirror is refused when linked out or not a file, rebuilt from the study file
when damaged or deleted, and a full disk while writing it is status 1. Nothing is ever
written outside the search directory.

The static corpus is tests/hostile_files/study_files/ (its README says what each file is);
the cases that need a real search's curves, FIFOs and links are made here at run time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main

optuna = pytest.importorskip("optuna")

from test_search import MANIFEST  # noqa: E402 (the tests' tiny search, after the skip)

CORPUS = Path(__file__).parent / "hostile_files" / "study_files"

# corpus file -> what the message must say (beside the file's path)
EXPECTED = {
    "nested_in_params.json": "nested too deeply",
    "nested_top_level.json": "damaged study file",
    "truncated.json": "not JSON",
    "not_utf8.json": "not JSON",
    "told_value_a_string.json": "$.rounds[0].told[0].values",
    "told_unknown_field.json": "unknown field `extra`",
    "newer_format_version.json": "upgrade hyperlax",
    "told_number_not_in_its_round.json": "rounds[0].told[0]: tells trial 7, but round 0 "
                                         "asked trial 0 there",
    "told_round_not_its_round.json": "rounds[0].told[0]: says round 3, but is in round 0",
    "told_complete_but_could_not_train.json": "rounds[0].told[1]: trial 1 is told complete, "
                                              "but it could not train",
    "told_fewer_than_asked.json": "rounds[0].told: 1 told records for 2 asked trials",
    "round_index_out_of_place.json": "rounds[0].index: is 5, not 0",
}



def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def hyperlax(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a subprocess: a FIFO that made it block would fail the test, not hang it."""
    return subprocess.run([sys.executable, "-m", "hyperlax.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def refused(result, *fragments: str, status: int = 2) -> None:
    output = getattr(result, "output", None) or (result.stdout + result.stderr)
    code = getattr(result, "exit_code", None)
    code = result.returncode if code is None else code
    assert code == status, output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in output, output


def test_the_corpus_is_what_its_readme_and_this_test_say():
    assert sorted(p.name for p in CORPUS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_hostile_study_file_is_refused_by_report(tmp_path, name):
    shutil.copy(CORPUS / name, tmp_path / "search.json")
    result = invoke("report", tmp_path)
    refused(result, f"{tmp_path / 'search.json'}", EXPECTED[name])
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("name", ["nested_in_params.json", "told_number_not_in_its_round.json",
                                  "told_complete_but_could_not_train.json"])
def test_a_hostile_study_file_is_refused_by_search_before_anything_runs(tmp_path, name):
    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    (tmp_path / "search.toml").write_text(MANIFEST)
    root = tmp_path / "s"
    root.mkdir()
    shutil.copy(CORPUS / name, root / "search.json")
    result = invoke("search", tmp_path / "search.toml", "--output-root", root)
    refused(result, str(root / "search.json"), EXPECTED[name])
    assert sorted(p.name for p in root.iterdir()) == ["search.json", "search.lock"]


def test_an_oversized_study_file_is_refused_unread(tmp_path):
    with open(tmp_path / "search.json", "wb") as f:
        f.truncate((256 << 20) + 1)  # sparse: no disk used
    refused(invoke("report", tmp_path), "more than the")


@pytest.mark.subprocess
def test_a_study_file_fifo_never_hangs(tmp_path):
    os.mkfifo(tmp_path / "search.json")
    refused(hyperlax("report", tmp_path, timeout=60), "FIFO")


def test_a_study_file_linked_out_is_neither_read_nor_rewritten(tmp_path):
    outside = tmp_path / "outside.json"
    shutil.copy(CORPUS / "told_fewer_than_asked.json", outside)
    before = outside.read_bytes()
    root = tmp_path / "s"
    root.mkdir()
    (root / "search.json").symlink_to(outside)
    refused(invoke("report", root), "outside")
    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    (tmp_path / "search.toml").write_text(MANIFEST)
    refused(invoke("search", tmp_path / "search.toml", "--output-root", root), "outside")
    assert outside.read_bytes() == before


# --- the Optuna mirror, without training -----------------------------------------------------

def test_a_mirror_linked_out_or_not_a_file_is_refused(tmp_path):
    from hyperlax.errors import HyperlaxError
    from hyperlax.search import sampler

    root = tmp_path / "s"
    root.mkdir()
    outside = tmp_path / "outside.db"
    outside.write_bytes(b"x")
    for name in ["optuna_study.db", "optuna_study.db-journal", "optuna_study.db-wal"]:
        (root / name).symlink_to(outside)
        with pytest.raises(HyperlaxError, match="is a symbolic link") as caught:
            sampler.storage_url(root, None)
        assert not hasattr(caught.value, "exit_status") and name in str(caught.value)  # 2
        (root / name).unlink()
    os.mkfifo(root / "mine.db")
    with pytest.raises(HyperlaxError, match="is a FIFO"):
        sampler.storage_url(root, "mine.db")
    assert outside.read_bytes() == b"x"
    # a URL the user gave is theirs: not checked, not rebuilt
    assert sampler.storage_url(root, f"sqlite:///{outside}") == f"sqlite:///{outside}"


def test_a_damaged_mirror_is_rebuilt_with_a_warning(tmp_path):
    from hyperlax.search import sampler

    root = tmp_path / "s"
    root.mkdir()
    file = root / "optuna_study.db"
    file.write_bytes(os.urandom(8192))
    notes: list[str] = []
    storage = sampler.open_storage(sampler.storage_url(root, None), file, root, notes.append)
    assert len(notes) == 1 and "rebuilding it from search.json" in notes[0]
    assert "--storage" not in notes[0]
    study = optuna.create_study(storage=storage, study_name="t")
    assert study.trials == [] and file.stat().st_size > 0


def sqlite_full(*args, **kwargs):
    import sqlite3

    import sqlalchemy.exc

    raise sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(
        "database or disk is full"))


def test_a_full_disk_while_writing_the_mirror_is_status_1(tmp_path, monkeypatch):
    from hyperlax.search import sampler
    from hyperlax.storage.atomic import StorageError

    root = tmp_path / "s"
    root.mkdir()
    url = sampler.storage_url(root, None)
    storage = sampler.open_storage(url, root / "optuna_study.db", root)
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    monkeypatch.setattr(optuna, "create_study", sqlite_full)
    with pytest.raises(StorageError) as caught:
        sampler.mirror(study, storage, "t", lambda line: None)
    assert caught.value.exit_status == 1
    assert "free disk space" in str(caught.value) and "--storage" not in str(caught.value)
    monkeypatch.setattr(optuna.storages, "RDBStorage", sqlite_full)
    with pytest.raises(StorageError, match="free disk space"):
        sampler.open_storage(url, root / "optuna_study.db", root)


# --- a real search: told values against its curves -------------------------------------------

@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search of 2 rounds of 2 trials (the tiny PPO of test_search), in-process."""
    tmp = tmp_path_factory.mktemp("hostile-search")
    (tmp / "tiny.toml").write_text(TINY_RECIPE)
    (tmp / "search.toml").write_text(MANIFEST)
    root = tmp / "whole"
    result = invoke("search", tmp / "search.toml", "--output-root", root)
    assert result.exit_code == 0, result.output
    return tmp, root


def copy_of(searched, tmp_path: Path) -> Path:
    tmp, root = searched
    shutil.copy(tmp / "tiny.toml", tmp_path / "tiny.toml")
    shutil.copy(tmp / "search.toml", tmp_path / "search.toml")
    shutil.copytree(root, tmp_path / "s")
    return tmp_path / "s"


def edit(root: Path, change) -> None:
    record = json.loads((root / "search.json").read_text())
    change(record)
    (root / "search.json").write_text(json.dumps(record, indent=2))


def resume(root: Path):
    return invoke("search", root.parent / "search.toml", "--output-root", root)


def swap_last(record):
    told = record["rounds"][-1]["told"]
    told[0]["values"], told[1]["values"] = told[1]["values"], told[0]["values"]


def set_99999(record):
    record["rounds"][-1]["told"][0]["values"] = [99999.0]


def as_version_1(record):
    record["format_version"] = 1
    for r in record["rounds"]:
        for t in r["told"]:
            del t["round"]


@pytest.mark.slow
def test_every_told_record_names_its_trial_and_round(searched):
    record = json.loads((searched[1] / "search.json").read_text())
    assert record["format_version"] == 2
    for r in record["rounds"]:
        assert [(t["number"], t["round"]) for t in r["told"]] == [
            (t["number"], r["index"]) for t in r["trials"]]


@pytest.mark.slow
@pytest.mark.parametrize("tamper", [swap_last, set_99999], ids=["swapped", "99999"])
@pytest.mark.parametrize("version_1", [False, True], ids=["v2", "v1"])
def test_a_told_value_edited_is_caught_before_report_ranks_and_search_replays(
        searched, tmp_path, tamper, version_1):
    root = copy_of(searched, tmp_path)
    edit(root, lambda record: (tamper(record), version_1 and as_version_1(record)))
    before = (root / "search.json").read_bytes()
    refused(invoke("report", root), "rounds[1].told[0]: trial 2 is told", "round 1's curves give")
    assert not (root / "report").exists()
    refused(resume(root), "round 1's curves give")
    assert (root / "search.json").read_bytes() == before


@pytest.mark.slow
def test_a_study_file_of_version_1_is_read_checked_and_ranked_alike(searched, tmp_path):
    root = copy_of(searched, tmp_path)
    wanted = invoke("report", root, "--format", "json")
    edit(root, as_version_1)
    got = invoke("report", root, "--format", "json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["best"] == json.loads(wanted.output)["best"]
    assert resume(root).exit_code == 0  # nothing left to run: the file stays as it was


@pytest.mark.slow
def test_a_told_round_whose_directory_is_gone_is_refused(searched, tmp_path):
    root = copy_of(searched, tmp_path)
    shutil.rmtree(root / "rounds" / "round_0001")
    refused(invoke("report", root), "round 1 is told, but its plan is gone",
            "restore round 1's directory")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "deleted", "empty"])
def test_a_damaged_or_deleted_mirror_is_rebuilt_with_every_trial(searched, tmp_path, damage):
    root = copy_of(searched, tmp_path)
    db = root / "optuna_study.db"
    if damage == "garbage":
        db.write_bytes(b"not a database" * 1000)
    elif damage == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    result = resume(root)
    assert result.exit_code == 0, result.output
    assert "--storage" not in result.output
    if damage == "garbage":
        assert "warning" in result.output and "rebuilding it from search.json" in result.output
    stored = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{db}")
    record = json.loads((root / "search.json").read_text())
    assert [t.params for t in stored.trials] == [t["params"] for r in record["rounds"]
                                                 for t in r["trials"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["optuna_study.db", "optuna_study.db-journal"])
def test_a_mirror_linked_out_is_refused_and_nothing_is_written_outside(searched, tmp_path,
                                                                        name):
    root = copy_of(searched, tmp_path)
    outside = tmp_path / "outside.db"
    outside.write_bytes(b"")
    (root / name).unlink(missing_ok=True)
    (root / name).symlink_to(outside)
    refused(resume(root), str(root / name), "symbolic link", "--storage sqlite:///")
    assert outside.read_bytes() == b""


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_mirror_fifo_is_refused_without_hanging(searched, tmp_path):
    root = copy_of(searched, tmp_path)
    (root / "optuna_study.db").unlink()
    os.mkfifo(root / "optuna_study.db")
    refused(hyperlax("search", root.parent / "search.toml", "--output-root", root,
                     timeout=120), "is a FIFO")


@pytest.mark.slow
def test_the_lock_file_linked_out_or_a_fifo_is_refused(searched, tmp_path):
    root = copy_of(searched, tmp_path)
    (root / "search.lock").unlink()
    (root / "search.lock").symlink_to(tmp_path / "outside.lock")
    refused(resume(root), "outside")
    assert not (tmp_path / "outside.lock").exists()
    (root / "search.lock").unlink()
    os.mkfifo(root / "search.lock")
    refused(resume(root), "search.lock", "not a regular file", status=1)


@pytest.mark.slow
def test_the_search_report_directory_linked_out_is_refused(searched, tmp_path):
    root = copy_of(searched, tmp_path)
    (tmp_path / "outside").mkdir()
    (root / "report").symlink_to(tmp_path / "outside")
    refused(invoke("report", root), str(root / "report"), "outside")
    assert list((tmp_path / "outside").iterdir()) == []
