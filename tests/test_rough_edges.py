"""Rough edges a new user hit (issue #24): each test fails without its fix."""

from __future__ import annotations

from types import SimpleNamespace

from hyperlax.report.rungs import rung_lines


def _row(sample, reached, ranks):
    row = {"sample": sample, "reached": reached, "status": "done"}
    for r in range(2):
        rank = ranks.get(r)
        row[f"rung_{r}_value"] = None if rank is None else float(-rank)
        row[f"rung_{r}_rank"] = rank
        row[f"rung_{r}_survived"] = None if rank is None else (r == 0 and reached == 1)
    return row


def test_rung_table_lists_samples_stopped_at_rung_0_by_rank():
    halving = SimpleNamespace(metric="final", eta=2, rungs=[object(), object()])
    plan = SimpleNamespace(halving=halving, settings=SimpleNamespace(num_evaluations=4))
    collected = SimpleNamespace(plan=plan, rungs=[SimpleNamespace(rung=0), SimpleNamespace(rung=1)])
    rows = [_row(0, 0, {0: 4}), _row(1, 1, {0: 2, 1: 2}), _row(2, 0, {0: 3}),
            _row(3, 1, {0: 1, 1: 1})]
    lines = rung_lines(collected, {"summary": [], "rows": rows})
    table = [line.split() for line in lines if line.startswith("  ") and line.split()[0].isdigit()]
    assert [int(cells[0]) for cells in table] == [3, 1, 2, 0]
