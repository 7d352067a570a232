"""Successive halving at run time: rung by rung, decisions, survivors continued from their
carries in new batches; the same plan gives the same survivors and results; resuming between
rungs and mid-rung changes nothing; a survivor's curve is the one it has in the same sweep
without halving; status and report show the rungs.

The sweep: 8 PPO samples on CartPole, 4 evaluations, rungs at 1, 2 and 4 evaluations, eta 2
(8 -> 4 -> 2 samples), grouped in batches of 2, so every call has width 2: one program.
"""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.exec.halving import decide as H
from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan, plan_id
from hyperlax.report.write import write_report
from hyperlax.exec.local_exec import execute
from hyperlax.exec.status import sweep_status
from hyperlax.storage.sweepdir import Owner, SweepDir
from test_checkpoints import Chunks, Crash, crash_at
from test_crash import Exec, resume

MANIFEST = """\
[sweep]
name = "halving"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 8
mode = "grouped"
batch_size = 2
seed = 11
total_timesteps = 256
num_evaluations = 4
eval_episodes = 2
{rungs}
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
"""
RUNGS = 'rungs = [1, 2, "1"]\neta = 2\n'


def make_plan(tmp: Path, rungs: str = RUNGS, name: str = "sweep.toml"):
    path = tmp / name
    path.write_text(MANIFEST.format(rungs=rungs))
    plan, _ = compile_manifest(path)
    return plan, plan_id(plan), encode_plan(plan)


def curves_by_sample(root: Path, entries) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for entry in entries:
        with np.load(root.joinpath(*entry.path.split("/")) / "curves.npz") as npz:
            for pos, i in enumerate(npz["sample"]):
                out[int(i)] = {k: npz[k][pos] for k in npz.files
                               if k not in ("sample", "eval_steps")}
    return out


def outcome(root: Path, plan, pid: str):
    """(the decisions, every rung's curves by sample) of a finished halving sweep."""
    views = H.rung_views(plan, root, Owner.of(plan, pid))
    assert all(v.entries is not None for v in views)
    decisions = [(v.decision.ranking, v.decision.survivors) for v in views[:-1]]
    curves = [curves_by_sample(root, v.entries) for v in views]
    return decisions, curves


def assert_same_outcome(a, b) -> None:
    assert a[0] == b[0]
    for rung_a, rung_b in zip(a[1], b[1]):
        assert rung_a.keys() == rung_b.keys()
        for i in rung_a:
            for name in rung_a[i]:
                assert np.array_equal(rung_a[i][name], rung_b[i][name], equal_nan=True), \
                    (i, name)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("halving")
    plan, pid, data = make_plan(tmp)
    calls = Chunks()
    report = execute(plan, pid, data, tmp / "a", progress=calls)
    report.calls = calls.calls
    return tmp, plan, pid, data, report, outcome(tmp / "a", plan, pid)


def test_rungs_run_and_decide(finished):
    tmp, plan, pid, _, report, (decisions, curves) = finished
    assert [len(c) for c in curves] == [8, 4, 2]
    assert [len(next(iter(c.values()))["returns"][0]) for c in curves] == [1, 2, 4]
    for (ranking, survivors), later in zip(decisions, curves[1:]):
        assert sorted(later) == survivors
        # the survivors are the best by the final return so far; ties and NaN by the rules
        assert [i for i, _ in ranking] == H.ranking(dict(ranking))
        assert survivors == sorted(i for i, _ in ranking[:len(survivors)])
    # a rung's decision is on disk, checksummed, naming the results it belongs to
    doc = json.loads((tmp / "a" / "rungs" / "rung_0.json").read_text())
    assert doc["results_id"] == Owner.of(plan, pid).results_id and len(doc["ranking"]) == 8
    assert report.ran == 4 + 2 + 1
    # survivors go on from their carries: 4 entries x 1 call, 2 x 1 (evaluation 2), 1 x 2
    # (evaluations 3 and 4); starting over would take 4 + 2 x 2 + 4
    assert report.calls == 4 + 2 + 2
    root = tmp / "a"
    for view in H.rung_views(plan, root, Owner.of(plan, pid)):
        for entry in view.entries:
            marker = SweepDir(root).read_marker(entry.path)
            assert ("carry_0.msgpack" in marker["files"]) == (view.rung < 2)


@pytest.mark.slow
def test_same_plan_same_survivors_and_results(finished):
    tmp, plan, pid, data, _, first = finished
    execute(plan, pid, data, tmp / "b")
    assert_same_outcome(outcome(tmp / "b", plan, pid), first)
    assert (tmp / "a/rungs/rung_1.json").read_bytes() == (tmp / "b/rungs/rung_1.json").read_bytes()


