"""A sweep's results, read back from its entries' files: one row per sample, the ranking, and the
``[fixed]`` block that pins the best configuration. JAX-free and matplotlib-free.

A population-based training sweep's samples are its members: their rows hold the values of the
last interval (what their final weights trained with last, ``report.pbt``), not the plan's.

Only entries whose completion marker is present are read, and only after every file the marker
vouches for matches its checksum (the check of ``status --verify``, ``SweepDir.verify``); every
other entry's samples are reported as missing, so a partial sweep still reports what it has.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import exec_command_line
from hyperlax.plan.explain import ranges_text
from hyperlax.plan.format import Entry, Plan
from hyperlax.report.pbt import History, history
from hyperlax.storage.provenance import groups, mixed_warning, read_provenance
from hyperlax.storage.read import read_json, read_npz
from hyperlax.storage.sweepdir import PLAN_COPY, Owner, SweepDir, another_plan
from hyperlax.manifest.toml_inline import toml_key, toml_value

ENTRY_STATES = ("done", "partial", "pending", "damaged")


@dataclass
class SampleResult:
    index: int
    entry: str                                # the entry's path, relative to the sweep dir
    status: str                               # ok | diverged | missing
    summary: dict[str, Any] | None = None     # the sample's record in summary.json
    eval_steps: np.ndarray | None = None      # [E] env steps of each evaluation
    returns: np.ndarray | None = None         # [R, E], NaN where not finite
    wall_seconds: float | None = None         # its entry's wall time, shared by batch mates
    rung: int | None = None                   # successive halving: the last rung it finished

    def score(self, metric: str) -> float | None:
        """Mean over replicates of the final or best return; None when there is none."""
        return None if self.summary is None else self.summary[f"{metric}_return"]

    def spread(self, metric: str) -> float | None:
        return None if self.summary is None else self.summary[f"{metric}_return_std"]


@dataclass
class EntryState:
    entry: Entry
    state: str        # done | partial (interrupted) | pending | damaged (files fail checksums)
    problem: str = ""
    corrupt: bool = False  # damaged as exec sees it: it re-runs it only with --redo-corrupt


@dataclass
class Collected:
    plan: Plan
    plan_id: str
    root: Path
    entries: list[EntryState]
    samples: list[SampleResult]   # plan order, one per sample
    output_root: Path | None = None   # the --output-root given, repeated in exec hints
    rungs: list[Any] | None = None    # successive halving: ``halving.RungView`` per rung
    # complete entries' provenance records (entry path -> record; None: written before 0.2.0)
    provenance: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    pbt: History | None = None        # population-based training: lineage and schedules

    def environment_warning(self) -> str | None:
        """A warning naming what differs when the entries come from several environments."""
        return mixed_warning(self.provenance.values(), f"{self.root}: entries")

    def entry_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ENTRY_STATES, 0)
        for e in self.entries:
            counts[e.state] += 1
        return counts

    def sample_counts(self) -> dict[str, int]:
        counts = {"ok": 0, "diverged": 0, "missing": 0}
        for s in self.samples:
            counts[s.status] += 1
        return counts

    @property
    def complete(self) -> bool:
        """Every entry done; with successive halving, of every rung (all decided)."""
        decided = self.rungs is None or all(v.entries is not None for v in self.rungs)
        return decided and all(e.state == "done" for e in self.entries)


def collect(plan: Plan, plan_id: str, root: Path, plan_source: str,
            output_root: Path | None = None) -> Collected:
    """Read every completed entry of ``plan`` under the sweep directory ``root`` (the
    ``output_root`` given, if one was)."""
    run_it = f"run the plan first: {exec_command_line(Path(plan_source), output_root)}"
    if not root.is_dir():
        raise HyperlaxError(str(root), "no such sweep directory",
                            f"{run_it}; or pass the --output-root it was run with")
    sweep = SweepDir(root)
    record = sweep.record()
    if record is None:
        raise HyperlaxError(str(root), "is not a hyperlax sweep directory (no "
                                       "hyperlax-sweep.json in it)",
                            "pass the --output-root this plan was run with")
    owner = Owner.of(plan, plan_id)
    if not owner.owns(record):
        raise another_plan(root, record, owner,
                           f"report the plan that ran it: hyperlax report {root / PLAN_COPY}")
    entries: list[EntryState] = []
    samples: dict[int, SampleResult] = {}
    provenance: dict[str, dict[str, Any] | None] = {}
    views = None
    if plan.halving is not None:  # every rung's entries, as far as the decisions tell them
        from hyperlax.exec.halving.decide import rung_views

        views = rung_views(plan, root, owner)
        rung_of = [(v.rung, e) for v in views for e in (v.entries or [])]
    else:
        rung_of = [(None, e) for e in plan.entries]
    for rung, entry in rung_of:
        state = sweep.state(entry.path)
        problem, corrupt = "", False
        if state == "done":
            try:
                problems = sweep.verify(entry.path, owner, entry.index)
                if problems:
                    corrupt = True
                    raise ValueError("; ".join(problems))
                # a later rung's result of a sample replaces its earlier one
                samples.update({i: _with_rung(r, rung)
                                for i, r in _read_entry(sweep, entry).items()})
                provenance[entry.path] = read_provenance(sweep.entry_dir(entry.path))
            except HyperlaxError as exc:  # the reader's: a FIFO, nesting, a link out...
                state, problem = "damaged", exc.render().splitlines()[0]
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                state, problem = "damaged", str(exc)
        entries.append(EntryState(entry, state, problem, corrupt))
        for i in entry.samples:
            samples.setdefault(i, SampleResult(index=i, entry=entry.path, status="missing"))
    result = Collected(plan, plan_id, root, entries,
                       [samples[s.index] for s in plan.samples], output_root, views,
                       provenance)
    if plan.pbt is not None and views is not None:
        result.pbt = history(plan, views, {i: r.eval_steps for i, r in samples.items()
                                           if r.eval_steps is not None})
    if not any(e.state == "done" for e in entries):
        counts = result.entry_counts()
        raise HyperlaxError(str(root), f"no completed entries yet ({_counts_text(counts)})",
                            run_it)
    return result


def _with_rung(result: SampleResult, rung: int | None) -> SampleResult:
    result.rung = rung
    return result


def _read_entry(sweep: SweepDir, entry: Entry) -> dict[int, SampleResult]:
    """The samples of a complete entry whose files ``SweepDir.verify`` found intact."""
    directory = sweep.entry_dir(entry.path)
    summary = read_json(directory / "summary.json", "entry summary", within=sweep.root)
    by_sample = {s["sample"]: s for s in summary["samples"]}
    npz = read_npz(directory / "curves.npz", "curves file", within=sweep.root)
    order = [int(i) for i in npz["sample"]]
    eval_steps = np.asarray(npz["eval_steps"])
    returns = np.where(npz["finite"], npz["returns"], np.nan).astype(np.float64)
    if sorted(order) != sorted(entry.samples) or set(by_sample) != set(entry.samples):
        raise ValueError("its samples are not the plan's samples for this entry")
    out = {}
    for pos, i in enumerate(order):
        record = by_sample[i]
        out[i] = SampleResult(
            index=i, entry=entry.path, status=record["status"], summary=record,
            eval_steps=eval_steps[pos] if eval_steps.ndim == 2 else eval_steps,
            returns=returns[pos], wall_seconds=summary.get("wall_seconds"))
    return out


def ranked(collected: Collected, metric: str) -> list[SampleResult]:
    """Samples that finished without diverging, best first (ties: lower index first). With
    successive halving, a sample that trained to a later rung (a larger budget) ranks above
    every sample that stopped earlier: their returns are not comparable."""
    scored = [s for s in collected.samples if s.status == "ok" and s.score(metric) is not None]
    return sorted(scored, key=lambda s: (-(s.rung or 0), -s.score(metric), s.index))


# --- the results table -----------------------------------------------------------------------

def sample_values(collected: Collected, index: int) -> dict[str, Any]:
    """Every hyperparameter's value for one sample: the plan's, and with PBT those of the last
    interval known (``History.last_values``)."""
    values = collected.plan.sample_values(index)
    if collected.pbt is not None:
        values.update(collected.pbt.last_values().get(index, {}))
    return values


def hyperparam_names(plan: Plan) -> list[str]:
    """Sampled hyperparameters first (the ones that vary), then the constants."""
    return plan.sampled + [r.name for r in plan.hyperparams if r.name not in plan.sampled]


def result_columns(plan: Plan) -> list[str]:
    # the last rung (PBT: interval) each sample finished; PBT's rows are marked as members
    rung = (["interval", "pbt_member"] if plan.pbt is not None else
            ["rung"] if plan.halving is not None else [])
    return ["sample", "status", "rank", *rung, "entry", "seed", "replicates",
            *hyperparam_names(plan),
            "final_return", "final_return_std", "best_return", "best_return_std",
            "diverged_at_step", "steps", "train_seconds", "compile_seconds", "wall_seconds"]


def result_rows(collected: Collected, metric: str) -> list[dict[str, Any]]:
    plan = collected.plan
    rank = {s.index: k + 1 for k, s in enumerate(ranked(collected, metric))}
    rows = []
    for s in collected.samples:
        summary = s.summary or {}
        values = sample_values(collected, s.index)
        staged = ({"interval": s.rung, "pbt_member": True} if plan.pbt is not None else
                  {"rung": s.rung} if plan.halving is not None else {})
        row = {"sample": s.index, "status": s.status, "rank": rank.get(s.index), **staged,
               "entry": s.entry, "seed": plan.samples[s.index].seed,
               "replicates": plan.settings.seeds_per_sample}
        row.update({name: values[name] for name in hyperparam_names(plan)})
        for key in ("final_return", "final_return_std", "best_return", "best_return_std",
                    "diverged_at_step", "steps", "train_seconds", "compile_seconds"):
            row[key] = summary.get(key)
        row["wall_seconds"] = s.wall_seconds
        rows.append(row)
    return rows


def results_csv(collected: Collected, metric: str) -> str:
    columns = result_columns(collected.plan)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in result_rows(collected, metric):
        writer.writerow([csv_cell(row[c]) for c in columns])
    return buf.getvalue()


def csv_cell(value: Any) -> str:
    """Exact and unambiguous: floats round-trip, lists and booleans as JSON, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- the block that pins the best ------------------------------------------------------------

