"""Human- and machine-readable accounts of a plan: ``show``, ``show --samples`` and ``check``
(what differs between two plans, and whether their results do)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from typing import Any

import msgspec

from hyperlax.compiler.cost import human_bytes, plan_carry_bytes, plan_costs
from hyperlax.compiler.lower import plan_summary
from hyperlax.hyperparams import ALGORITHMS, HyperParam
from hyperlax.plan.changes import changes_between
from hyperlax.plan.format import Plan, populations, results_id


def describe(plan: Plan, plan_id: str, fmt: str) -> str:
    summary = plan_summary(plan, plan_id)
    widths = Counter(sb.width for e in plan.entries for sb in e.sub_batches)
    costs = plan_costs(plan)
    replicates = plan.settings.seeds_per_sample
    peak = max(cost.call_bytes(width, replicates) for cost, width in costs)
    runs = Counter(sample.structure for sample in plan.samples)
    total_steps = sum(cost.steps_per_run * runs[i] * replicates
                      for i, (cost, _) in enumerate(costs))
    halving_steps = _halving_steps(plan, total_steps)
    carries = plan_carry_bytes(plan) if plan.checkpoint_every or plan.halving else None
    if fmt == "json":
        return json.dumps({
            "plan_id": plan_id,
            "hyperlax_version": plan.hyperlax_version,
            "manifest": plan.manifest_name,
            "manifest_sha256": plan.manifest_sha256,
            "settings": msgspec.to_builtins(plan.settings),
            "summary": summary,
            "batch_width_histogram": {str(k): v for k, v in sorted(widths.items())},
            "estimated_cost": {"env_steps": total_steps, "programs": summary["compiles"],
                               "largest_call_bytes": peak,
                               "structures": [{"structure": i, "widest_call": width,
                                               "call_bytes": cost.call_bytes(width, replicates),
                                               **dataclasses.asdict(cost)}
                                              for i, (cost, width) in enumerate(costs)]},
            **({"checkpoint_every": plan.checkpoint_every} if plan.checkpoint_every else {}),
            **({"halving": {**msgspec.to_builtins(plan.halving),
                            "estimated_env_steps": halving_steps}}
               if plan.halving and not plan.pbt else {}),
            **({"pbt": {**msgspec.to_builtins(plan.pbt),
                        "metric": plan.halving.metric,
                        "intervals": [r.evaluations for r in plan.halving.rungs],
                        "populations": _populations(plan)}} if plan.pbt else {}),
            **({"estimated_checkpoint_bytes": carries} if carries else {}),
            "hyperparams": msgspec.to_builtins(plan.hyperparams),
            **({"not_in_plan": {n: p.default for n, p in absent.items()}}
               if (absent := absent_hyperparams(plan)) else {}),
            "structures": msgspec.to_builtins(plan.structures),
            "entries": [{"index": e.index, "path": e.path, "group": e.group,
                         "samples": e.samples,
                         "sub_batches": msgspec.to_builtins(e.sub_batches)}
                        for e in plan.entries],
        }, indent=2) + "\n"
    if fmt == "csv":
        return samples_table(plan, "csv")
    s = plan.settings
    out = [f"plan {plan_id}",
           f"  manifest   {plan.manifest_name} (sha256 {plan.manifest_sha256[:12]}), "
           f"hyperlax {plan.hyperlax_version}",
           f"  sweep      {s.name}: {s.recipe} ({s.algorithm}) on {s.env}",
           f"  sampling   {s.num_samples} samples, {s.sampling}, seed {s.seed}, "
           f"{s.seeds_per_sample} seed(s) per sample"
           + (f", two-level: {s.structures} structural points" if s.structures else ""),
           f"  budget     {s.total_timesteps:,} env steps per run, {s.num_evaluations} "
           f"evaluations of {s.eval_episodes} episodes",
           f"  execution  {s.mode}, batch size {s.batch_size}, output root {s.output_root}",
           f"  cost       {summary['structures']} distinct structures, {summary['entries']} "
           f"entries, {summary['compiles']} compiles, {summary['padding_lanes']} padding lanes",
           f"  work       {total_steps:,} env steps in all; {summary['compiles']} programs to "
           f"compile (one per structure and batch width); largest call ~{human_bytes(peak)} "
           "(estimated)",
           "  batch widths (width: calls) "
           + ", ".join(f"{w}: {n}" for w, n in sorted(widths.items()))]
    out += (_pbt_lines(plan) if plan.pbt else _halving_lines(plan, halving_steps, total_steps)
            ) + _checkpoint_lines(plan, carries)
    out += ["", "hyperparameters"]
    absent = absent_hyperparams(plan)
    name_width = max(len(n) for n in [r.name for r in plan.hyperparams] + list(absent))
    for r in plan.hyperparams:
        what = _dist_text(r.distribution) if r.distribution else json.dumps(r.value)
        out.append(f"  {r.name:<{name_width}}  {r.role:<10}  {r.source:<14}  {what}")
    for name, param in absent.items():
        out.append(f"  {name:<{name_width}}  {param.role:<10}  {'not in plan':<14}  "
                   f"{json.dumps(param.default)}")
    if absent:
        out.append("  (not in plan: the plan was written before these existed, or leaves them "
                   "at their default; they train with the default, which does what hyperlax "
                   "did before they existed)")
    out += ["", "groups (samples that share a structure): estimated memory of its widest "
                "call, parameters, env and gradient steps per run"]
    sizes = Counter(sample.structure for sample in plan.samples)
    for st, (cost, width) in list(zip(plan.structures, costs))[:20]:
        call = cost.call_bytes(width, s.seeds_per_sample)
        out.append(f"  group {st.index}: {sizes[st.index]} samples  "
                   + _structure_text(st.values, plan))
        out.append(f"    ~{human_bytes(call)} per call ({width} x {s.seeds_per_sample} lanes), "
                   f"{cost.params:,} parameters, {cost.steps_per_run:,} env steps and "
                   f"{cost.gradient_steps:,} gradient steps per run")
    if len(plan.structures) > 20:
        out.append(f"  ... {len(plan.structures) - 20} more groups")
    out += ["", "entries"]
    for e in plan.entries[:20]:
        subs = ", ".join(f"{len(sb.samples)}/{sb.width}" for sb in e.sub_batches)
        out.append(f"  {e.path}  samples {ranges_text(e.samples)}  calls (samples/width) {subs}")
    if len(plan.entries) > 20:
        out.append(f"  ... {len(plan.entries) - 20} more entries")
    return "\n".join(out) + "\n"


def absent_hyperparams(plan: Plan) -> dict[str, HyperParam]:
    """Hyperparameters of the plan's algorithm that the plan has no row for, by name: declared
    after the plan was written, or left out at their default (``HyperParam.since``)."""
    rows = {r.name for r in plan.hyperparams}
    return {n: p for n, p in ALGORITHMS[plan.settings.algorithm].items() if n not in rows}


def _halving_steps(plan: Plan, total_steps: int) -> int | None:
    """Env steps of a halving plan: each rung trains its samples from the rung before's budget
    to its own (later rungs at the mean steps per sample: which samples is not known yet)."""
    if plan.halving is None:
        return None
    per_sample = total_steps / max(len(plan.samples), 1)
    total, before = 0.0, 0
    for rung in plan.halving.rungs:
        total += rung.samples * per_sample * (rung.evaluations - before) / \
            plan.settings.num_evaluations
        before = rung.evaluations
    return int(total)


def _populations(plan: Plan) -> list[dict[str, Any]]:
    """Each PBT population (a structure's samples): its size and its quantile's."""
    assert plan.pbt is not None
    return [{"structure": s, "members": len(m), "quantile": plan.pbt.quantile(len(m))}
            for s, m in sorted(populations(plan.samples).items())]


def _pbt_lines(plan: Plan) -> list[str]:
    """What population-based training will do, and what it costs beyond the plain sweep."""
    pbt, stages = plan.pbt, plan.halving
    assert pbt is not None and stages is not None
    total = plan.settings.num_evaluations
    pops = _populations(plan)
    who = (f"{len(pops)} population{'s' if len(pops) > 1 else ''} (one per structure) of "
           + ", ".join(str(p["members"]) for p in pops) + " samples")
    last = stages.rungs[-1].evaluations - stages.rungs[-2].evaluations
    steps = f"{len(stages.rungs)} intervals of {pbt.interval} evaluations" + (
        f" (the last {last})" if last != pbt.interval else "")
    if pbt.schedule is not None:
        return [f"  pbt        a replayed schedule: {len(stages.rungs)} intervals of "
                f"{pbt.interval} evaluations of {total}; every sample trains interval k with "
                "row k of the schedule of " + ", ".join(pbt.explore) + "; nothing is "
                "exploited or explored",
                "             cost: the plain sweep's env steps and programs (no compile "
                "more); carries kept between intervals"]
    moved = ", ".join(f"{p['quantile']} of {p['members']}" for p in pops)
    factors = " or ".join(f"x{f:g}" for f in pbt.perturbation_factors)
    return [f"  pbt        population-based training: {who}; {steps} of {total}",
            f"             after each interval but the last, the bottom {moved} by "
            f"{stages.metric} (over the interval) take the training state of a member of the "
            "top quantile and its values of " + ", ".join(pbt.explore) + f", each {factors} "
            "(clipped to its distribution) or, with probability "
            f"{pbt.resample_probability:g}, drawn anew",
            f"             cost: the plain sweep's env steps and programs (no compile more); "
            f"{len(stages.rungs) - 1} decisions written once in rungs/, carries kept between "
            "intervals"]


def _halving_text(plan: Plan) -> str:
    halving = plan.halving
    if halving is None:
        return "none"
    if plan.pbt is not None:
        pbt = plan.pbt
        return (f"PBT every {pbt.interval} evaluations by {halving.metric}, quantile "
                f"{pbt.quantile_fraction:g}, factors {pbt.perturbation_factors}, resample "
                f"{pbt.resample_probability:g}, explore {pbt.explore}")
    return (f"rungs at {[r.evaluations for r in halving.rungs]} evaluations, eta "
            f"{halving.eta}, by {halving.metric}")


def _halving_lines(plan: Plan, steps: int | None, full: int) -> list[str]:
    halving = plan.halving
    if halving is None:
        return []
    total = plan.settings.num_evaluations
    path = " -> ".join(f"{r.samples} to {r.evaluations}/{total}" for r in halving.rungs)
    return [f"  halving    {len(halving.rungs)} rungs, the top 1/{halving.eta} by "
            f"{halving.metric} go on: samples to evaluations {path}",
            f"             ~{steps:,} env steps (estimated; {full:,} without halving); "
            "survivors continue from their checkpoints in new batches"]


def _checkpoint_lines(plan: Plan, carries: dict[str, int] | None) -> list[str]:
    if carries is None:
        return []
    lines = []
    if plan.checkpoint_every:
        lines.append(f"  checkpoint every {plan.checkpoint_every} evaluations: ~"
                     f"{human_bytes(carries['entry'])} for the largest entry, ~"
                     f"{human_bytes(carries['periodic'])} for all entries at once "
                     "(estimated; each removed once its entry completes)")
    if "rung_ends" in carries:
        stage = "interval" if plan.pbt else "rung"
        lines.append(f"  {stage} ends  ~{human_bytes(carries['rung_ends'])} of carries kept "
                     f"with the results for the next {stage}s (estimated)")
    return lines


def _structure_text(values: dict[str, Any], plan: Plan) -> str:
    varying = {r.name for r in plan.hyperparams if r.distribution is not None}
    shown = {k: v for k, v in values.items() if k in varying} or values
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in shown.items())


def _dist_text(d: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in d.items() if k != "dist" and v is not None)
    return f"{d['dist']}({args})"


def ranges_text(indices: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'."""
    parts, start = [], None
    for i, x in enumerate(indices):
        if start is None:
            start = x
        if i + 1 == len(indices) or indices[i + 1] != x + 1:
            parts.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ",".join(parts)


def sample_rows(plan: Plan) -> list[dict[str, Any]]:
    return [{"sample": s.index, "seed": s.seed, "structure": s.structure, **s.values}
            for s in plan.samples]


def samples_table(plan: Plan, fmt: str) -> str:
    rows = sample_rows(plan)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    header = ["sample", "seed", "structure", *plan.sampled]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row[h]) for h in header])
        return buf.getvalue()
    cells = [[_cell(row[h]) for h in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, bool)):
        return json.dumps(value)
    return str(value)


