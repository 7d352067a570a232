"""The report use case: collect a sweep's results, write results.csv, report.json and the
plots into the report directory, and compose what ``hyperlax report`` prints. JAX-free;
matplotlib is imported only when plots are drawn.

A successive-halving sweep adds rungs.csv; a population-based training sweep adds its lineage
and schedules (pbt_lineage.csv, pbt_schedule.csv, pbt_schedule.png) and, in place of the
``[fixed]`` block, pbt_schedule.toml: the best member's schedule, to feed back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError
from hyperlax.plan.read import read_plan
from hyperlax.report import results as R
from hyperlax.report.sensitivity import render_sensitivity, sensitivity_lines, sobol_analysis
from hyperlax.storage import atomic
from hyperlax.storage.sweepdir import PLAN_COPY, sweep_root


@dataclass
class Report:
    collected: R.Collected
    plan_source: str
    report_dir: Path
    names: list[str]          # the files written, in order
    document: dict[str, Any]  # report.json's content
    json_text: str

    def partial_warning(self) -> str | None:
        if self.collected.complete:
            return None
        return (f"warning: {self.collected.root}: partial sweep, "
                f"{self.document['samples']['missing']} samples missing")

    def text(self, metric: str, top_k: int) -> str:
        """The human-readable report: status, the top configurations, the [fixed] block."""
        c = self.collected
        out = [line + "\n" for line in R.status_lines(c, self.plan_source)] + ["\n"]
        order = R.ranked(c, metric)
        if order:
            out += [line + "\n" for line in R.top_table(c, order[:top_k], metric)]
        if c.pbt is not None:  # its lineage and the best's schedule before the block to paste
            from hyperlax.report.pbt_tables import pbt_lines

            out += ["\n"] + [line + "\n" for line in pbt_lines(c, self.document["pbt"])]
        if order:
            paste = ("to train the best member's schedule again, paste (or use "
                     "pbt_schedule.toml):\n" if c.pbt is not None else
                     "to pin the best in a follow-up manifest, paste:\n")
            out += ["\n", paste, R.fixed_block(c, order[0], metric)]
        else:
            out.append("no sample finished without diverging: there is no best configuration\n")
        if c.rungs is not None and c.pbt is None:
            from hyperlax.report.rungs import rung_lines

            out += ["\n"] + [line + "\n" for line in rung_lines(c, self.document["rungs"])]
        if self.document.get("sensitivity"):
            out += ["\n"] + [line + "\n" for line in
                             sensitivity_lines(self.document["sensitivity"])]
        out += ["\n", f"wrote {', '.join(self.names)} to {self.report_dir}\n"]
        return "".join(out)


def write_report(plan_file: Path, output_root: Path | None, report_dir: Path | None,
                 top_k: int, metric: str, plots: bool = True) -> Report:
    """Collect the results of ``plan_file``'s sweep (or of a sweep directory, by its plan
    copy) and write the report files; HyperlaxError when there is nothing to report."""
    if plan_file.is_dir():
        output_root = output_root if output_root is not None else plan_file
        plan_file = plan_file / PLAN_COPY
    plan, pid = read_plan(plan_file)
    root = sweep_root(plan, output_root)
    collected = R.collect(plan, pid, root, str(plan_file), output_root)
    # The report directory a user names (-o) is theirs to write in; the default one lies in the
    # sweep, whose root it must not leave (``report/`` itself may be a link planted there).
    within = report_dir if report_dir is not None else root
    report_dir = report_dir if report_dir is not None else root / "report"

    files: dict[str, bytes] = {"results.csv": R.results_csv(collected, metric).encode("utf-8")}
    if plots:
        from hyperlax.report.plots import render_plots

        files.update(render_plots(collected, metric, top_k))
    analysis = sobol_analysis(collected, metric)
    if plots and analysis and "indices" in analysis:
        files["sensitivity.png"] = render_sensitivity(
            analysis, f"{plan.settings.name}: which hyperparameters matter")
    table = pbt = None
    if collected.pbt is not None:  # population-based training: who copied whom, schedules
        from hyperlax.report.pbt_tables import pbt_csvs, pbt_table

        order = R.ranked(collected, metric)
        pbt = pbt_table(collected, order)
        files.update({name: text.encode("utf-8") for name, text in pbt_csvs(pbt).items()})
        if order:
            files["pbt_schedule.toml"] = R.fixed_block(collected, order[0], metric).encode()
        if plots and order:
            from hyperlax.report.plots import render_schedule

            files["pbt_schedule.png"] = render_schedule(collected, order)
    elif collected.rungs is not None:  # successive halving: who survived where
        from hyperlax.report.rungs import rung_table, rungs_csv

        table = rung_table(collected)
        files["rungs.csv"] = rungs_csv(collected, table).encode("utf-8")
    staged = [n for n in ("rungs.csv", "pbt_lineage.csv", "pbt_schedule.csv",
                          "pbt_schedule.toml") if n in files]
    names = ["results.csv", *staged, "report.json", *(n for n in files if n.endswith(".png"))]
    document = R.report_document(collected, metric, top_k, [str(report_dir / n) for n in names])
    if table is not None:
        document["rungs"] = table
    if pbt is not None:
        document["pbt"] = pbt
    if analysis is not None:
        document["sensitivity"] = analysis
    json_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    files["report.json"] = json_text.encode()
    write_files(report_dir, files, names, within=within)
    return Report(collected, str(plan_file), report_dir, names, document, json_text)


def write_files(report_dir: Path, files: dict[str, bytes], names: list[str], *,
                within: Path | None = None) -> None:
    """Write ``files[name]`` for each of ``names`` into ``report_dir`` (a sweep's report or a
    search's), never leaving ``within``: the sweep or search directory for its own
    ``report/``, or (None) ``report_dir`` itself, a directory the user named. A directory that
    cannot be written is a HyperlaxError."""
    within = within if within is not None else report_dir
    try:
        for name in names:
            atomic.atomic_write(report_dir / name, files[name], within=within)
    except OSError as exc:
        raise HyperlaxError(str(report_dir), f"cannot write the report: {exc.strerror}",
                            "choose another directory with -o") from None