def pinned_names(plan: Plan) -> list[str]:
    """What a follow-up manifest must pin to reproduce a sample: everything this sweep sampled,
    and everything its manifest already pinned (recipe defaults come with the recipe)."""
    return [r.name for r in plan.hyperparams if r.name in plan.sampled or r.source == "fixed"]


def pinned_values(plan: Plan, sample: int) -> dict[str, Any]:
    """Sample ``sample``'s value of each of ``pinned_names(plan)``."""
    values = plan.sample_values(sample)
    return {name: values[name] for name in pinned_names(plan)}


def best_fixed(collected: Collected, best: SampleResult) -> dict[str, Any]:
    """What pins the best; with PBT, what its schedule (``schedule_block``) does not."""
    values = pinned_values(collected.plan, best.index)
    if collected.pbt is not None:
        scheduled = set(collected.pbt.names())
        values = {name: v for name, v in values.items() if name not in scheduled}
    return values


def fixed_toml(comments: list[str], values: dict[str, Any]) -> str:
    """A ``[fixed]`` block pinning ``values``, under ``comments`` (whole ``# ...`` lines)."""
    lines = [*comments, "[fixed]"]
    lines += [f"{toml_key(name)} = {toml_value(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def fixed_block(collected: Collected, best: SampleResult, metric: str) -> str:
    """The block to paste: ``[fixed]``, or with PBT ``schedule_block``."""
    if collected.pbt is not None:
        return schedule_block(collected, best, metric)
    s = collected.plan.settings
    return fixed_toml([_best_comment(collected, best, metric),
                       f"# found with total_timesteps = {s.total_timesteps} in [sweep]"],
                      best_fixed(collected, best))


def _best_comment(collected: Collected, best: SampleResult, metric: str) -> str:
    s = collected.plan.settings
    return (f"# sample {best.index} of plan {collected.plan_id[:12]} ({s.name}: {s.recipe} on "
            f"{s.env}), {metric} return {_num(best.score(metric))} ± "
            f"{_num(best.spread(metric))} over {s.seeds_per_sample} replicate(s)")


def schedule_block(collected: Collected, best: SampleResult, metric: str) -> str:
    """A PBT sweep's best member as a ``[pbt]`` block whose ``schedule`` replays the values its
    weights trained with, interval by interval (``History.schedule``), and a ``[fixed]`` block
    of the rest: a manifest with both trains that schedule again, without exploit or explore."""
    history, pbt, s = collected.pbt, collected.plan.pbt, collected.plan.settings
    assert history is not None and pbt is not None
    stages = history.schedule(best.index)
    comments = [_best_comment(collected, best, metric),
                f"# its schedule, through the weights it carried, found with total_timesteps = "
                f"{s.total_timesteps} and num_evaluations = {s.num_evaluations} in [sweep]"]
    if len(stages) < history.intervals:
        comments.append(f"# PARTIAL: {len(stages)} of {history.intervals} intervals decided; "
                        "finish the sweep for the whole schedule")
    comments.append("# to train it again: paste into a manifest whose [space] is empty and "
                    "num_samples = 1 (seeds_per_sample for several seeds), then hyperlax plan "
                    "and hyperlax exec")
    # a replay schedules exactly its explore names: every name the member's values carry,
    # since a copy takes the winner's whole configuration, not only what explore changed
    lines = [*comments, "[pbt]", f"interval = {toml_value(pbt.interval)}",
             f"explore = {toml_value(sorted(history.names()))}", "schedule = ["]
    lines += [f"  {inline_table(stage.values)},  # interval {stage.interval}, from env step "
              f"{stage.step:,}, weights of sample {stage.weights_of}" for stage in stages]
    return "\n".join(lines + ["]", ""]) + "\n" + fixed_toml([], best_fixed(collected, best))


def inline_table(values: dict[str, Any]) -> str:
    """``values`` as one TOML inline table."""
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items()) \
        + " }"


