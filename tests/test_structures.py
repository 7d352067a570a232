"""Two-level (structure-aware) sampling: `structures = K` in [sweep]."""

from __future__ import annotations

from collections import Counter

import numpy as np
from click.testing import CliRunner

from conftest import ROOT, SPECS
from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan

HEAD = """\
[sweep]
name = "s"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.pendulum"
num_samples = {n}
mode = "grouped"
batch_size = 16
seed = {seed}
{structures}

[fixed]
update_epochs = 4
{fixed}

[space]
num_envs = {{ dist = "categorical", values = [4, 8, 16, 32] }}
rollout_length = {{ dist = "categorical", values = [16, 32, 64, 128] }}
num_minibatches = {{ dist = "categorical", values = [2, 4] }}
"""


def plan_for(write_manifest, n=64, k=4, seed=0, fixed="", name="s.toml"):
    structures = f"structures = {k}" if k else ""
    text = HEAD.format(n=n, seed=seed, structures=structures, fixed=fixed)
    return compile_manifest(write_manifest(text, name))


def strata_counts(values: np.ndarray, strata: int) -> np.ndarray:
    return np.bincount(np.minimum((values * strata).astype(int), strata - 1), minlength=strata)


def test_k_structures_compile_k_times_with_full_batches(write_manifest):
    plan, _ = plan_for(write_manifest)
    assert len(plan.structures) == 4 and len(plan.groups) == 4
    assert [len(g.samples) for g in plan.groups] == [16, 16, 16, 16]
    widths = [sb.width for e in plan.entries for sb in e.sub_batches]
    assert widths == [16, 16, 16, 16]
    plain, _ = plan_for(write_manifest, k=None, name="plain.toml")
    assert len(plain.structures) > 16  # the problem being solved


def test_structural_points_cover_each_structural_dimension_evenly(write_manifest):
    plan, _ = plan_for(write_manifest, n=64, k=8)
    for name, choices in (("num_envs", 4), ("rollout_length", 4), ("num_minibatches", 2)):
        axis = plan.sampled.index(name)
        firsts = np.array([plan.samples[g.samples[0]].unit[axis] for g in plan.groups])
        # 8 Sobol points in 1-D: each of the `choices` equal cells gets 8 / choices points
        assert list(strata_counts(firsts, choices)) == [8 // choices] * choices


def test_scalar_points_balanced_per_structure_and_overall(write_manifest):
    plan, _ = plan_for(write_manifest, n=64, k=4)
    scalar_axes = [j for j, n in enumerate(plan.sampled)
                   if n not in ("num_envs", "rollout_length", "num_minibatches")]
    assert scalar_axes
    units = np.array([s.unit for s in plan.samples])
    for j in scalar_axes:
        assert list(strata_counts(units[:, j], 64)) == [1] * 64  # whole sweep: one per 1/64
        for g in plan.groups:
            block = units[g.samples, j]
            assert list(strata_counts(block, 16)) == [1] * 16  # each structure: one per 1/16


def test_repeated_categorical_combinations_collapse_with_a_warning(write_manifest):
    fixed = 'num_envs = 8\nrollout_length = 32\n'
    text = HEAD.format(n=32, seed=0, structures="structures = 8", fixed=fixed)
    text = text.replace('num_envs = {', '# num_envs = {').replace('rollout_length = {',
                                                                  '# rollout_length = {')
    plan, warnings = compile_manifest(write_manifest(text))
    assert len(plan.structures) == 2  # only num_minibatches varies: 2 values
    assert any("drew 2 distinct structures" in w for w in warnings)
    assert sorted(len(g.samples) for g in plan.groups) == [16, 16]


def test_uneven_split_is_as_even_as_possible(write_manifest):
    plan, _ = plan_for(write_manifest, n=30, k=4)
    sizes = sorted((len(g.samples) for g in plan.groups), reverse=True)
    assert sum(sizes) == 30 and max(sizes) - min(sizes) <= 1


def test_deterministic_and_golden():
    spec = SPECS / "ppo_structures.toml"
    a, _ = compile_manifest(spec)
    b, _ = compile_manifest(spec)
    assert encode_plan(a) == encode_plan(b)
    assert encode_plan(a) == (ROOT / "tests/golden/ppo_structures.plan.msgpack").read_bytes()


def test_structures_needs_a_sampled_structural_hyperparameter(write_manifest, tmp_path):
    text = ('[sweep]\nname = "x"\nrecipe = "sac_mlp_small"\nrecipe_space = "include"\nenv = "gymnax.pendulum"\n'
            'num_samples = 8\nstructures = 2\n')
    result = CliRunner().invoke(main, ["plan", str(write_manifest(text)), "-o",
                                       str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2 and not (tmp_path / "p.msgpack").exists()
    assert "sweep.structures: needs sampled structural hyperparameters" in result.output


def test_structures_larger_than_num_samples_is_refused(write_manifest):
    text = HEAD.format(n=4, seed=0, structures="structures = 8", fixed="")
    result = CliRunner().invoke(main, ["plan", str(write_manifest(text))])
    assert result.exit_code == 2
    assert "sweep.structures: must be between 1 and num_samples = 4, got 8" in result.output


def test_plan_hints_when_compiles_dominate(write_manifest, tmp_path):
    text = HEAD.format(n=16, seed=0, structures="", fixed="")
    result = CliRunner().invoke(main, ["plan", str(write_manifest(text)), "-o",
                                       str(tmp_path / "p.msgpack")])
    assert result.exit_code == 0 and "hint:" in result.output and "structures = K" in result.output
    text = HEAD.format(n=16, seed=0, structures="structures = 2", fixed="")
    result = CliRunner().invoke(main, ["plan", str(write_manifest(text, "b.toml")), "-o",
                                       str(tmp_path / "p.msgpack")])
    assert result.exit_code == 0 and "hint:" not in result.output


def test_show_reports_structures_histogram_and_compiles(tmp_path):
    out = tmp_path / "p.msgpack"
    CliRunner().invoke(main, ["plan", str(SPECS / "ppo_structures.toml"), "-o", str(out)])
    text = CliRunner().invoke(main, ["show", str(out)]).output
    assert "4 distinct structures" in text and "4 compiles" in text
    assert "batch widths (width: calls) 16: 4" in text
    assert "two-level: 4 structural points" in text


def test_sampled_value_counts_match_structure_groups(write_manifest):
    plan, _ = plan_for(write_manifest, n=64, k=4)
    counts = Counter(s.structure for s in plan.samples)
    assert counts == {0: 16, 1: 16, 2: 16, 3: 16}
    # samples are ordered by structure: batched slices stay homogeneous as well
    assert [s.structure for s in plan.samples] == sorted(s.structure for s in plan.samples)
