"""`hyperlax report` of a population-based training sweep: the lineage is the decisions' copies,
each member's schedule follows its weights back through them, the files (pbt_lineage.csv,
pbt_schedule.csv, pbt_schedule.toml, pbt_schedule.png, report.json's ``pbt``) hold the same and
parse, the rows carry the last interval's values, the TensorBoard export carries the lineage,
and status says interval.

The checks rebuild lineage and schedules from the decision files themselves (rungs/rung_<r>.json
read as JSON), not through ``report.pbt``. The sweep is tests/test_pbt.py's: 6 PPO samples on
CartPole, 4 intervals of one evaluation.
"""

from __future__ import annotations

import csv
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.exec.halving import decide as H
from hyperlax.report.pbt import history
from hyperlax.storage.sweepdir import Owner
from test_pbt import make_plan


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def decisions_on_disk(root: Path) -> list[dict[str, Any]]:
    out, r = [], 0
    while (root / "rungs" / f"rung_{r}.json").exists():
        out.append(json.loads((root / "rungs" / f"rung_{r}.json").read_text()))
        r += 1
    return out


def expected_schedules(plan, docs: list[dict[str, Any]]) -> dict[int, list[tuple[int, dict]]]:
    """Per member, per interval: (whose weights, their values), walked back from the last
    interval through the decisions' exploit, from the files alone."""
    names = sorted({n for d in docs for row in d["values"] for n in row["values"]})
    during = [{s.index: {n: s.values[n] for n in names} for s in plan.samples}]
    during += [{row["sample"]: row["values"] for row in d["values"]} for d in docs]
    out = {}
    for member in during[-1]:
        carrier, walk = member, []
        for r in range(len(during) - 1, -1, -1):
            walk.append((carrier, during[r][carrier]))
            if r:
                copies = {row["sample"]: row["copies"] for row in docs[r - 1]["exploit"]}
                carrier = copies.get(carrier, carrier)
        out[member] = walk[::-1]
    return out


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from hyperlax.exec.local_exec import execute

    tmp = tmp_path_factory.mktemp("pbt_report")
    plan, pid, data = make_plan(tmp)
    root = tmp / "out"
    execute(plan, pid, data, root)
    report = tmp / "report"
    result = invoke("report", root, "-o", report)
    assert result.exit_code == 0, result.output
    return plan, pid, root, report, result.output


# --- without training: the walk back, whatever the decisions' values hold ---------------------

def test_a_schedule_follows_the_weights_back_through_every_copy(tmp_path):
    plan, _, _ = make_plan(tmp_path)
    members = range(6)
    exploits = [{1: 2, 3: 5}, {2: 3, 4: 1}, {5: 2}]

    def values(r: int) -> dict[int, dict[str, Any]]:
        # a marker value per interval and member, and a name the plan does not explore
        return {i: {"actor_lr": 1000.0 * (r + 1) + i, "gamma": 0.5 + r / 10} for i in members}

    views = [H.RungView(r, r + 1, 6, [], H.Decision(r, r + 1, "final_return",
                                                     [(i, 0.0) for i in members],
                                                     list(members), exploits[r], values(r)))
             for r in range(3)] + [H.RungView(3, 4, 6, [], None)]
    h = history(plan, views)
    assert "gamma" in h.names() and h.names()[0] == "actor_lr"   # explored first
    # sample 2 copied 3 after interval 1; 3 had copied 5 after interval 0
    assert h.carriers(2) == [5, 3, 2, 2]
    stages = h.schedule(2)
    assert [s.weights_of for s in stages] == [5, 3, 2, 2]
    assert stages[0].values["actor_lr"] == plan.samples[5].values["actor_lr"]
    assert stages[0].values["gamma"] == plan.sample_values(5)["gamma"]  # the plan's at first
    assert [s.values["actor_lr"] for s in stages[1:]] == [1003.0, 2002.0, 3002.0]
    # 5 copied 2 last: back through 2's own copy of 3, and 3's of 5
    assert h.carriers(5) == [5, 3, 2, 5]
    assert h.carriers(0) == [0, 0, 0, 0]
    assert [(c.interval, c.sample, c.copied) for c in h.lineage(3)] == [(0, 3, 5)]
    assert [s.step for s in stages] == [0, 64, 128, 192]   # the budget's, without curves
    assert h.last_values()[4]["actor_lr"] == 3004.0 and h.last_values()[4]["gamma"] == 0.7


