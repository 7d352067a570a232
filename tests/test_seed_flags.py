"""The seed front end's flags, without training: run-length presets and their budgets,
default replicates, every sweep-hp-samples flag on generate-hp-samples, --load-hyperparams (and
the round trip of generate-hp-samples' CSV), the sensitivity design, --structures, the cost
printed before a sweep runs, and flag errors named by flag (exit 2, no traceback)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.cli.seed.cli import generate_command, sweep_command
from hyperlax.cli.seed.sweep import cost_lines
from hyperlax.hyperparams import PPOConfig, SACConfig


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def emit(tmp_path: Path, *flags: object, name: str = "m.toml") -> tuple[dict, object]:
    """(the [sweep] table and the whole manifest, the plan) of sweep-hp-samples FLAGS."""
    path = tmp_path / name
    result = invoke("sweep-hp-samples", *flags, "--emit-manifest", path, "--force")
    assert result.exit_code == 0, result.output
    manifest = tomllib.loads(path.read_text())
    return manifest, compile_manifest(path)[0]


@pytest.mark.parametrize("modifier, budget, seeds", [
    ("default", (1_000_000, 5, 16), 8),            # the recipe's: the original's 1e6 / 5 / 16
    ("quick", (40, 4, 4), 2),
    ("long", (5_000_000, 40, 32), 4),
    ("700000", (700_000, 5, 16), 8),
    ("2_000_000", (2_000_000, 5, 16), 8),
])
def test_run_length_presets_set_the_budget_and_the_replicates(tmp_path, modifier, budget, seeds):
    # ppo_mlp_no_network_search's largest update (8192 envs x 16 steps) does not fit 40
    # evaluations into long's 5e6 steps (refused, see the next test): long runs ppo_mlp
    recipe = "ppo_mlp" if modifier == "long" else "ppo_mlp_no_network_search"
    flags = ["--algo-and-network-config", recipe, "--run-length-modifier", modifier]
    manifest, plan = emit(tmp_path, *flags)
    s = plan.settings
    assert (s.total_timesteps, s.num_evaluations, s.eval_episodes) == budget
    assert s.seeds_per_sample == seeds
    if modifier == "default":  # no override: the recipe's [settings] hold
        assert "total_timesteps" not in manifest["sweep"]
    if modifier == "quick":    # the original's quick structure, pinned
        assert manifest["fixed"] == PPOConfig.quick_pins
        assert len(plan.structures) == 2   # normalize_observations is still sampled
    else:
        assert "fixed" not in manifest


def test_a_budget_without_an_update_per_evaluation_is_refused_not_run_untrained(tmp_path):
    # The original divided 5e6 steps into 40 evaluations of 0 updates for such samples.
    result = invoke("sweep-hp-samples", "--algo-and-network-config",
                    "ppo_mlp_no_network_search", "--run-length-modifier", "long",
                    "--emit-manifest", tmp_path / "m.toml")
    assert result.exit_code == 2 and not (tmp_path / "m.toml").exists()
    assert ("sweep-hp-samples: sample 0: total_timesteps = 5000000 is less than "
            "num_evaluations x num_envs x rollout_length = 5242880") in result.output


def test_quick_shrinks_the_off_policy_structure_too(tmp_path):
    manifest, plan = emit(tmp_path, "--algo-and-network-config", "sac_mlp",
                          "--run-length-modifier", "quick")
    assert manifest["fixed"] == SACConfig.quick_pins
    assert plan.constants["warmup_steps"] == 8 and plan.constants["buffer_size"] == 100


def test_replicates_flag_overrides_the_preset(tmp_path):
    _, plan = emit(tmp_path, "--run-length-modifier", "long", "--num-seeds", 3)
    assert plan.settings.seeds_per_sample == 3
    _, plan = emit(tmp_path, "--num-agents-slash-seeds", 1)
    assert plan.settings.seeds_per_sample == 1


@pytest.mark.parametrize("value, message", [
    ("fast", "'fast' is neither a preset (quick, default, long) nor a whole number"),
    ("1e6", "hint: write the integer out, e.g. 1000000"),
    ("-5", "'-5' is neither a preset"),
    ("1.5", "'1.5' is neither a preset"),
    ("0", "--run-length-modifier: must be >= 1 env steps, got 0"),
    ("runtime_benchmark", "hint: the original's runtime benchmark presets"),
    ("3", "--run-length-modifier: 5 evaluations cannot fit in total_timesteps = 3"),
    ("99999999999", "--run-length-modifier: must be <= 2147483647"),
])
def test_a_bad_run_length_is_a_named_error(tmp_path, value, message):
    for command in ("sweep-hp-samples", "generate-hp-samples", "run-single-hp"):
        result = invoke(command, "--run-length-modifier", value, "--output-root",
                        tmp_path / "x", "--output-file", tmp_path / "x.csv") \
            if command == "generate-hp-samples" else \
            invoke(command, "--run-length-modifier", value, "--output-root", tmp_path / "x")
        assert result.exit_code == 2, (command, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.csv").exists()


def test_generate_accepts_every_sweep_flag_and_says_which_do_not_matter(tmp_path, monkeypatch):
    sweep_flags = {p.name for p in sweep_command.params}
    assert sweep_flags <= {p.name for p in generate_command.params}
    monkeypatch.chdir(tmp_path)
    base = ["generate-hp-samples", "--algo-and-network-config", "ppo_mlp_fixed_net",
            "--num-samples", 8, "--output-file", "-"]
    plain = invoke(*base)
    assert plain.exit_code == 0, plain.output
    result = invoke(*base, "--hparam-batch-size", 3, "--min-hparam-batch-size", 2,
                    "--sequential", "True", "--group-by-structural-hparams", "True",
                    "--num-agents-slash-seeds", 5, "--output-root", "elsewhere",
                    "--resume", "False", "--resume-from", "nowhere", "--save-logs", "False",
                    "--compile-workers", 0, "--compile-cache", tmp_path / "cache",
                    "--emit-manifest", "never.toml", "--force")
    assert result.exit_code == 0, result.output
    assert ("note: --hparam-batch-size, --min-hparam-batch-size, --sequential, "
            "--group-by-structural-hparams, --num-seeds") in result.output
    assert result.output.endswith(plain.output)    # the same table
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_generate_picks_an_env_the_recipe_can_act_in(tmp_path):
    result = invoke("generate-hp-samples", "--algo-and-network-config", "dqn_mlp_small",
                    "--num-samples", 4, "--output-file", tmp_path / "d.csv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.csv").read_text().startswith("sample,seed,structure,epsilon_")


@pytest.mark.parametrize("recipe", ["ppo_mlp", "dqn_mlp", "sac_mlp"])
def test_generated_csv_loads_back_verbatim(tmp_path, monkeypatch, recipe):
    monkeypatch.chdir(tmp_path)
    env = "gymnax.cartpole" if recipe == "dqn_mlp" else "gymnax.pendulum"
    flags = ["--algo-and-network-config", recipe, "--env-config", env, "--num-samples", 16,
             "--seed", 5]
    assert invoke("generate-hp-samples", *flags, "--output-file", "picked.csv").exit_code == 0
    _, sampled = emit(tmp_path, *flags, name="sampled.toml")
    manifest, loaded = emit(tmp_path, "--algo-and-network-config", recipe, "--env-config", env,
                            "--seed", 5, "--load-hyperparams", "picked.csv",
                            name="sub/loaded.toml")
    assert manifest["sweep"]["samples_file"] == "../picked.csv"
    assert loaded.settings.sampling == "listed" and loaded.samples_file_sha256
    assert [s.values for s in loaded.samples] == [s.values for s in sampled.samples]
    assert [s.seed for s in loaded.samples] == [s.seed for s in sampled.samples]
    assert loaded.structures == sampled.structures


def test_load_hyperparams_reads_json_and_names_bad_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("picked.json").write_text(json.dumps([{"actor_lr": 1e-3}, {"actor_lr": 2e-4}]))
    _, plan = emit(tmp_path, "--algo-and-network-config", "ppo_mlp_fixed_net",
                   "--load-hyperparams", "picked.json")
    assert [s.values for s in plan.samples] == [{"actor_lr": 1e-3}, {"actor_lr": 2e-4}]
    Path("bad.csv").write_text("actor_lr\n0.001\n-1\n")
    result = invoke("sweep-hp-samples", "--load-hyperparams", "bad.csv", "--emit-manifest",
                    "x.toml")
    assert result.exit_code == 2
    assert "sweep-hp-samples: --load-hyperparams bad.csv row 2.actor_lr: must be > 0, got -1" \
        in result.output
    result = invoke("sweep-hp-samples", "--load-hyperparams", "picked.json", "--num-samples", 5,
                    "--emit-manifest", "x.toml")
    assert result.exit_code == 2 and "--num-samples: is 5, but must be 2" in result.output
    result = invoke("sweep-hp-samples", "--load-hyperparams", "nothere.csv", "--emit-manifest",
                    "x.toml")
    assert result.exit_code == 2 and "--load-hyperparams: cannot read" in result.output
    assert not Path("x.toml").exists()


def test_quick_with_a_loaded_file_pins_only_what_the_file_does_not_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("p.csv").write_text("num_envs,actor_lr\n8,0.001\n")
    manifest, plan = emit(tmp_path, "--algo-and-network-config", "ppo_mlp_fixed_net",
                          "--load-hyperparams", "p.csv", "--run-length-modifier", "quick")
    assert "num_envs" not in manifest["fixed"] and manifest["fixed"]["rollout_length"] == 1
    assert plan.samples[0].values["num_envs"] == 8


def test_experiment_type_maps_to_saltelli_and_omit_ab_is_refused(tmp_path):
    manifest, plan = emit(tmp_path, "--algo-and-network-config", "ppo_mlp_fixed_net",
                          "--experiment-type", "sobol_matrices_A_B_AB", "--num-samples", 4)
    assert manifest["sweep"]["sampling"] == "saltelli"
    assert len(plan.samples) == 4 * (len(plan.sampled) + 2)
    result = invoke("sweep-hp-samples", "--experiment-type", "sobol_matrices_A_B_AB",
                    "--omit-ab", "True", "--emit-manifest", tmp_path / "o.toml")
    assert result.exit_code == 2 and "--omit-ab: A and B without the AB_i" in result.output
    assert not (tmp_path / "o.toml").exists()


def test_min_hparam_batch_size_is_accepted_and_bounded(tmp_path):
    _, with_min = emit(tmp_path, "--hparam-batch-size", 4, "--min-hparam-batch-size", 2)
    _, without = emit(tmp_path, "--hparam-batch-size", 4, name="b.toml")
    assert [e.samples for e in with_min.entries] == [e.samples for e in without.entries]
    result = invoke("sweep-hp-samples", "--hparam-batch-size", 4, "--min-hparam-batch-size", 5,
                    "--emit-manifest", tmp_path / "c.toml")
    assert result.exit_code == 2
    assert "--min-hparam-batch-size: 5 exceeds --hparam-batch-size 4" in result.output


def test_the_originals_command_costs_64_compiles_and_structures_cuts_them(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing measured here
    flags = ["--algo-and-network-config", "ppo_mlp", "--env-config", "gymnax.pendulum",
             "--num-samples", 64, "--hparam-batch-size", 16]
    _, plan = emit(tmp_path, *flags)
    lines = cost_lines(plan)
    assert lines[0].startswith("cost: 64 configurations x 8 seeds, ")
    assert lines[0].endswith("; 64 structures, 64 programs to compile")
    assert lines[1].startswith("time: unknown here")
    assert "--structures 4 samples 4 structures and fills each (4 compiles)" in lines[2]
    manifest, plan = emit(tmp_path, *flags, "--structures", 4, name="k.toml")
    assert manifest["sweep"]["structures"] == 4 and len(plan.structures) <= 4
    assert len(cost_lines(plan)) == 2   # no hint any more


def test_underscore_spellings_are_read(tmp_path):
    _, plan = emit(tmp_path, "--num_samples", 4, "--hparam_batch_size", 2)
    assert plan.settings.num_samples == 4 and plan.settings.batch_size == 2


def test_output_dir_warns_and_save_logs_is_accepted(tmp_path):
    result = invoke("sweep-hp-samples", "--output-dir", tmp_path / "o", "--save-logs", "False",
                    "--emit-manifest", tmp_path / "m.toml")
    assert result.exit_code == 0, result.output
    assert "warning: --output-dir has no effect" in result.output
    assert not (tmp_path / "o").exists()