# --- text for the terminal -------------------------------------------------------------------

def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, bool)) or value is None:
        return json.dumps(value)
    return str(value)


def _counts_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    text = f"{counts['done']}/{total} entries done, {counts['partial']} partial, " \
           f"{counts['pending']} pending"
    return text + (f", {counts['damaged']} damaged" if counts.get("damaged") else "")


def status_lines(collected: Collected, plan_source: str, limit: int = 10) -> list[str]:
    plan, s = collected.plan, collected.plan.settings
    sc = collected.sample_counts()
    lines = [f"sweep {s.name}: {s.recipe} ({s.algorithm}) on {s.env}, "
             f"{s.total_timesteps:,} env steps per run, plan {collected.plan_id[:12]}",
             f"{'complete' if collected.complete else 'PARTIAL'}: "
             f"{_counts_text(collected.entry_counts())}; samples: {sc['ok']} ok, "
             f"{sc['diverged']} diverged, {sc['missing']} missing of {len(plan.samples)}"]
    if not collected.complete:
        missing = [x.index for x in collected.samples if x.status == "missing"]
        lines.append(f"  missing samples: {ranges_text(missing)}")
        unfinished = [e for e in collected.entries if e.state != "done"]
        for e in unfinished[:limit]:
            why = f" ({e.problem})" if e.problem else ""
            lines.append(f"  {e.state:<8} {e.entry.path}{why}")
        if len(unfinished) > limit:
            lines.append(f"  ... {len(unfinished) - limit} more")
        corrupt = any(e.corrupt for e in collected.entries)
        command = exec_command_line(Path(plan_source), collected.output_root,
                                    redo_corrupt=corrupt)
        lines.append(f"  finish it with: {command}  (completed entries are skipped"
                     + ("; --redo-corrupt re-runs the damaged ones)" if corrupt else ")"))
    diverged = [x.index for x in collected.samples if x.status == "diverged"]
    if diverged:
        lines.append(f"  diverged samples (non-finite return): {ranges_text(diverged)}")
    warning = collected.environment_warning()
    if warning:
        lines.append(f"  {warning}")
    return lines


