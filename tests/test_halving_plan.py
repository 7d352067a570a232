"""Successive halving and checkpoints in the plan (JAX-free): rungs as fractions or counts,
the compiler's explanations, plan bytes and results ids, plancheck, show."""

from __future__ import annotations

import msgspec
import pytest

from conftest import MINIMAL, SPECS
from hyperlax.compiler import compile_manifest
from hyperlax.errors import HyperlaxError
from hyperlax.plan.explain import describe
from hyperlax.plan.format import Halving, Rung, decode_plan, encode_plan, plan_id, results_id
from hyperlax.plan.check import plan_problems

HEAD = MINIMAL.format(n=9, mode="grouped", batch=4, seed=0) + "num_evaluations = 9\n"


def plan_of(write_manifest, extra: str, name: str = "sweep.toml"):
    return compile_manifest(write_manifest(HEAD + extra, name))


def test_fractions_and_counts_give_the_same_rungs(write_manifest):
    a, _ = plan_of(write_manifest, 'rungs = ["1/9", "1/3", "1"]\n', "a.toml")
    b, _ = plan_of(write_manifest, "rungs = [1, 3, 9]\n", "b.toml")
    c, _ = plan_of(write_manifest, "rungs = [0.1111111111111111, 0.3333333333333333, 1.0]\n",
                   "c.toml")
    want = Halving(metric="final_return", eta=3,
                   rungs=[Rung(evaluations=1, samples=9), Rung(evaluations=3, samples=3),
                          Rung(evaluations=9, samples=1)])
    assert a.halving == b.halving == c.halving == want
    assert results_id(a) == results_id(b)


def test_eta_and_metric(write_manifest):
    plan, warnings = plan_of(write_manifest, 'rungs = [1, 9]\neta = 2\nrung_metric = "auc"\n')
    assert plan.halving.rungs[1].samples == 4 and plan.halving.metric == "auc"
    plan, warnings = plan_of(write_manifest, "rungs = [1, 2, 3, 9]\neta = 4\n", "w.toml")
    assert [r.samples for r in plan.halving.rungs] == [9, 2, 1, 1]
    assert any("keeps all 1 samples" in w for w in warnings)


@pytest.mark.parametrize("extra, message", [
    ('rungs = ["1/10", 9]\n', "sweep.rungs[0]: 1/10 of num_evaluations = 9 is 0.9 evaluations"),
    ("rungs = [3, 3, 9]\n", "sweep.rungs[1]: rungs must grow"),
    ("rungs = [1, 10]\n", "sweep.rungs[1]: 10 evaluations is more than the full budget"),
    ("rungs = [1, 3]\n", "sweep.rungs: the last rung must be the full budget"),
    ('rungs = ["2/1", 9]\n', "sweep.rungs[0]: '2/1' is not a fraction in (0, 1]"),
    ("rung_metric = \"auc\"\n", "sweep.rung_metric: only applies with rungs"),
    ("checkpoint_every = 10\n", "sweep.checkpoint_every: 10 is more than num_evaluations = 9"),
])
def test_bad_rungs_are_explained(write_manifest, extra, message):
    with pytest.raises(HyperlaxError) as err:
        plan_of(write_manifest, extra)
    assert message in str(err.value)


def test_rungs_end_on_call_boundaries(write_manifest):
    # 200 evaluations run as 100 calls of 2: a rung at 3 evaluations cannot be stopped at
    head = MINIMAL.format(n=9, mode="grouped", batch=4, seed=0)
    head = head.replace("total_timesteps = 100_000", "total_timesteps = 1_000_000")
    path = write_manifest(head + "num_evaluations = 200\nrungs = [3, 200]\n")
    with pytest.raises(HyperlaxError, match=r"rungs\[0\].*use a multiple of 2"):
        compile_manifest(path)
    path.write_text(head + "num_evaluations = 200\nrungs = [4, 200]\n")
    assert compile_manifest(path)[0].halving.rungs[0].evaluations == 4


def test_plans_without_the_new_keys_keep_their_bytes(write_manifest):
    """The new plan fields are omitted when unset, so every existing plan (and the golden
    ones, tests/test_compiler.py) keeps its bytes and its results id."""
    plan, _ = compile_manifest(SPECS / "quickstart.toml")
    raw = msgspec.msgpack.decode(encode_plan(plan))["plan"]
    assert "training" not in raw
    # the model may declare any number of fields: plan bytes count only the fields written
    wide = msgspec.defstruct("Wide", [(f"f{i}", int, 0) for i in range(20)], omit_defaults=True)
    from hyperlax.plan.format import encode
    assert encode(wide(f0=1)) == msgspec.msgpack.encode({"f0": 1})
    assert msgspec.msgpack.encode(wide(f0=1)) != encode(wide(f0=1))  # what encode avoids
    for golden in sorted((SPECS.parent / "tests" / "golden").glob("*.plan.msgpack")):
        data = golden.read_bytes()
        assert encode_plan(decode_plan(data, golden.name)[0]) == data, golden.name
    plain, _ = plan_of(write_manifest, "", "plain.toml")
    checkpointed, _ = plan_of(write_manifest, "checkpoint_every = 3\n", "ckpt.toml")
    halved, _ = plan_of(write_manifest, "rungs = [1, 9]\n", "halved.toml")
    # checkpoints change when results are saved, not what they are: same results id
    assert results_id(plain) == results_id(checkpointed) != results_id(halved)
    again, pid = decode_plan(encode_plan(halved), "x")
    assert again == halved and pid == plan_id(halved)


def test_plancheck_refuses_edited_rungs(write_manifest):
    plan, _ = plan_of(write_manifest, "rungs = [1, 3, 9]\n")
    halving = plan.halving
    bad = [
        msgspec.structs.replace(halving, rungs=[Rung(evaluations=1, samples=9),
                                                Rung(evaluations=9, samples=5)]),
        msgspec.structs.replace(halving, rungs=[Rung(evaluations=3, samples=9),
                                                Rung(evaluations=1, samples=3),
                                                Rung(evaluations=9, samples=1)]),
        msgspec.structs.replace(halving, eta=1),
        msgspec.structs.replace(halving, metric="loss"),
    ]
    for edited in bad:
        training = msgspec.structs.replace(plan.training, halving=edited)
        problems = plan_problems(msgspec.structs.replace(plan, training=training))
        assert problems and problems[0][0].startswith("halving"), problems
    training = msgspec.structs.replace(plan.training, checkpoint_every=-1)
    assert plan_problems(msgspec.structs.replace(plan, training=training))
    # a halving plan's entries must leave rungs/ and checkpoints/ to the runtime
    entry = msgspec.structs.replace(plan.entries[0], path="rungs/x")
    problems = plan_problems(msgspec.structs.replace(plan, entries=[entry, *plan.entries[1:]]))
    assert any("own files" in m for _, m in problems)


def test_show_explains_rungs_and_checkpoint_sizes(write_manifest):
    plan, _ = plan_of(write_manifest, "rungs = [1, 3, 9]\ncheckpoint_every = 3\n")
    text = describe(plan, plan_id(plan), "text")
    assert "halving    3 rungs, the top 1/3 by final_return" in text
    assert "9 to 1/9 -> 3 to 3/9 -> 1 to 9/9" in text
    assert "checkpoint every 3 evaluations" in text and "rung ends" in text
    doc = __import__("json").loads(describe(plan, plan_id(plan), "json"))
    assert doc["halving"]["rungs"][1] == {"evaluations": 3, "samples": 3}
    assert doc["estimated_checkpoint_bytes"]["entry"] > 0
