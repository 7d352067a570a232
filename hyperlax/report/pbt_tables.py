"""A PBT sweep's lineage and schedules as report prints and writes them: tables and CSVs.

report.json's ``pbt``, pbt_lineage.csv, pbt_schedule.csv and the tables printed. JAX-free.

The lineage is every copy (after which interval, at which env step, who copied whom, and the
metric each was ranked by); a schedule is resolved through the weights a member carried
(``report.pbt``). pbt_schedule.csv holds every finished member's, best first, so its first rows
are the schedule that report prints and ``pbt_schedule.toml`` feeds back.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from hyperlax.report.pbt import History
from hyperlax.report.results import Collected, SampleResult, csv_cell, value_text

LINEAGE_COLUMNS = ["interval", "env_steps", "sample", "copied", "value", "copied_value"]
MAX_COPIES_SHOWN = 12      # per interval, on its line
MAX_INTERVALS_SHOWN = 20


def pbt_table(collected: Collected, order: list[SampleResult]) -> dict[str, Any]:
    """report.json's ``pbt``: the settings, the lineage, and every finished member's schedule
    (``order``: the ranking, best first)."""
    history, pbt = collected.pbt, collected.plan.pbt
    assert history is not None and pbt is not None and collected.plan.halving is not None
    return {"interval": pbt.interval, "explore": list(pbt.explore),
            "metric": collected.plan.halving.metric, "intervals": history.intervals,
            "decided": len(history.decisions), "names": history.names(),
            "lineage": lineage_rows(history),
            "best": order[0].index if order else None,
            "schedules": schedule_rows(history, order)}


def lineage_rows(history: History) -> list[dict[str, Any]]:
    return [{"interval": c.interval, "env_steps": c.step, "sample": c.sample,
             "copied": c.copied, "value": c.value, "copied_value": c.copied_value}
            for c in history.copies()]


def schedule_rows(history: History, order: list[SampleResult]) -> list[dict[str, Any]]:
    """Per member (best first) and interval: whose weights it carried and their values."""
    return [{"sample": s.index, "rank": rank, "interval": stage.interval,
             "evaluations_from": stage.evaluations, "env_steps_from": stage.step,
             "weights_of": stage.weights_of, **stage.values}
            for rank, s in enumerate(order, 1) for stage in history.schedule(s.index)]


def schedule_columns(table: dict[str, Any]) -> list[str]:
    return ["sample", "rank", "interval", "evaluations_from", "env_steps_from", "weights_of",
            *table["names"]]


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def pbt_csvs(table: dict[str, Any]) -> dict[str, str]:
    return {"pbt_lineage.csv": _csv(LINEAGE_COLUMNS, table["lineage"]),
            "pbt_schedule.csv": _csv(schedule_columns(table), table["schedules"])}


def pbt_lines(collected: Collected, table: dict[str, Any]) -> list[str]:
    """The lineage, one line per interval, and the best member's schedule, for the terminal."""
    plan = collected.plan
    pbt = plan.pbt
    assert pbt is not None
    per = "evaluation" if pbt.interval == 1 else "evaluations"
    out = [f"population-based training by {table['metric']}: {table['intervals']} intervals of "
           f"{pbt.interval} {per}, {table['decided']} of {table['intervals'] - 1} steps "
           "decided; after each, who copied whom (copier <- copied):"]
    by_interval: dict[int, list[dict[str, Any]]] = {}
    for row in table["lineage"]:
        by_interval.setdefault(row["interval"], []).append(row)
    for interval in range(table["decided"])[:MAX_INTERVALS_SHOWN]:
        rows = by_interval.get(interval, [])
        steps = sorted({r["env_steps"] for r in rows})
        at = f"env step {steps[0]:,}" if len(steps) == 1 else "env steps by structure"
        copies = ", ".join(f"{r['sample']} <- {r['copied']}" for r in rows[:MAX_COPIES_SHOWN])
        more = f" ... {len(rows) - MAX_COPIES_SHOWN} more" if len(rows) > MAX_COPIES_SHOWN \
            else ""
        out.append(f"  after interval {interval} ({at}): {copies or 'no copy'}{more}")
    if table["decided"] > MAX_INTERVALS_SHOWN:
        out.append(f"  ... {table['decided'] - MAX_INTERVALS_SHOWN} more intervals in "
                   "pbt_lineage.csv")
    best = table["best"]
    if best is None:
        return out
    stages = [r for r in table["schedules"] if r["sample"] == best]
    names = table["names"]
    out += ["", f"the best final member, sample {best}: the values its weights trained with, "
                "interval by interval (through the members whose weights it carried)"]
    header = ["interval", "from step", "weights of", *names]
    cells = [[str(r["interval"]), f"{r['env_steps_from']:,}", str(r["weights_of"]),
              *(value_text(r.get(n)) for n in names)] for r in stages]
    widths = [max(len(h), *(len(c[k]) for c in cells)) if cells else len(h)
              for k, h in enumerate(header)]
    out.append("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths)))
    out += ["  " + "  ".join(c.rjust(w) for c, w in zip(line, widths))
            for line in cells[:MAX_INTERVALS_SHOWN]]
    if len(cells) > MAX_INTERVALS_SHOWN:
        out.append(f"  ... {len(cells) - MAX_INTERVALS_SHOWN} more intervals in "
                   "pbt_schedule.csv and below")
    return out