def differences(old: Plan, new: Plan, limit: int = 10) -> list[str]:
    """What changed between two plans, most telling first."""
    lines: list[str] = []
    if old.hyperlax_version != new.hyperlax_version:
        lines.append(f"hyperlax version: {old.hyperlax_version} -> {new.hyperlax_version}")
    if old.manifest_name != new.manifest_name:
        lines.append(f"manifest file name: {old.manifest_name} -> {new.manifest_name}")
    if old.manifest_sha256 != new.manifest_sha256:
        lines.append("manifest text changed since the plan was written")
    if old.recipe_text != new.recipe_text:
        lines.append("recipe text changed since the plan was written")
    for field in old.settings.__struct_fields__:
        a, b = getattr(old.settings, field), getattr(new.settings, field)
        if a != b:
            lines.append(f"settings.{field}: {a!r} -> {b!r}")
    if old.checkpoint_every != new.checkpoint_every:
        lines.append(f"checkpoint_every: {old.checkpoint_every} -> {new.checkpoint_every}")
    if old.halving != new.halving or old.pbt != new.pbt:
        what = "staged training" if old.pbt or new.pbt else "successive halving"
        lines.append(f"{what}: {_halving_text(old)} -> {_halving_text(new)}")
    old_rows = {r.name: r for r in old.hyperparams}
    for r in new.hyperparams:
        o = old_rows.get(r.name)
        if o != r:
            was = "absent" if o is None else (_dist_text(o.distribution) if o.distribution
                                              else json.dumps(o.value))
            now = _dist_text(r.distribution) if r.distribution else json.dumps(r.value)
            lines.append(f"hyperparameter {r.name}: {was} -> {now}")
    changed = [i for i, (a, b) in enumerate(zip(old.samples, new.samples)) if a != b]
    if len(old.samples) != len(new.samples):
        lines.append(f"samples: {len(old.samples)} -> {len(new.samples)}")
    if changed:
        lines.append(f"{len(changed)} samples differ, first: sample {changed[0]}")
    if len(old.entries) != len(new.entries) or old.entries != new.entries:
        lines.append(f"entries: {len(old.entries)} -> {len(new.entries)}"
                     + ("" if len(old.entries) != len(new.entries) else " (same count, "
                        "different contents)"))
    if not lines:
        lines.append("the plans differ in encoding only (written by another hyperlax version?)")
    return lines[:limit]


