"""Population-based training inside the vmapped batch: `plan` refuses bad settings with the
place and the fix; exploit and explore are a pure function of the plan and the interval's
results, within the space; exec copies the winners' whole training state without compiling
anything new; a stopped, resumed or sharded PBT run gives the same decisions and results, byte
for byte; an edited decision is refused.

The sweep: 6 PPO samples on CartPole, batches of 2 (3 entries per interval), 4 evaluations,
an exploit/explore step after each (4 intervals).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.errors import HyperlaxError
from hyperlax.exec.halving import decide as H
from hyperlax.exec.halving import pbt as P
from hyperlax.exec.local_exec import execute
from hyperlax.manifest.distributions import IntLogUniform, IntUniform, Quantized
from hyperlax.plan.format import encode_plan, plan_id, results_id
from hyperlax.storage.atomic import StorageError
from hyperlax.storage.sweepdir import Owner
from test_checkpoints import Chunks, Crash, crash_at
from test_halving import curves_by_sample
from test_halving_scale import finish_all, start

MANIFEST = """\
[sweep]
name = "pbt"
recipe = "ppo_mlp_fixed_net"
recipe_space = "exclude"
env = "gymnax.cartpole"
num_samples = 6
batch_size = 2
seed = 5
total_timesteps = 256
num_evaluations = 4
eval_episodes = 2
{sweep}
[fixed]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [16]
"network.critic.layer_sizes" = [16]