def top_table(collected: Collected, top: list[SampleResult], metric: str) -> list[str]:
    """The top samples as columns, hyperparameters as rows: readable with many of them."""
    plan = collected.plan
    other = "best" if metric == "final" else "final"
    reps = plan.settings.seeds_per_sample
    halving = ("; PBT members, with the values of the last interval" if plan.pbt is not None
               else ", the furthest rung first" if plan.halving is not None else "")
    header = [f"top {len(top)} of {len(ranked(collected, metric))} finished samples by "
              f"{metric} return{halving} (mean ± std over {reps} replicate"
              f"{'s' if reps > 1 else ''})"]
    rows: list[tuple[str, list[str]]] = [
        ("", [f"#{k + 1}" for k in range(len(top))]),
        ("sample", [str(s.index) for s in top]),
        (f"{metric} return", [f"{_num(s.score(metric))} ± {_num(s.spread(metric))}"
                              for s in top]),
        (f"{other} return", [_num(s.score(other)) for s in top]),
    ]
    for name in plan.sampled:
        rows.append((name, [value_text(sample_values(collected, s.index)[name])
                            for s in top]))
    label_w = max(len(label) for label, _ in rows)
    col_w = [max(len(cells[k]) for _, cells in rows) for k in range(len(top))]
    for label, cells in rows:
        line = "  " + label.ljust(label_w) + "  " + "  ".join(
            c.rjust(w) for c, w in zip(cells, col_w))
        header.append(line.rstrip())
    return header


