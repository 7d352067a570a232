"""The compiler: same manifest -> same plan bytes; sampling, grouping and slicing rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from conftest import MINIMAL, ROOT, SPECS
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import decode_plan, encode_plan, plan_id

SPEC_FILES = sorted(SPECS.glob("*.toml"))


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_plans_match_golden_bytes(spec):
    golden = ROOT / "tests" / "golden" / f"{spec.stem}.plan.msgpack"
    plan, _ = compile_manifest(spec)
    assert encode_plan(plan) == golden.read_bytes(), (
        f"{spec.name} no longer compiles to its golden plan; if intended, run "
        "python tools/update_golden.py and review the change")


def test_at_least_five_specs_ship():
    assert {p.stem for p in SPEC_FILES} >= {"quickstart", "ppo_pendulum_64",
                                             "ppo_grouped_layers", "ppo_cartpole_sequential",
                                             "ppo_cartpole"}


@pytest.mark.subprocess
def test_plan_bytes_identical_across_processes_and_hash_seeds(tmp_path):
    spec = SPECS / "ppo_pendulum_64.toml"
    outputs = []
    for hash_seed in ("0", "12345"):
        out = tmp_path / f"plan{hash_seed}.msgpack"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "hyperlax", "plan", str(spec), "-o", str(out)],
                       check=True, env=env, capture_output=True, cwd=tmp_path)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_reordering_toml_keys_changes_no_sample(write_manifest):
    head = MINIMAL.format(n=8, mode="batched", batch=4, seed=3)
    a = write_manifest(head + "[space]\nactor_lr = { dist = \"log_uniform\", low = 1e-5, "
                       "high = 1e-3 }\ngamma = { dist = \"uniform\", low = 0.9, high = 0.99 }\n",
                       "a.toml")
    b = write_manifest(head + "[space]\ngamma = { high = 0.99, dist = \"uniform\", low = 0.9 }\n"
                       "actor_lr = { dist = \"log_uniform\", low = 1e-5, high = 1e-3 }\n",
                       "b.toml")
    plan_a, _ = compile_manifest(a)
    plan_b, _ = compile_manifest(b)
    assert plan_a.samples == plan_b.samples
    assert plan_a.entries == plan_b.entries


def test_seeds_and_values_do_not_depend_on_mode_or_batch_size(write_manifest):
    plans = []
    for mode, batch in (("batched", 16), ("batched", 3), ("sequential", 1), ("grouped", 5)):
        path = write_manifest(MINIMAL.format(n=12, mode=mode, batch=batch, seed=9),
                              f"{mode}{batch}.toml")
        plans.append(compile_manifest(path)[0])
    reference = [(s.seed, s.values, s.unit) for s in plans[0].samples]
    for plan in plans[1:]:
        assert [(s.seed, s.values, s.unit) for s in plan.samples] == reference
    assert len({s.seed for s in plans[0].samples}) == 12


def test_manifest_seed_changes_samples_and_seeds(write_manifest):
    a = compile_manifest(write_manifest(MINIMAL.format(n=4, mode="batched", batch=4, seed=0),
                                        "a.toml"))[0]
    b = compile_manifest(write_manifest(MINIMAL.format(n=4, mode="batched", batch=4, seed=1),
                                        "b.toml"))[0]
    assert [s.values for s in a.samples] != [s.values for s in b.samples]
    assert [s.seed for s in a.samples] != [s.seed for s in b.samples]


def test_batched_mode_slices_in_order():
    plan, _ = compile_manifest(SPECS / "ppo_pendulum_64.toml")
    assert [e.samples for e in plan.entries] == [list(range(i, i + 16)) for i in (0, 16, 32, 48)]
    assert [e.path for e in plan.entries] == [
        f"ppo_mlp_fixed_net/gymnax_pendulum/samples/batch_{i:05d}" for i in range(4)]
    assert all(len(e.sub_batches) == 1 and e.sub_batches[0].width == 16 for e in plan.entries)


def test_batched_slice_with_mixed_structures_records_homogeneous_sub_batches(write_manifest):
    text = MINIMAL.format(n=16, mode="batched", batch=8, seed=0) + (
        "[space]\nupdate_epochs = { dist = \"categorical\", values = [2, 4, 8] }\n")
    plan, _ = compile_manifest(write_manifest(text))
    assert len(plan.entries) == 2
    for entry in plan.entries:
        covered = sorted(i for sb in entry.sub_batches for i in sb.samples)
        assert covered == entry.samples
        for sb in entry.sub_batches:
            assert {plan.samples[i].structure for i in sb.samples} == {sb.structure}
            assert len(sb.samples) <= sb.width <= 8


def test_grouped_mode_groups_by_structure_then_slices(write_manifest):
    plan, _ = compile_manifest(SPECS / "ppo_grouped_layers.toml")
    assert len(plan.structures) == 4
    for entry in plan.entries:
        assert len(entry.sub_batches) == 1
        group = plan.groups[entry.group]
        assert set(entry.samples) <= set(group.samples)
    # every batch of a group has one width: one compile per group
    for group in plan.groups:
        widths = {sb.width for e in plan.entries if e.group == group.index for sb in e.sub_batches}
        assert len(widths) == 1


def test_grouped_last_short_batch_is_padded_to_the_group_width(write_manifest):
    text = MINIMAL.format(n=20, mode="grouped", batch=4, seed=0) + (
        "[space]\nupdate_epochs = { dist = \"categorical\", values = [2, 4] }\n")
    plan, _ = compile_manifest(write_manifest(text))
    for group in plan.groups:
        mine = [e for e in plan.entries if e.group == group.index]
        assert sum(len(e.samples) for e in mine) == len(group.samples)
        assert {e.sub_batches[0].width for e in mine} == {min(4, len(group.samples))}


def test_sequential_mode_one_entry_per_sample():
    plan, _ = compile_manifest(SPECS / "ppo_cartpole_sequential.toml")
    assert [e.samples for e in plan.entries] == [[i] for i in range(8)]
    assert plan.entries[3].path.endswith("samples/run_0003")
    assert plan.settings.seeds_per_sample == 2


def test_recipe_may_be_a_path_relative_to_the_manifest(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "wide.toml").write_text(
        'algorithm = "ppo"\n[settings]\ntotal_timesteps = 50000\nnum_evaluations = 5\n'
        'eval_episodes = 4\n[space]\nactor_lr = { dist = "log_uniform", low = 1e-6, '
        'high = 1e-2 }\n')
    manifest = tmp_path / "sweep.toml"
    manifest.write_text('[sweep]\nname = "w"\nrecipe = "recipes/wide.toml"\nrecipe_space = "include"\n'
                        'env = "gymnax.cartpole"\nnum_samples = 4\n')
    plan, _ = compile_manifest(manifest)
    assert plan.settings.recipe == "wide"
    assert plan.sampled == ["actor_lr"]
    assert plan.settings.total_timesteps == 50000
    assert "1e-6" in plan.recipe_text
    assert plan.entries[0].path.startswith("wide/gymnax_cartpole/samples/")


def test_fixed_removes_a_dimension_and_space_adds_one(write_manifest):
    text = MINIMAL.format(n=4, mode="batched", batch=4, seed=0) + (
        "[fixed]\nactor_lr = 0.001\n[space]\nnormalize_observations = "
        "{ dist = \"categorical\", values = [true, false] }\n")
    plan, _ = compile_manifest(write_manifest(text))
    assert "actor_lr" not in plan.sampled and plan.constants["actor_lr"] == 0.001
    assert "normalize_observations" in plan.sampled
    rows = {r.name: r for r in plan.hyperparams}
    assert rows["actor_lr"].source == "fixed"
    assert rows["normalize_observations"].source == "space"


def test_sobol_warns_for_non_power_of_two(write_manifest):
    _, warnings = compile_manifest(write_manifest(MINIMAL.format(n=10, mode="batched",
                                                                 batch=4, seed=0)))
    assert any("power of two" in w for w in warnings)
    _, warnings = compile_manifest(write_manifest(MINIMAL.format(n=8, mode="batched",
                                                                 batch=4, seed=0), "b.toml"))
    assert warnings == []


def test_plan_holds_no_absolute_paths_or_host_names(tmp_path):
    plan, _ = compile_manifest(SPECS / "quickstart.toml")
    text = msgspec.json.encode(plan).decode()
    assert str(ROOT) not in text and str(Path.home()) not in text
    host = os.uname().nodename
    if len(host) > 3:  # a very short host name could occur by chance in sample values
        assert host not in text
    assert plan.manifest_name == "quickstart.toml"


def test_plan_id_is_sha256_of_plan_and_roundtrips():
    plan, _ = compile_manifest(SPECS / "quickstart.toml")
    data = encode_plan(plan)
    decoded, pid = decode_plan(data, "x")
    assert decoded == plan and pid == plan_id(plan) and len(pid) == 64


@pytest.mark.subprocess
def test_compiler_imports_no_jax_stack(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hyperlax.cli.main import main\n"
        f"r = CliRunner().invoke(main, ['plan', {str(SPECS / 'quickstart.toml')!r}, '-o', "
        f"{str(tmp_path / 'p.msgpack')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(main, ['show', {str(tmp_path / 'p.msgpack')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'flax', 'optax', 'gymnax'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "p.msgpack").exists()
