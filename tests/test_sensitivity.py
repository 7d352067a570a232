"""Sensitivity analysis: sampling = "saltelli" lays out Saltelli's A, B and AB_i blocks, and the
report computes first-order and total Sobol indices with bootstrap intervals through
scipy.stats.sobol_indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler.sample import saltelli_points
from hyperlax.plan.read import read_plan
from hyperlax.report.results import Collected, SampleResult
from hyperlax.report.sensitivity import render_sensitivity, sensitivity_lines, sobol_analysis

MANIFEST = """\
[sweep]
name = "sens"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.pendulum"
sampling = "saltelli"
num_samples = {n}

[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-2 }}
gamma = {{ dist = "uniform", low = 0.9, high = 0.99 }}
ent_coef = {{ dist = "uniform", low = 0.0, high = 0.01 }}
"""


def saltelli_plan(tmp_path: Path, n: int):
    manifest = tmp_path / "s.toml"
    manifest.write_text(MANIFEST.format(n=n) + "\n[fixed]\nnum_envs = 4\nrollout_length = 16\n"
                        "update_epochs = 1\nnum_minibatches = 2\nclip_eps = 0.2\n"
                        "critic_lr = 0.001\ngae_lambda = 0.9\nmax_grad_norm = 0.5\n"
                        "vf_coef = 0.5\n")
    result = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(tmp_path / "p.msgpack")])
    assert result.exit_code == 0, result.output
    return read_plan(tmp_path / "p.msgpack")


def test_design_blocks():
    points = saltelli_points(8, 3, seed=0)
    a, b, ab = points[:8], points[8:16], points[16:].reshape(3, 8, 3)
    assert points.shape == (8 * 5, 3)
    for i in range(3):
        np.testing.assert_array_equal(ab[i][:, i], b[:, i])
        others = [j for j in range(3) if j != i]
        np.testing.assert_array_equal(ab[i][:, others], a[:, others])


def test_plan_lays_out_n_times_d_plus_2_samples(tmp_path):
    plan, _ = saltelli_plan(tmp_path, 16)
    assert plan.sampled == ["actor_lr", "ent_coef", "gamma"]
    assert len(plan.samples) == plan.settings.num_samples == 16 * 5
    assert len(plan.structures) == 1  # only scalars vary: one compiled program
    bad = tmp_path / "bad.toml"
    bad.write_text(MANIFEST.format(n=12))
    result = CliRunner().invoke(main, ["plan", str(bad), "-o", str(tmp_path / "x.msgpack")])
    assert result.exit_code == 2 and "needs a power of two base sample count" in result.output


def fake_results(plan, score) -> Collected:
    samples = [SampleResult(index=s.index, entry="e", status="ok",
                            summary={"final_return": score(np.asarray(s.unit))})
               for s in plan.samples]
    return Collected(plan=plan, plan_id="x", root=Path("."), entries=[], samples=samples)


def test_indices_find_the_hyperparameter_that_matters(tmp_path):
    plan, _ = saltelli_plan(tmp_path, 256)
    # the return depends on actor_lr's coordinate strongly, on gamma's weakly, on ent_coef not
    analysis = sobol_analysis(fake_results(plan, lambda u: 10 * u[0] + 1 * u[2]), "final")
    idx = analysis["indices"]
    assert list(idx) == ["actor_lr", "gamma", "ent_coef"]  # most influential first
    assert idx["actor_lr"]["first_order"] == pytest.approx(100 / 101, abs=0.05)
    assert idx["gamma"]["total_order"] == pytest.approx(1 / 101, abs=0.02)
    assert abs(idx["ent_coef"]["total_order"]) < 0.01
    lo, hi = idx["actor_lr"]["first_order_ci"]
    assert lo <= idx["actor_lr"]["first_order"] <= hi
    # the same results give the same report (the bootstrap is seeded by the manifest seed)
    again = sobol_analysis(fake_results(plan, lambda u: 10 * u[0] + 1 * u[2]), "final")
    assert again == analysis
    assert "actor_lr" in sensitivity_lines(analysis)[2]
    assert render_sensitivity(analysis, "t")[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_evaluations_give_no_indices(tmp_path):
    plan, _ = saltelli_plan(tmp_path, 16)
    collected = fake_results(plan, lambda u: u[0])
    collected.samples[3] = SampleResult(index=3, entry="e", status="missing")
    analysis = sobol_analysis(collected, "final")
    assert "1 of 80 evaluations are missing or diverged" in analysis["unavailable"]
    assert sobol_analysis(fake_results(read_plan(Path(__file__).parent / "golden" /
                                                 "quickstart.plan.msgpack")[0], lambda u: 0.0),
                          "final") is None