def test_an_undecided_sweep_has_the_first_interval_only(tmp_path):
    plan, _, _ = make_plan(tmp_path)
    h = history(plan, [H.RungView(r, r + 1, 6, None, None) for r in range(4)])
    assert h.known == 1 and h.copies() == []
    assert h.schedule(4)[0].values == {n: plan.samples[4].values[n] for n in plan.pbt.explore}


# --- a trained sweep -----------------------------------------------------------------------

@pytest.mark.slow
def test_lineage_is_the_decisions_copies(swept):
    plan, _, root, report, output = swept
    docs = decisions_on_disk(root)
    assert len(docs) == len(plan.halving.rungs) - 1 == 3
    expected = [(str(d["rung"]), str(row["sample"]), str(row["copies"])) for d in docs
                for row in d["exploit"]]
    rows = read_csv(report / "pbt_lineage.csv")
    assert [(r["interval"], r["sample"], r["copied"]) for r in rows] == expected
    for row, d in zip(rows, [d for d in docs for _ in d["exploit"]]):
        value = {v["sample"]: v["value"] for v in d["ranking"]}
        assert float(row["value"]) == value[int(row["sample"])]
        assert float(row["copied_value"]) == value[int(row["copied"])]
        # the copy is made at the end of its interval: 64 env steps per evaluation here
        assert int(row["env_steps"]) == 64 * (d["evaluations"])
    document = json.loads((report / "report.json").read_text())
    assert [(str(x["interval"]), str(x["sample"]), str(x["copied"]))
            for x in document["pbt"]["lineage"]] == expected
    for d in docs:
        copies = ", ".join(f"{row['sample']} <- {row['copies']}" for row in d["exploit"])
        assert f"after interval {d['rung']} (env step {64 * d['evaluations']}): {copies}" \
            in output


@pytest.mark.slow
def test_schedules_follow_exploit_backwards(swept):
    plan, _, root, report, _ = swept
    expected = expected_schedules(plan, decisions_on_disk(root))
    assert any(w != m for m, walk in expected.items() for w, _ in walk)  # someone copied
    rows = read_csv(report / "pbt_schedule.csv")
    got: dict[int, list[tuple[int, dict]]] = {}
    for row in rows:
        values = {n: json.loads(row[n]) for n in plan.pbt.explore}
        got.setdefault(int(row["sample"]), []).append((int(row["weights_of"]), values))
        assert int(row["env_steps_from"]) == 64 * int(row["interval"])
    assert got == expected
    document = json.loads((report / "report.json").read_text())
    best = document["best"]["sample"]
    assert int(rows[0]["sample"]) == best == document["pbt"]["best"]   # best first
    assert document["best"]["schedule"] == [v for _, v in expected[best]]


@pytest.mark.slow
def test_the_block_to_feed_back_parses_with_one_row_per_interval(swept):
    plan, _, root, report, output = swept
    text = (report / "pbt_schedule.toml").read_text()
    assert text in output and "[fixed]" in text
    assert "# to train it again: paste into a manifest whose [space] is empty and " \
           "num_samples = 1" in text
    doc = tomllib.loads(text)
    best = json.loads((report / "report.json").read_text())["best"]["sample"]
    expected = expected_schedules(plan, decisions_on_disk(root))[best]
    # a replay schedules its explore names: every name the decisions' values carry
    carried = sorted({n for d in decisions_on_disk(root) for row in d["values"]
                      for n in row["values"]})
    assert doc["pbt"]["interval"] == 1 and doc["pbt"]["explore"] == carried
    assert set(plan.pbt.explore) <= set(carried)
    assert len(doc["pbt"]["schedule"]) == len(plan.halving.rungs)
    assert doc["pbt"]["schedule"] == [v for _, v in expected]
    # the rest pinned once: what the sweep sampled or fixed, and is not scheduled
    assert not set(doc["fixed"]) & set(carried)
    assert doc["fixed"]["num_envs"] == 4 and doc["fixed"]["rollout_length"] == 16


REPLAY = """\
[sweep]
name = "replay"
recipe = "ppo_mlp_fixed_net"
recipe_space = "exclude"
env = "gymnax.cartpole"
num_samples = 1
seed = 5
total_timesteps = 256
num_evaluations = 4
eval_episodes = 2

[space]

"""


