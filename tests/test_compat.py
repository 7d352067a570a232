"""Every plan format this project has written is read by every command, forever (issue 22).

tests/compat/ holds, for each plan layout since 5fe824f, a plan and the finished output
directory that version wrote (tests/compat/README.md says how they were made). Today's code
must show, check, report and resume each one: the results id recorded in the old directory
still owns it, and what exec trains again matches what the old version trained.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

import hyperlax
from conftest import ROOT, SPECS
from hyperlax.cli.main import main
from hyperlax.compiler.lower import compile_manifest
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import ALGORITHMS, CONFIGS, PPOConfig
from hyperlax.hyperparams.declare import declarations, scalar
from hyperlax.plan.changes import CHANGES
from hyperlax.plan.format import decode_plan, encode_plan, results_id

CORPUS = sorted(p for p in (ROOT / "tests" / "compat").iterdir() if p.is_dir())
# PPO plans written before training ran in chunks (2026-11-30, 9998073 is the first corpus
# entry after it) resume with the same returns; their loss diagnostics differ in the last bits.
BIT_IDENTICAL_FROM = "05-"


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def sweep_copy(corpus: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(plan file, sweep directory) of a copy of one corpus entry: the corpus itself is never
    written."""
    copy = tmp_path / corpus.name
    shutil.copytree(corpus, copy)
    record = next(copy.glob("runs/*/hyperlax-sweep.json"))
    return copy / "plan.msgpack", record.parent


def test_the_corpus_covers_every_layout():
    assert len(CORPUS) >= 11
    for corpus in CORPUS:
        assert (corpus / "plan.msgpack").is_file() and (corpus / "SOURCE.md").is_file()


@pytest.mark.parametrize("corpus", CORPUS, ids=lambda p: p.name)
def test_every_command_reads_an_old_plan_and_its_results(corpus, tmp_path, monkeypatch):
    plan_file, root = sweep_copy(corpus, tmp_path)
    monkeypatch.chdir(plan_file.parent)
    data = plan_file.read_bytes()
    plan, pid = decode_plan(data, "old")
    assert encode_plan(plan) == data  # read as written: same bytes, same ids
    record = json.loads((root / "hyperlax-sweep.json").read_text())
    if "results_id" in record:
        assert record["results_id"] == results_id(plan)
    else:
        assert record["plan_id"] == pid

    shown = cli("show", plan_file)
    assert shown.exit_code == 0, shown.output
    absent = sorted(set(ALGORITHMS[plan.settings.algorithm]) - {r.name for r in plan.hyperparams})
    for name in absent:
        assert any(line.split()[:1] == [name] and "not in plan" in line
                   for line in shown.output.splitlines()), name
    status = cli("status", plan_file, "--verify")
    assert status.exit_code == 0, status.output
    assert "match their markers" in status.output
    report = cli("report", plan_file)
    assert report.exit_code == 0, report.output
    assert (root / "report" / "results.csv").is_file()
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "report" not in p.parts}
    again = cli("exec", plan_file)
    assert again.exit_code == 0, again.output
    assert {p: p.read_bytes() for p in before} == before  # complete: nothing is redone


def complete_entries(root: Path) -> list[Path]:
    return sorted(m.parent for m in root.rglob("success.txt"))


@pytest.mark.slow
@pytest.mark.parametrize("corpus", CORPUS, ids=lambda p: p.name)
def test_an_old_sweep_resumes_with_what_the_old_version_trained(corpus, tmp_path, monkeypatch):
    """The last complete entry is deleted and exec trains it again with today's code, in the
    old directory: the directory stays the old plan's (same record), the samples are the
    same, and so are the learning curves (bit for bit for plans written since training runs
    in chunks; returns bit for bit and losses to float rounding before that)."""
    plan_file, root = sweep_copy(corpus, tmp_path)
    monkeypatch.chdir(plan_file.parent)
    record = (root / "hyperlax-sweep.json").read_bytes()
    entry = complete_entries(root)[-1]
    old = {p.name: p.read_bytes() for p in entry.iterdir() if p.is_file()}
    shutil.rmtree(entry)
    result = cli("exec", plan_file)
    assert result.exit_code == 0, result.output
    assert (root / "hyperlax-sweep.json").read_bytes() == record
    new = {p.name: p.read_bytes() for p in entry.iterdir() if p.is_file()}
    assert new["samples.json"] == old["samples.json"]
    if corpus.name >= BIT_IDENTICAL_FROM:
        assert new["curves.npz"] == old["curves.npz"]
        assert new["curves.csv"] == old["curves.csv"]
    else:
        old_curves = _npz(old["curves.npz"])
        new_curves = _npz(new["curves.npz"])
        assert old_curves.keys() == new_curves.keys()
        for key in old_curves:
            if "return" in key:
                np.testing.assert_array_equal(new_curves[key], old_curves[key], err_msg=key)
            else:
                np.testing.assert_allclose(new_curves[key], old_curves[key], rtol=1e-4,
                                           atol=1e-6, err_msg=key)


def _npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as loaded:
        return {k: loaded[k] for k in loaded.files}


def test_a_plan_from_a_newer_hyperlax_is_refused_naming_both_versions():
    plan, _ = compile_manifest(SPECS / "quickstart.toml")
    newer = msgspec.structs.replace(plan, hyperlax_version="99.1.0")
    with pytest.raises(HyperlaxError) as refused:
        decode_plan(encode_plan(newer), "newer.msgpack")
    assert "99.1.0" in str(refused.value) and hyperlax.__version__ in str(refused.value)