def report_document(collected: Collected, metric: str, top_k: int,
                    files: list[str]) -> dict[str, Any]:
    """Everything ``report`` says, for machines (``--format json`` and report.json)."""
    plan, s = collected.plan, collected.plan.settings
    order = ranked(collected, metric)
    best = order[0] if order else None
    return {
        "plan_id": collected.plan_id,
        "sweep": {"name": s.name, "recipe": s.recipe, "algorithm": s.algorithm, "env": s.env,
                  "num_samples": s.num_samples, "seeds_per_sample": s.seeds_per_sample,
                  "total_timesteps": s.total_timesteps, "mode": s.mode},
        "sweep_dir": str(collected.root),
        "complete": collected.complete,
        "entries": collected.entry_counts(),
        "unfinished_entries": [{"path": e.entry.path, "state": e.state, "problem": e.problem}
                               for e in collected.entries if e.state != "done"],
        "samples": collected.sample_counts(),
        "metric": metric,
        "top": [s.index for s in order[:top_k]],
        "best": None if best is None else {
            "sample": best.index, "score": best.score(metric), "spread": best.spread(metric),
            "fixed": best_fixed(collected, best),
            "fixed_toml": fixed_block(collected, best, metric),
            # PBT: the values its weights trained with, interval by interval
            **({} if collected.pbt is None else {"schedule": [
                stage.values for stage in collected.pbt.schedule(best.index)]})},
        "columns": result_columns(plan),
        "rows": result_rows(collected, metric),
        "files": files,
        "environments": [{"entries": n, **record}
                         for record, n in groups(collected.provenance.values())],
        "environment_warning": collected.environment_warning(),
    }