@pytest.mark.slow
def test_the_fed_back_block_plans_and_trains_the_schedule(swept, tmp_path):
    """Pasted as the docs say, the block plans (with the compiler's [pbt] schedule) and exec
    trains every interval with its row."""
    from hyperlax.compiler import compile_manifest
    from hyperlax.exec.local_exec import execute
    from hyperlax.manifest.format import PbtSection
    from hyperlax.plan.format import encode_plan, plan_id

    if "schedule" not in PbtSection.__struct_fields__:
        pytest.skip("this compiler has no [pbt] schedule (replay) yet")
    _, _, _, report, _ = swept
    block = (report / "pbt_schedule.toml").read_text()
    manifest = tmp_path / "replay.toml"
    manifest.write_text(REPLAY + block)
    plan, _ = compile_manifest(manifest)
    rows = tomllib.loads(block)["pbt"]["schedule"]
    assert plan.pbt.schedule == rows and len(plan.samples) == 1
    pid = plan_id(plan)
    execute(plan, pid, encode_plan(plan), tmp_path / "out")
    views = H.rung_views(plan, tmp_path / "out", Owner.of(plan, pid))
    for view, row in zip(views, rows):
        entry = view.entries[0]
        doc = json.loads((tmp_path / "out").joinpath(*entry.path.split("/"), "samples.json")
                         .read_text())
        assert {n: doc[0]["values"][n] for n in row} == row, view.rung


@pytest.mark.slow
def test_rows_are_members_with_the_last_intervals_values(swept):
    plan, _, root, report, output = swept
    last = {row["sample"]: row["values"] for row in decisions_on_disk(root)[-1]["values"]}
    rows = read_csv(report / "results.csv")
    assert len(rows) == 6 and "rung" not in rows[0]
    for row in rows:
        assert row["pbt_member"] == "true" and row["interval"] == "3"
        for name, value in last[int(row["sample"])].items():
            assert json.loads(row[name]) == value
    assert "PBT members, with the values of the last interval" in output
    assert "successive halving" not in output and "rung" not in output.split("wrote")[0]
    for name in ("pbt_lineage.csv", "pbt_schedule.csv", "pbt_schedule.toml", "report.json"):
        assert name in output.split("wrote")[-1]
    png = (report / "pbt_schedule.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.mark.slow
def test_a_partial_sweep_says_its_schedule_is_partial(swept, tmp_path):
    plan, _, root, _, _ = swept
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "rungs" / "rung_2.json").unlink()     # interval 2 not decided: 3 is unknown
    shutil.rmtree(copy / "rungs" / "rung_3")
    result = invoke("report", copy, "-o", tmp_path / "r", "--no-plots")
    assert result.exit_code == 0, result.output
    doc = tomllib.loads((tmp_path / "r" / "pbt_schedule.toml").read_text())
    assert len(doc["pbt"]["schedule"]) == 3
    assert "# PARTIAL: 3 of 4 intervals decided" in result.output
    assert "2 of 3 steps decided" in result.output


@pytest.mark.slow
def test_status_says_intervals(swept):
    _, _, root, _, _ = swept
    result = invoke("status", root / "plan.msgpack", "--output-root", root)
    assert result.exit_code == 0, result.output
    assert "interval 0: 6 samples to 1 of 4 evaluations" in result.output
    assert "decided: 2 copied another (rungs/rung_0.json)" in result.output
    assert "intervals decided: 3 of 3" in result.output and "rung 0:" not in result.output


@pytest.mark.slow
def test_tensorboard_carries_the_lineage(swept, tmp_path):
    pytest.importorskip("tensorboardX")
    from test_tensorboard import read_events

    plan, _, root, _, _ = swept
    docs = decisions_on_disk(root)
    expected = expected_schedules(plan, docs)
    result = invoke("report", root, "-o", tmp_path / "r", "--no-plots", "--tensorboard",
                    tmp_path / "tb")
    assert result.exit_code == 0, result.output
    for member, walk in expected.items():
        events = read_events(tmp_path / "tb" / f"sample_{member:05d}" /
                             "events.out.tfevents.hyperlax")
        scalars: dict[str, list[tuple[int, float]]] = {}
        texts = []
        for event in events:
            for value in event.summary.value:
                if value.tag.startswith("pbt/lineage"):
                    texts.append(value.tensor.string_val[0].decode())
                elif value.tag.startswith("pbt/"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
        copies = [(64 * d["evaluations"], float(row["copies"])) for d in docs
                  for row in d["exploit"] if row["sample"] == member]
        assert scalars.get("pbt/copied_from", []) == copies
        assert len(texts) == 1 and ("copied no one" in texts[0]) == (not copies)
        lr = [(step, pytest.approx(v, rel=1e-6)) for step, v in
              [(64 * r, values["actor_lr"]) for r, (_, values) in enumerate(walk)]]
        assert scalars["pbt/actor_lr"][:len(walk)] == lr
        assert scalars["pbt/actor_lr"][-1][0] == 256    # held to the end of training
