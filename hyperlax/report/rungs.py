"""The rung table of a successive-halving sweep: for every sample, how far it got, its metric
at each rung it trained to, its rank there, and whether it went on. JAX-free.

The values are the ones the decisions ranked by (``rungs/rung_<r>.json``), read back, not
recomputed; the last rung has no decision, so its values come from its entries' curves the way
a decision would compute them (``halving.entry_values``).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from hyperlax.exec.halving import decide as H
from hyperlax.report.results import Collected, csv_cell
from hyperlax.storage.sweepdir import Owner, SweepDir


def rung_table(collected: Collected) -> dict[str, Any]:
    """The rung table, computed once for the report's files and text: ``summary``
    (``rung_summary``) and ``rows`` (``rung_rows``), as report.json holds them."""
    done = {e.entry.path for e in collected.entries if e.state == "done"}
    return {"summary": rung_summary(collected, done), "rows": rung_rows(collected, done)}


def rung_rows(collected: Collected, done: set[str]) -> list[dict[str, Any]]:
    """One row per sample, in sample order: ``sample``, ``reached`` (the last rung it trained
    to, None if none finished), and per rung r ``rung_<r>_value``, ``rung_<r>_rank`` and
    ``rung_<r>_survived`` (None where it did not get there, or nothing is decided yet).
    ``done``: the entries ``collect`` found complete (and checked)."""
    plan, views = collected.plan, collected.rungs
    assert plan.halving is not None and views is not None
    owner = Owner.of(plan, collected.plan_id)
    sweep = SweepDir(collected.root)
    per_rung: list[dict[int, tuple[float | None, int | None, bool | None]]] = []
    for view in views:
        known: dict[int, tuple[float | None, int | None, bool | None]] = {}
        if view.decision is not None:
            survivors = set(view.decision.survivors)
            for rank, (i, value) in enumerate(view.decision.ranking, 1):
                known[i] = (value, rank, i in survivors)
        elif view.entries is not None and view.rung == len(views) - 1:
            values: dict[int, float | None] = {}
            for entry in view.entries:
                if entry.path in done:
                    values.update(H.entry_values(sweep, owner, entry, view.evaluations,
                                                 plan.halving.metric))
            for rank, i in enumerate(H.ranking(values), 1):
                known[i] = (values[i], rank, None)
        per_rung.append(known)
    rows = []
    for sample in collected.samples:
        row: dict[str, Any] = {"sample": sample.index, "reached": sample.rung,
                               "status": sample.status}
        for view, known in zip(views, per_rung):
            value, rank, survived = known.get(sample.index, (None, None, None))
            row[f"rung_{view.rung}_value"] = value
            row[f"rung_{view.rung}_rank"] = rank
            row[f"rung_{view.rung}_survived"] = survived
        rows.append(row)
    return rows


def rung_columns(collected: Collected) -> list[str]:
    columns = ["sample", "reached", "status"]
    for view in collected.rungs or []:
        columns += [f"rung_{view.rung}_value", f"rung_{view.rung}_rank",
                    f"rung_{view.rung}_survived"]
    return columns


def rungs_csv(collected: Collected, table: dict[str, Any]) -> str:
    columns = rung_columns(collected)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in table["rows"]:
        writer.writerow([csv_cell(row[c]) for c in columns])
    return buf.getvalue()


def rung_summary(collected: Collected, done: set[str]) -> list[dict[str, Any]]:
    """Per rung: its budget, how many samples it trains, its entries, and the decision."""
    out = []
    for view in collected.rungs or []:
        entries = view.entries or []
        out.append({"rung": view.rung, "evaluations": view.evaluations,
                    "samples": view.samples, "entries": len(entries) if view.entries else None,
                    "done": sum(e.path in done for e in entries),
                    "decided": view.decision is not None,
                    "survivors": view.decision.survivors if view.decision else None})
    return out


def _value(x: float | None) -> str:
    return "-" if x is None else (f"{x:.4g}" if math.isfinite(x) else str(x))


def _furthest_first(row: dict[str, Any]) -> tuple[int, float, int]:
    """Sort key of the terminal table: the furthest rung first, and within the samples that
    stopped at the same rung, by their rank there (unranked last), then by sample index."""
    reached = row["reached"] if row["reached"] is not None else -1
    rank = row.get(f"rung_{reached}_rank")
    return (-reached, rank if rank is not None else math.inf, row["sample"])


def rung_lines(collected: Collected, table: dict[str, Any], limit: int = 20) -> list[str]:
    """The rung table (``rung_table``) for the terminal: the rungs, then the samples that got
    furthest."""
    plan = collected.plan
    halving = plan.halving
    assert halving is not None
    total = plan.settings.num_evaluations
    head = [f"successive halving by {halving.metric} (eta = {halving.eta}), "
            f"{len(halving.rungs)} rungs:"]
    for item in table["summary"]:
        decided = (f"{len(item['survivors'])} went on" if item["decided"] else
                   "last rung" if item["rung"] == len(halving.rungs) - 1 else "not decided yet")
        entries = (f"{item['done']}/{item['entries']} entries done" if item["entries"] is not None
                   else "waiting for the rung before")
        head.append(f"  rung {item['rung']}: {item['samples']} samples to {item['evaluations']}"
                    f" of {total} evaluations; {entries}; {decided}")
    rows = sorted(table["rows"], key=_furthest_first)
    rungs = [v.rung for v in collected.rungs or []]
    header = ["sample", "reached"] + [f"rung {r}" for r in rungs]
    cells = []
    for row in rows[:limit]:
        line = [str(row["sample"]), "-" if row["reached"] is None else str(row["reached"])]
        for r in rungs:
            rank = row[f"rung_{r}_rank"]
            mark = {True: " +", False: " x", None: ""}[row[f"rung_{r}_survived"]]
            line.append("" if rank is None else f"{_value(row[f'rung_{r}_value'])} #{rank}{mark}")
        cells.append(line)
    widths = [max(len(h), *(len(c[k]) for c in cells)) if cells else len(h)
              for k, h in enumerate(header)]
    table = ["  " + "  ".join(h.rjust(w) for h, w in zip(header, widths))]
    table += ["  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    more = [f"  ... {len(rows) - limit} more samples in rungs.csv"] if len(rows) > limit else []
    legend = [f"  {halving.metric} at each rung and the rank there; + went on, x stopped"]
    return head + [""] + table + more + legend