def difference_kind(old: Plan, new: Plan) -> str:
    """Whether two differing plans would produce different results: a sweep directory belongs
    to a results id, so completed results survive an edit that keeps it."""
    if results_id(old) == results_id(new):
        return ("only the manifest's text differs (comments/formatting/file name): the results "
                "are the same; completed results stay valid")
    return "the results differ"


def hyperlax_change_lines(old: Plan, new: Plan) -> list[str]:
    """For ``check``: when a plan written by another hyperlax differs from its manifest planned
    now, whether the manifest or hyperlax changed, and which changes of hyperlax can explain it
    (``plan.changes``, CHANGELOG.md)."""
    if old.hyperlax_version == new.hyperlax_version:
        return []
    same_manifest = old.manifest_sha256 == new.manifest_sha256
    lines = [f"this plan was written by hyperlax {old.hyperlax_version}, this is "
             f"{new.hyperlax_version}" + (": the manifest is unchanged, so hyperlax made the "
                                          "difference" if same_manifest else
                                          "; besides the manifest's edits, hyperlax changed")]
    found = changes_between(old, new)
    lines += [f"  - {c.version}: {c.text}" for c in found] or \
        ["  - no recorded change explains it: please report it (CHANGELOG.md lists them all)"]
    lines.append("the plan file still runs as it is (every older plan is read); re-plan only to "
                 "adopt the changes")
    return lines