class _WithTestFlag(PPOConfig):
    """PPO with one more hyperparameter, added the way every later one must be: ``since`` a
    version, with a default that does what PPO did before it existed."""

    test_only_flag: scalar(bool, "a test-only flag that changes nothing", since="9.9.9") = False


@pytest.fixture
def ppo_with_a_new_hyperparameter(monkeypatch):
    monkeypatch.setitem(CONFIGS, "ppo", _WithTestFlag)
    monkeypatch.setitem(ALGORITHMS, "ppo", declarations(_WithTestFlag))
    assert "test_only_flag" in ALGORITHMS["ppo"]


def test_adding_a_hyperparameter_changes_no_plan(ppo_with_a_new_hyperparameter, tmp_path):
    golden = ROOT / "tests" / "golden"
    ppo_specs = [p for p in sorted(SPECS.glob("*.toml")) if "ppo" in p.name or
                 p.name == "quickstart.toml"]
    assert ppo_specs
    for spec in ppo_specs:
        plan, _ = compile_manifest(spec)
        assert encode_plan(plan) == (golden / f"{spec.stem}.plan.msgpack").read_bytes(), spec
    # set away from its default, it is written, and the plan and its results are others
    pinned = tmp_path / "pinned.toml"
    pinned.write_text((SPECS / "quickstart.toml").read_text().replace(
        "[fixed]\n", "[fixed]\ntest_only_flag = true\n"))
    plan, _ = compile_manifest(pinned)
    assert plan.constants["test_only_flag"] is True
    assert any(r.name == "test_only_flag" for r in plan.hyperparams)


def test_a_plan_without_a_new_hyperparameter_trains_with_its_default(
        ppo_with_a_new_hyperparameter):
    plan, _ = decode_plan((ROOT / "tests" / "golden" / "quickstart.plan.msgpack").read_bytes(),
                          "quickstart")
    assert plan.sample_config(0).test_only_flag is False


def test_every_recorded_change_is_in_the_changelog():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {hyperlax.__version__} " in changelog
    for change in CHANGES:
        assert change.text in changelog, change.text


def test_check_names_the_change_of_hyperlax_behind_a_difference(tmp_path, monkeypatch):
    """An old plan of an unchanged manifest (one that says which space it samples): check
    says that hyperlax, not the manifest, made the difference, and names the changes."""
    corpus = next(p for p in CORPUS if p.name.startswith("05-"))
    plan_file, _ = sweep_copy(corpus, tmp_path)
    monkeypatch.chdir(plan_file.parent)
    result = cli("check", plan_file.parent / "manifest.toml", plan_file)
    assert result.exit_code == 2 and "recipe_space" in result.output  # says the line to add
    manifest = plan_file.parent / "manifest.toml"
    manifest.write_text(manifest.read_text().replace("[sweep]\n",
                                                     '[sweep]\nrecipe_space = "include"\n'))
    result = cli("check", manifest, plan_file)
    assert result.exit_code == 1, result.output
    assert "written by hyperlax 0.1.0, this is " + hyperlax.__version__ in result.output
    assert "clip_value_loss" in result.output and "ppo_mlp_no_network_search" in result.output
    assert "DQN" not in result.output


# search_id of tests/test_search.py's manifest (with the tiny recipe, and with ppo_mlp), as
# hyperlax 0.2.0 computed it: a search started then is this search now, not "another search",
# whatever hyperparameters were added since (at their behaviour-preserving defaults).
SEARCH_IDS_0_2_0 = {
    "tiny.toml": "6b98e0c061b84289938c7ba18c2d560b1249e7bfc40c421ef054ce776f6f0947",
    "ppo_mlp": "04fbc35004bb74c1feda008f2da2cbc4c68e9e72768ef884eea9882ef0efbc19",
}


@pytest.mark.parametrize("recipe", sorted(SEARCH_IDS_0_2_0))
def test_a_search_started_by_0_2_0_keeps_its_id(recipe, tmp_path):
    from conftest import TINY_RECIPE
    from hyperlax.search.run import SearchRequest, resolve_search, search_id
    from test_search import MANIFEST

    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    text = MANIFEST.replace('recipe = "tiny.toml"', f'recipe = "{recipe}"')
    resolved, spec = resolve_search(SearchRequest(manifest_text=text,
                                                  manifest_name="search.toml",
                                                  manifest_dir=tmp_path, resume=""))
    assert search_id(resolved, spec) == SEARCH_IDS_0_2_0[recipe]


def test_check_names_a_built_in_recipes_change_even_before_a_version_bump(tmp_path):
    """A plan of ppo_mlp written with 0.2.0's recipe text (tests/compat/ppo_mlp-0.2.0.recipe
    .toml) against the same manifest planned now: the recipe's text moved (Brax's settings),
    and the change that did it is named whatever version either plan records."""
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.plan.changes import changes_between

    manifest = tmp_path / "sweep.toml"
    manifest.write_text('[sweep]\nname = "m"\nrecipe = "ppo_mlp"\nrecipe_space = "include"\n'
                        'env = "gymnax.pendulum"\nnum_samples = 2\n')
    new, _ = compile_manifest(manifest)
    old_text = (ROOT / "tests" / "compat" / "ppo_mlp-0.2.0.recipe.toml").read_text()
    old = msgspec.structs.replace(new, recipe_text=old_text)
    named = [c.text for c in changes_between(old, new)]
    assert any("Brax's published PPO and SAC settings" in t for t in named), named
    assert changes_between(new, new) == []