[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 3e-2 }}
critic_lr = {{ dist = "log_uniform", low = 1e-4, high = 3e-2 }}
clip_value_loss = {{ dist = "categorical", values = [false, true] }}
{space}
[pbt]
{pbt}
"""
PBT = 'interval = 1\nexplore = ["actor_lr", "critic_lr", "clip_value_loss"]\n'


def manifest(tmp: Path, pbt: str = PBT, sweep: str = "", space: str = "",
             name: str = "pbt.toml") -> Path:
    path = tmp / name
    path.write_text(MANIFEST.format(pbt=pbt, sweep=sweep, space=space))
    return path


def make_plan(tmp: Path, **kwargs):
    plan, _ = compile_manifest(manifest(tmp, **kwargs))
    return plan, plan_id(plan), encode_plan(plan)


# --- plan ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, where, says", [
    ({"pbt": 'interval = 4\nexplore = ["actor_lr"]\n'}, "pbt.interval",
     "not shorter than training"),
    ({"pbt": PBT + "quantile_fraction = 0.6\n"}, "pbt.quantile_fraction", "outside (0, 0.5]"),
    ({"pbt": PBT + "quantile_fraction = 0.0\n"}, "pbt.quantile_fraction", "outside (0, 0.5]"),
    ({"pbt": PBT + "perturbation_factors = [1.2, -0.8]\n"}, "pbt.perturbation_factors[1]",
     "not a positive number"),
    ({"pbt": PBT + "resample_probability = 1.5\n"}, "pbt.resample_probability",
     "not a probability"),
    ({"pbt": 'interval = 1\nexplore = ["update_epochs"]\n'}, "pbt.explore[0]", "structural"),
    ({"pbt": 'interval = 1\nexplore = ["gamma"]\n'}, "pbt.explore[0]", "not sampled"),
    ({"pbt": 'interval = 1\nexplore = ["actor_lrr"]\n'}, "pbt.explore[0]", "did you mean"),
    ({"pbt": 'interval = 1\nexplore = []\n'}, "pbt.explore", "names no hyperparameter"),
    ({"pbt": PBT, "sweep": 'rungs = [1, 2, "1"]\n'}, "pbt", "successive halving"),
    ({"pbt": PBT, "space": '"network.activation" = { dist = "categorical", values = ["tanh", '
                           '"relu", "gelu", "silu", "elu", "leaky_relu"] }\n'}, "pbt",
     "a population (the samples of one structure) needs"),
])
def test_bad_settings_are_refused_with_the_place_and_the_fix(tmp_path, change, where, says):
    with pytest.raises(HyperlaxError) as caught:
        compile_manifest(manifest(tmp_path, **change))
    problems = dict(caught.value.problems)
    assert where in problems and says in problems[where], caught.value.problems


def test_plan_refuses_through_the_command_line_with_status_2(tmp_path):
    path = manifest(tmp_path, pbt=PBT + "quantile_fraction = 0.9\n")
    result = CliRunner().invoke(main, ["plan", str(path), "-o", str(tmp_path / "p.msgpack")])
    assert result.exit_code == 2 and "pbt.quantile_fraction" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "p.msgpack").exists()


def test_plan_and_show_say_what_will_happen(tmp_path):
    plan, pid, data = make_plan(tmp_path)
    assert plan.pbt.explore == ["actor_lr", "clip_value_loss", "critic_lr"]
    assert [r.evaluations for r in plan.halving.rungs] == [1, 2, 3, 4]
    assert plan.pbt.quantile(6) == 2 and plan.pbt.quantile(2) == 1 and plan.pbt.quantile(9) == 3
    (tmp_path / "p.msgpack").write_bytes(data)
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "p.msgpack")])
    assert shown.exit_code == 0, shown.output
    assert "population-based training: 1 population (one per structure) of 6 samples; 4 " \
           "intervals of 1 evaluations of 4" in shown.output
    assert "the bottom 2 of 6 by final_return" in shown.output
    assert "no compile more" in shown.output
    again, _ = compile_manifest(manifest(tmp_path, name="again.toml"))
    same = msgspec.structs.replace(again, manifest_name="pbt.toml")
    assert encode_plan(same) == data  # the same manifest, the same plan bytes
    # other PBT knobs are other results: a sweep directory is not shared between them
    other, _ = compile_manifest(manifest(tmp_path, pbt=PBT + "quantile_fraction = 0.5\n",
                                         name="other.toml"))
    assert results_id(other) != results_id(plan)


# --- exploit and explore -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def step_plan(tmp_path_factory):
    return make_plan(tmp_path_factory.mktemp("pbt_steps"))[0]


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(list(range(6))), interval=st.integers(0, 2))
def test_a_step_is_pure_moves_the_bottom_to_the_top_and_stays_in_the_space(
        step_plan, order, interval):
    plan = step_plan
    current = P.initial_values(plan)
    exploit, following = P.step(plan, interval, list(order), current)
    assert (exploit, following) == P.step(plan, interval, list(order), current)
    assert sorted(exploit) == sorted(order[-2:])           # the bottom 2 of 6
    assert set(exploit.values()) <= set(order[:2])          # each copies one of the top 2
    for i in order[:-2]:
        assert following[i] == current[i]                   # the rest go on unchanged
    for loser in exploit:
        for name in ("actor_lr", "critic_lr"):
            assert 1e-4 <= following[loser][name] <= 3e-2
            assert isinstance(following[loser][name], float)
        assert following[loser]["clip_value_loss"] in (False, True)


def test_explore_perturbs_by_a_factor_or_resamples(tmp_path):
    plan, _, _ = make_plan(tmp_path)
    value = 1e-3
    seen = {P.explore(plan, "actor_lr", value,
                      lambda what, k=k: P.draw(0, 0, k, f"actor_lr/{what}")) for k in range(60)}
    factors = {v for v in seen if math.isclose(v, value * 1.2) or math.isclose(v, value * 0.8)}
    assert factors and len(seen - factors) > 0       # both: perturbed, and drawn anew
    # a categorical moves to a neighbour (or is drawn anew): never out of its values
    moved = {P.explore(plan, "clip_value_loss", False,
                       lambda what, k=k: P.draw(0, 0, k, f"c/{what}")) for k in range(40)}
    assert moved == {False, True}


def test_perturbed_values_land_on_the_distributions_points():
    assert P._into(IntUniform(low=2, high=9), 9 * 1.2) == 9
    assert P._into(IntUniform(low=2, high=9), 5 * 0.8) == 4
    assert P._into(Quantized(low=0.1, high=0.5, step=0.1), 0.3 * 1.2) == 0.4
    assert P._into(Quantized(low=16, high=64, step=16), 48 * 0.8) == 32
    assert P._into(IntLogUniform(low=1, high=100), 0.5) == 1


# --- exec ------------------------------------------------------------------------------------

def outcome(root: Path, plan, pid: str):
    views = H.rung_views(plan, root, Owner.of(plan, pid))
    assert all(v.entries is not None for v in views)
    decisions = [(root / H.decision_path(v.rung)).read_bytes() for v in views[:-1]]
    return decisions, [curves_by_sample(root, v.entries) for v in views], views


def assert_same(a, b) -> None:
    assert a[0] == b[0]  # the decisions, byte for byte
    for stage_a, stage_b in zip(a[1], b[1]):
        assert stage_a.keys() == stage_b.keys()
        for i in stage_a:
            for name in stage_a[i]:
                assert np.array_equal(stage_a[i][name], stage_b[i][name], equal_nan=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pbt")
    plan, pid, data = make_plan(tmp)
    calls = Chunks()
    report = execute(plan, pid, data, tmp / "a", progress=calls)
    report.calls = calls.calls
    return tmp, plan, pid, data, report, outcome(tmp / "a", plan, pid)


@pytest.mark.slow
def test_pbt_runs_on_the_plain_sweeps_programs_and_records_its_steps(finished):
    tmp, plan, pid, _, report, (_, curves, views) = finished
    assert report.compiles == len(plan.structures) == 1    # no compile beyond the plain sweep's
    assert report.ran == 4 * 3 and report.calls == 4 * 3   # each interval continues, one call
    assert [len(next(iter(c.values()))["returns"][0]) for c in curves] == [1, 2, 3, 4]
    for view in views[:-1]:
        decision = view.decision
        assert len(decision.exploit) == 2 and sorted(decision.values) == list(range(6))
        # the next interval's entries trained with the decision's values
        for entry in views[view.rung + 1].entries:
            doc = json.loads((tmp / "a").joinpath(*entry.path.split("/"), "samples.json")
                             .read_text())
            for row in doc:
                for name, value in decision.values[row["sample"]].items():
                    assert row["values"][name] == value
    first = json.loads((tmp / "a" / "rungs" / "rung_0.json").read_text())
    assert first["format"] == "hyperlax-pbt-decision-1" and len(first["exploit"]) == 2


@pytest.mark.slow
def test_a_loser_continues_exactly_as_its_winner(tmp_path):
    """With explore switched off (factor 1, no resampling), a member that copied another goes
    on bit for bit as the member it copied: its parameters, optimizer and normalization
    statistics, environment states and keys all came along."""
    pbt = ('interval = 1\nexplore = ["actor_lr"]\nperturbation_factors = [1.0]\n'
           'resample_probability = 0.0\n')
    plan, pid, data = make_plan(tmp_path, pbt=pbt)
    execute(plan, pid, data, tmp_path / "out")
    _, curves, views = outcome(tmp_path / "out", plan, pid)
    checked = 0
    for view in views[:-1]:
        after = curves[view.rung + 1]
        for loser, winner in view.decision.exploit.items():
            if loser in view.decision.exploit.values():
                continue  # also a winner this time: nothing to compare against
            new = slice(view.rung + 1, None)
            for name in ("returns", "finite"):
                assert np.array_equal(after[loser][name][:, new], after[winner][name][:, new]), \
                    (view.rung, loser, winner, name)
            checked += 1
    assert checked >= 4


@pytest.mark.slow
def test_same_plan_same_decisions_and_results(finished):
    tmp, plan, pid, data, _, first = finished
    execute(plan, pid, data, tmp / "b")
    assert_same(outcome(tmp / "b", plan, pid), first)


@pytest.mark.slow
def test_stopped_and_resumed_pbt_gives_the_same_bytes(finished, tmp_path, monkeypatch):
    _, plan, pid, data, _, first = finished
    root = tmp_path / "out"
    crash_at(monkeypatch, "rung-decided:0")             # right after the first decision
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    monkeypatch.undo()
    crash_at(monkeypatch, f"chunk@{2 * H.RUNG_STRIDE}")  # inside interval 2
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    monkeypatch.undo()
    execute(plan, pid, data, root)
    assert_same(outcome(root, plan, pid), first)


@pytest.mark.subprocess
def test_shards_give_the_same_bytes(finished, tmp_path):
    tmp, plan, pid, data, _, first = finished
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    finish_all([start(plan_file, root, "--shard", f"{k}/2") for k in range(2)])
    assert_same(outcome(root, plan, pid), first)


@pytest.mark.slow
def test_an_edited_decision_is_refused(finished, tmp_path):
    tmp, plan, pid, data, _, _ = finished
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(tmp / "a", root)
    path = root / "rungs" / "rung_1.json"
    doc = json.loads(path.read_text())
    loser = doc["exploit"][0]
    top = [r["sample"] for r in doc["ranking"][:2]]
    loser["copies"] = top[1] if loser["copies"] == top[0] else top[0]  # the other winner
    body = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = H._checksum(body)
    path.write_text(json.dumps(doc))
    with pytest.raises(StorageError, match="exploit and explore are not what its ranking"):
        H.rung_views(plan, root, Owner.of(plan, pid))


# --- a replayed schedule ----------------------------------------------------------------------

REPLAY = """\
[sweep]
name = "replay"
recipe = "ppo_mlp_fixed_net"
recipe_space = "exclude"
env = "gymnax.cartpole"
num_samples = 1
seeds_per_sample = 2
total_timesteps = 256
num_evaluations = 4
eval_episodes = 2

