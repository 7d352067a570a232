"""Mid-training checkpoints (``checkpoint_every``): an entry killed after evaluation k resumes
from its checkpoint and ends bit-identical to an uninterrupted run, for PPO and for DQN (whose
replay buffer is part of the carry); a corrupt or foreign checkpoint is ignored with a warning
and the entry starts from scratch; checkpoints go once the entry is complete; checkpoints do
not change results.

In-process runs are "killed" at an exec point (``exec_points``) by raising there, so the exec
unwinds as a crash would end it (claims are released; a real kill leaves a dead holder, taken
over at once on this machine). One test kills a real exec process with SIGKILL.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from hyperlax.exec.checkpoints import files as checkpoint_files

from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan, plan_id
from hyperlax.exec.local_exec import execute
from hyperlax.storage.sweepdir import MARKER, Owner, SweepDir
import exec_points
from test_crash import Exec, resume, untimed

pytestmark = pytest.mark.slow

COMMON = """\
[sweep]
name = "ckpt-{algo}"
recipe = "{recipe}"
recipe_space = "include"
env = "gymnax.cartpole"
num_samples = 2
batch_size = 2
seed = 3
num_evaluations = 4
eval_episodes = 2
{sweep}
[fixed]
num_envs = 4
{fixed}
[space]
{space}
"""
PPO = dict(algo="ppo", recipe="ppo_mlp_fixed_net", sweep="total_timesteps = 256",
           fixed='rollout_length = 16\nupdate_epochs = 1\nnum_minibatches = 2\n'
                 '"network.actor.layer_sizes" = [16]\n"network.critic.layer_sizes" = [16]',
           space='actor_lr = { dist = "log_uniform", low = 1e-4, high = 1e-2 }')
DQN = dict(algo="dqn", recipe="dqn_mlp_small", sweep="total_timesteps = 256",
           fixed='rollout_length = 4\ntrain_epochs = 1\nbuffer_size = 64\n'
                 'replay_batch_size = 8\nwarmup_steps = 16\ntarget_update_period = 2\n'
                 '"network.q.layer_sizes" = [16]',
           space='learning_rate = { dist = "log_uniform", low = 1e-4, high = 1e-2 }')


class Crash(Exception):
    """Where a kill would have ended the exec."""


class Chunks:
    """A progress listener that counts training calls."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self, **_: object) -> None: ...
    def compiled(self, *_: object) -> None: ...
    def entry_started(self, *_: object) -> None: ...
    def entry_done(self, *_: object) -> None: ...
    def finish(self) -> None: ...

    def chunk(self, *_: object) -> None:
        self.calls += 1


def make_plan(tmp: Path, spec: dict, every: int = 1, name: str = "sweep.toml"):
    text = COMMON.format(**{**spec, "sweep": f"{spec['sweep']}\ncheckpoint_every = {every}"})
    manifest = tmp / name
    manifest.write_text(text)
    plan, _ = compile_manifest(manifest)
    return plan, plan_id(plan), encode_plan(plan)


def crash_at(monkeypatch, point: str, occurrence: int = 1):
    """End the exec at exec point ``point`` (the ``occurrence``-th time there)."""
    seen = []

    def on_point(reached: str, entry: int) -> None:
        if exec_points.wanted(point, reached, entry):
            seen.append(reached)
            if len(seen) == occurrence:
                raise Crash(point)

    exec_points.install(on_point, monkeypatch.setattr)


def no_crash(monkeypatch):
    monkeypatch.undo()


def entry_dir(root: Path, plan) -> Path:
    return root.joinpath(*plan.entries[0].path.split("/"))


def assert_same(root: Path, reference: Path, plan, pid: str) -> None:
    a, b = entry_dir(root, plan), entry_dir(reference, plan)
    with np.load(a / "curves.npz") as x, np.load(b / "curves.npz") as y:
        assert sorted(x.files) == sorted(y.files)
        for name in x.files:
            assert np.array_equal(x[name], y[name], equal_nan=True), name
    assert (a / "curves.csv").read_bytes() == (b / "curves.csv").read_bytes()
    assert untimed(a / "summary.json") == untimed(b / "summary.json")
    assert SweepDir(root).verify(plan.entries[0].path, Owner.of(plan, pid), 0) == []


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """``references(spec)``: the plan (checkpoints every evaluation) and an uninterrupted run
    of it, made once per algorithm."""
    made = {}

    def get(spec: dict):
        if spec["algo"] not in made:
            tmp = tmp_path_factory.mktemp(spec["algo"])
            plan, pid, data = make_plan(tmp, spec)
            execute(plan, pid, data, tmp / "reference")
            made[spec["algo"]] = plan, pid, data, tmp / "reference"
        return made[spec["algo"]]

    return get


@pytest.mark.parametrize("spec", [PPO, DQN], ids=["ppo", "dqn"])
def test_uninterrupted_run_leaves_no_checkpoint(references, spec, tmp_path):
    plan, pid, data, root = references(spec)
    assert (entry_dir(root, plan) / MARKER).is_file()
    assert not (root / "checkpoints").exists()
    # what a kill between the marker and the removal would leave: the next exec removes it
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    stale = checkpoint_files.checkpoint_dir(copy, plan.entries[0].path)
    stale.mkdir(parents=True)
    (stale / checkpoint_files.record_name(0)).write_text("{}")
    report = execute(plan, pid, data, copy)
    assert report.ran == 0 and not (copy / "checkpoints").exists()


