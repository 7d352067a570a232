"""hyperlax compare: several sweeps in one table, IQM with (stratified) bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import trim_mean

from hyperlax.plan.read import read_plan
from hyperlax.report.compare import (compare_lines, iqm, method_rows, render_compare,
                                     sweep_row, sweep_scores)
from hyperlax.report.results import Collected, SampleResult

GOLDEN = Path(__file__).parent / "golden"


def fake(name: str, scores: list[float | None], env: str | None = None) -> Collected:
    plan, pid = read_plan(GOLDEN / name)
    if env is not None:
        import msgspec
        plan = msgspec.structs.replace(plan, settings=msgspec.structs.replace(plan.settings,
                                                                              env=env))
    samples = [SampleResult(index=i, entry="e", status="ok" if x is not None else "missing",
                            summary=None if x is None else {"final_return": x})
               for i, x in enumerate(scores)]
    return Collected(plan=plan, plan_id=pid, root=Path("/nowhere"), entries=[], samples=samples)


def test_iqm_is_the_25_percent_trimmed_mean():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 100])
    assert iqm(x) == pytest.approx(trim_mean(x, 0.25)) == pytest.approx(4.5)


def test_sweep_row_counts_and_interval():
    scores = list(np.linspace(-900, -100, 15)) + [None]
    s = sweep_scores(fake("ppo_pendulum_64.plan.msgpack", scores + [None] * 48), "a", "final")
    row = sweep_row(s)
    assert (row["finished"], row["missing_or_diverged"], row["samples"]) == (15, 49, 64)
    assert row["best"] == pytest.approx(-100) and row["median"] == pytest.approx(-500)
    lo, hi = row["iqm_ci"]
    assert lo < row["iqm"] < hi
    assert sweep_row(s) == row  # seeded: the same results give the same interval


def test_labels_across_tasks_are_normalized_and_stratified():
    rng = np.random.default_rng(0)
    good_p = fake("quickstart.plan.msgpack", list(rng.uniform(-300, -100, 8)))
    bad_p = fake("quickstart.plan.msgpack", list(rng.uniform(-1200, -900, 8)))
    good_c = fake("ppo_cartpole.plan.msgpack", list(rng.uniform(400, 500, 16)))
    bad_c = fake("ppo_cartpole.plan.msgpack", list(rng.uniform(10, 60, 16)))
    sweeps = [sweep_scores(c, label, "final") for c, label in
              ((good_p, "tuned"), (bad_p, "default"), (good_c, "tuned"), (bad_c, "default"))]
    methods = {m["label"]: m for m in method_rows(sweeps)}
    assert methods["tuned"]["tasks"] == ["gymnax.cartpole", "gymnax.pendulum"]
    assert methods["tuned"]["runs"] == 24
    assert methods["tuned"]["normalized_iqm"] > 0.7 > 0.3 > methods["default"]["normalized_iqm"]
    lo, hi = methods["tuned"]["normalized_iqm_ci"]
    assert 0.0 <= lo <= methods["tuned"]["normalized_iqm"] <= hi <= 1.0
    rows = [sweep_row(s) for s in sweeps]
    text = "\n".join(compare_lines(rows, list(methods.values()), "final"))
    assert "per label across tasks" in text and "tuned" in text
    assert render_compare(sweeps, rows, "final")[:4] == b"\x89PNG"


@pytest.mark.slow
def test_compare_command_end_to_end(tmp_path):
    from click.testing import CliRunner

    from hyperlax.cli.main import main
    from test_exec import tiny_plan

    roots = []
    for k in (1, 2):  # the same tiny plan run twice, into two sweep directories
        sub = tmp_path / f"s{k}"
        sub.mkdir()
        _, _, data = tiny_plan(sub, n=2, batch=2)
        (sub / "plan.msgpack").write_bytes(data)
        result = CliRunner().invoke(main, ["exec", str(sub / "plan.msgpack"), "--output-root",
                                           str(sub / "out"), "-q"])
        assert result.exit_code == 0, result.output
        roots.append(sub / "out")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", *map(str, roots), "--label", "a", "--label",
                                       "b", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "a " in result.output and "b " in result.output and "IQM" in result.output
    csv_lines = (out / "compare.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[1].startswith("a,") and csv_lines[2].startswith("b,")
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(main, ["compare", str(roots[0]), "--label", "a", "--label", "b"])
    assert bad.exit_code == 2 and "2 labels for 1 sweeps" in bad.output