[fixed]
num_envs = 4
rollout_length = 16
update_epochs = 1
num_minibatches = 2
"network.actor.layer_sizes" = [16]
"network.critic.layer_sizes" = [16]

[space]

[pbt]
interval = 2
explore = ["actor_lr", "critic_lr"]
schedule = [{schedule}]
"""
ROWS = "{ actor_lr = 1e-3, critic_lr = 2e-3 }, { actor_lr = 5e-4, critic_lr = 1e-3 }"


@pytest.mark.parametrize("rows, where, says", [
    ("{ actor_lr = 1e-3, critic_lr = 2e-3 }", "pbt.schedule", "1 rows for 2 intervals"),
    ("{ actor_lr = 1e-3 }, { actor_lr = 1e-3, critic_lr = 2e-3 }", "pbt.schedule[0]",
     "exactly the explore names"),
    ("{ actor_lr = -1.0, critic_lr = 2e-3 }, " + ROWS.split(", {")[0], "pbt.schedule[0].actor_lr",
     ""),
])
def test_a_bad_schedule_is_refused(tmp_path, rows, where, says):
    path = tmp_path / "replay.toml"
    path.write_text(REPLAY.format(schedule=rows))
    with pytest.raises(HyperlaxError) as caught:
        compile_manifest(path)
    problems = dict(caught.value.problems)
    assert where in problems and says in problems[where], caught.value.problems


@pytest.mark.slow
def test_a_schedule_is_replayed_interval_by_interval(tmp_path):
    path = tmp_path / "replay.toml"
    path.write_text(REPLAY.format(schedule=ROWS))
    plan, _ = compile_manifest(path)  # a population of one is fine: nothing is copied
    pid, data = plan_id(plan), encode_plan(plan)
    execute(plan, pid, data, tmp_path / "out")
    _, _, views = outcome(tmp_path / "out", plan, pid)
    assert views[0].decision.exploit == {}
    rows = [{"actor_lr": 1e-3, "critic_lr": 2e-3}, {"actor_lr": 5e-4, "critic_lr": 1e-3}]
    for view, row in zip(views, rows):
        doc = json.loads((tmp_path / "out").joinpath(*view.entries[0].path.split("/"),
                                                     "samples.json").read_text())
        assert {n: doc[0]["values"][n] for n in row} == row


DEVICES_SCRIPT = """\
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import jax
import numpy as np
import exec_points
from hyperlax.exec.local_exec import execute
from test_pbt import make_plan, outcome, assert_same