@pytest.mark.slow
def test_survivors_train_as_in_the_sweep_without_halving(finished):
    """Continued from their carries in new batches with other batch mates, the survivors'
    curves are exactly those of the same sweep without rungs, to their rung's budget."""
    tmp, plan, pid, _, _, (_, curves) = finished
    full, full_pid, full_data = make_plan(tmp, rungs="", name="full.toml")
    execute(full, full_pid, full_data, tmp / "full")
    reference = curves_by_sample(tmp / "full", full.entries)
    for rung, evaluations in zip(curves, (1, 2, 4)):
        for i, got in rung.items():
            for name, value in got.items():
                assert np.array_equal(value, reference[i][name][..., :evaluations],
                                      equal_nan=True), (i, name, evaluations)


@pytest.mark.slow
def test_resume_between_rungs_and_mid_rung(finished, tmp_path, monkeypatch):
    _, plan, pid, data, _, first = finished
    root = tmp_path / "out"
    crash_at(monkeypatch, "rung-decided:0")          # between rung 0 and rung 1
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    monkeypatch.undo()
    assert (root / "rungs" / "rung_0.json").is_file()
    crash_at(monkeypatch, f"chunk@{H.RUNG_STRIDE}")  # in rung 1's first entry
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    monkeypatch.undo()
    execute(plan, pid, data, root)
    assert_same_outcome(outcome(root, plan, pid), first)


def test_checkpointed_halving_resumes_mid_rung(finished, tmp_path, monkeypatch):
    """The same sweep with checkpoints (same results id), killed after a checkpoint in the
    last rung, then resumed: the same outcome."""
    tmp, _, _, _, _, first = finished
    plan, pid, data = make_plan(tmp_path, rungs=RUNGS + "checkpoint_every = 1\n")
    root = tmp_path / "out"
    last = 2 * H.RUNG_STRIDE
    crash_at(monkeypatch, f"checkpoint:3@{last}")
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    monkeypatch.undo()
    assert (root / "checkpoints" / "rungs" / "rung_2" / "batch_00000").is_dir()
    execute(plan, pid, data, root)
    assert_same_outcome(outcome(root, plan, pid), first)
    assert not (root / "checkpoints").exists()


@pytest.mark.stops
@pytest.mark.subprocess
def test_sigterm_between_rungs_then_resume(finished, tmp_path):
    _, plan, pid, data, _, first = finished
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    run = Exec(plan_file, root, "rung-decided:0")
    try:
        run.wait_paused("rung-decided:0")
        code, err = run.send(signal.SIGTERM)
    finally:
        run.kill()
    assert code == 143, err
    assert "resume with: hyperlax exec" in err
    resume(plan_file, root)
    assert_same_outcome(outcome(root, plan, pid), first)


def test_status_and_report_show_the_rungs(finished, tmp_path):
    tmp, plan, pid, data, _, (decisions, _) = finished
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    status = sweep_status(plan_file, tmp / "a", verify=True)
    text = "\n".join(status.lines)
    assert "rung 0: 8 samples to 1 of 4 evaluations, 4/4 entries done; decided: 4 go on" in text
    assert "rung 2: 2 samples to 4 of 4 evaluations, 1/1 entries done" in text
    assert "7/7 done" in text and "rungs decided: 2 of 2" in text
    report = write_report(plan_file, tmp / "a", tmp_path / "report", 3, "final", plots=False)
    rows = list(csv.DictReader((tmp_path / "report" / "rungs.csv").open()))
    survivors_1, survivors_2 = decisions[0][1], decisions[1][1]
    reached = {int(r["sample"]): int(r["reached"]) for r in rows}
    assert reached == {i: 2 if i in survivors_2 else 1 if i in survivors_1 else 0
                       for i in range(8)}
    results = list(csv.DictReader((tmp_path / "report" / "results.csv").open()))
    assert {int(r["sample"]): int(r["rung"]) for r in results} == reached
    # the best ranked come from the last rung
    assert {int(r["sample"]) for r in results if r["rank"] in ("1", "2")} == set(survivors_2)
    text = report.text("final", 3)
    assert "successive halving by final_return (eta = 2), 3 rungs" in text
    assert report.document["rungs"]["summary"][0]["survivors"] == survivors_1


def test_a_damaged_decision_is_refused_not_replaced(finished, tmp_path):
    tmp, plan, pid, data, _, _ = finished
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tmp / "a", root)
    path = root / "rungs" / "rung_0.json"
    doc = json.loads(path.read_text())
    doc["survivors"] = doc["survivors"][::-1][:3] + [doc["ranking"][-1]["sample"]]
    path.write_text(json.dumps(doc))
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root", str(root)])
    assert result.exit_code == 1, result.output
    assert "damaged rung decision" in result.output and "Traceback" not in result.output