@pytest.mark.parametrize("spec", [PPO, DQN], ids=["ppo", "dqn"])
def test_killed_entry_resumes_from_its_checkpoint_bit_identical(references, spec, tmp_path,
                                                                monkeypatch, capsys):
    """Parameters, optimizer and environment states, keys, and DQN's replay buffer are all in
    the carry: any of them restored wrongly would change the curves after evaluation 2."""
    plan, pid, data, ref = references(spec)
    root = tmp_path / "out"
    crash_at(monkeypatch, "checkpoint:2@0")  # after evaluation 2 of 4 was saved
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    no_crash(monkeypatch)
    assert SweepDir(root).state(plan.entries[0].path) != "done"
    assert checkpoint_files.progress(root, plan.entries[0]) == [2]
    calls = Chunks()
    execute(plan, pid, data, root, progress=calls)
    assert calls.calls == 2  # evaluations 3 and 4 only: it went on from the checkpoint
    assert "warning" not in capsys.readouterr().err
    assert_same(root, ref, plan, pid)
    assert not (root / "checkpoints").exists()


@pytest.mark.parametrize("spec, damage", [(PPO, "corrupt"), (DQN, "corrupt"), (PPO, "foreign"),
                                          (PPO, "truncated record")],
                         ids=["ppo-corrupt", "dqn-corrupt", "foreign", "truncated-record"])
def test_bad_checkpoint_is_ignored_with_a_warning(references, spec, damage, tmp_path,
                                                  monkeypatch, capsys):
    plan, pid, data, ref = references(spec)
    root = tmp_path / "out"
    crash_at(monkeypatch, "checkpoint:3@0")
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    no_crash(monkeypatch)
    directory = checkpoint_files.checkpoint_dir(root, plan.entries[0].path)
    record_path = directory / checkpoint_files.record_name(0)
    record = json.loads(record_path.read_text())
    if damage == "corrupt":
        blob = directory / record["file"]
        raw = bytearray(blob.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        blob.write_bytes(bytes(raw))
        expected = "the checkpoint is corrupt"
    elif damage == "foreign":
        record["results_id"] = "0" * 64
        record_path.write_text(json.dumps(record))
        expected = "a checkpoint of another plan's results"
    else:
        record_path.write_text(record_path.read_text()[:20])
        expected = "unreadable checkpoint record"
    capsys.readouterr()
    calls = Chunks()
    execute(plan, pid, data, root, progress=calls)
    err = capsys.readouterr().err
    assert expected in err and "the sub-batch starts over without it" in err
    assert calls.calls == 4  # from scratch
    assert_same(root, ref, plan, pid)


def test_checkpoints_do_not_change_results(references, tmp_path):
    plan, pid, _, ref = references(PPO)
    other, other_pid, other_data = make_plan(tmp_path, PPO, every=0, name="none.toml")
    execute(other, other_pid, other_data, tmp_path / "out")
    assert_same(tmp_path / "out", ref, plan, pid)


@pytest.mark.stops
@pytest.mark.subprocess
def test_sigkill_after_a_checkpoint_then_resume(references, tmp_path):
    plan, pid, data, ref = references(PPO)
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(data)
    root = tmp_path / "out"
    run = Exec(plan_file, root, "checkpoint:1@0")
    try:
        run.wait_paused("checkpoint:1@0")
        code, _ = run.send(signal.SIGKILL)
        assert code == -signal.SIGKILL
    finally:
        run.kill()
    assert checkpoint_files.progress(root, plan.entries[0]) == [1]
    resume(plan_file, root)
    assert_same(root, ref, plan, pid)


def test_entry_of_two_sub_batches_resumes_each_where_it_was(tmp_path, monkeypatch):
    """Two structures in one batched entry: two sub-batches, run one after the other. Killed
    in the second, the first comes back whole from its end-of-sub-batch checkpoint (no call
    at all), the second from evaluation 2."""
    spec = {**PPO, "fixed": PPO["fixed"].replace('"network.actor.layer_sizes" = [16]\n', ""),
            "space": PPO["space"] + '\n"network.actor.layer_sizes" = '
                                    '{ dist = "categorical", values = [[16], [8]] }'}
    plan, pid, data = make_plan(tmp_path, spec)
    assert [len(sb.samples) for sb in plan.entries[0].sub_batches] == [1, 1]
    execute(plan, pid, data, tmp_path / "reference")
    root = tmp_path / "out"
    crash_at(monkeypatch, "checkpoint:2@0", occurrence=2)  # the second sub-batch's
    with pytest.raises(Crash):
        execute(plan, pid, data, root)
    no_crash(monkeypatch)
    assert checkpoint_files.progress(root, plan.entries[0]) == [4, 2]
    calls = Chunks()
    execute(plan, pid, data, root, progress=calls)
    assert calls.calls == 2
    assert_same(root, tmp_path / "reference", plan, pid)