assert len(jax.devices()) == 2, jax.devices()
tmp = Path({tmp!r})
plan, pid, data = make_plan(tmp)
devices = jax.devices()
execute(plan, pid, data, tmp / "a", devices=devices)


class Crash(Exception):
    pass


crashed = []


def crash(point, entry):
    if point == "rung-decided:1" and not crashed:  # once: the resumed exec goes through
        crashed.append(point)
        raise Crash(point)


exec_points.install(crash)
try:
    execute(plan, pid, data, tmp / "b", devices=devices)
    raise AssertionError("no crash")
except Crash:
    pass
execute(plan, pid, data, tmp / "b", devices=devices)
assert_same(outcome(tmp / "b", plan, pid), outcome(tmp / "a", plan, pid))
print("DEVICES OK", flush=True)
"""


@pytest.mark.subprocess
def test_over_two_devices_a_stopped_and_resumed_run_gives_the_same_bytes(tmp_path):
    """--devices: the population's lanes split over 2 (forced CPU) devices; killed after the
    second decision and resumed, the decisions and curves are those of an uninterrupted run
    on the same devices."""
    import os
    import subprocess
    import sys
    script = tmp_path / "devices.py"
    script.write_text(DEVICES_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path)))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "DEVICES OK" in done.stdout, done.stdout + done.stderr
