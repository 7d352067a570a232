"""Group samples by structure and slice them into entries, then assemble the Plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any


import hyperlax
from hyperlax.compiler.cost import DEFAULT_WARN_GIB, cost_review
from hyperlax.compiler.halving import checkpoint_problems, halving_problems
from hyperlax.compiler.pbt import pbt_problems, pbt_training, population_problems
from hyperlax.compiler.sample import (grid_unit_points, saltelli_points, sample_seed,
                                      sobol_balance_warning,
                                      structured_points,
                                      unit_points, values_at)
from hyperlax.environments import env_dirname
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import CONFIGS
from hyperlax.manifest.distributions import is_log_scale, to_builtins
from hyperlax.manifest.resolve import Resolved, resolve_file, sha256_text
from hyperlax.plan.check import check_plan
from hyperlax.plan.format import (Entry, Group, HyperParamRow, Plan, Sample, Structure,
                               SubBatch, Training, pow2_width)

MAX_REPORTED = 5


def compile_manifest(path: Path, warn_gib: float = DEFAULT_WARN_GIB) -> tuple[Plan, list[str]]:
    """(plan, warnings) for the manifest at ``path``; raises HyperlaxError on bad input."""
    return lower(resolve_file(path), manifest_name=path.name, warn_gib=warn_gib)


def lower(resolved: Resolved, manifest_name: str,
          warn_gib: float = DEFAULT_WARN_GIB) -> tuple[Plan, list[str]]:
    settings = resolved.settings
    source = manifest_name
    warnings = [w for w in [sobol_balance_warning(settings.sampling, settings.num_samples)] if w]
    sweep = resolved.manifest.sweep
    halving, halving_issues, halving_warnings = halving_problems(sweep, settings)
    halving_issues += checkpoint_problems(sweep, settings)
    halving_issues += pbt_problems(resolved.manifest, settings, resolved.table, resolved.space)
    if halving_issues:
        raise HyperlaxError(source, halving_issues)
    warnings += halving_warnings

    # Hyperparameters added since 0.1 and left at their (behaviour-preserving) default are not
    # written: adding one changes no existing sweep's plan (``HyperParam.since``).
    omitted = {n for n, p in resolved.table.items()
               if n in resolved.constants and p.omitted(resolved.constants[n])}
    written = {n: p for n, p in resolved.table.items() if n not in omitted}
    constants = {n: v for n, v in resolved.constants.items() if n not in omitted}
    structural = [n for n, p in written.items() if p.role == "structural"]
    if resolved.listed is not None:  # given values, no unit-cube points
        points = [None] * len(resolved.listed)
    elif settings.sampling == "grid":
        points = grid_unit_points(resolved.space)
    elif settings.sampling == "saltelli":
        dims = len(resolved.space)
        points = saltelli_points(settings.num_samples // (dims + 2), dims, settings.seed)
    elif settings.structures is None:
        points = unit_points(settings.sampling, settings.num_samples, len(resolved.space),
                             settings.seed)
    else:
        points, distinct = structured_points(settings.sampling, settings.num_samples,
                                             resolved.space, set(structural),
                                             settings.structures, settings.seed)
        if distinct < settings.structures:
            warnings.append(f"structures = {settings.structures} drew {distinct} distinct "
                            "structures (repeated combinations of categorical values collapse)")
    structure_index: dict[tuple, int] = {}
    structures: list[Structure] = []
    samples: list[Sample] = []
    problems: dict[str, list[int]] = {}  # message -> samples it applies to
    described: dict[str, str] = {}
    for i, point in enumerate(points):
        values = resolved.listed[i] if point is None else values_at(point, resolved.space)
        full = {**resolved.constants, **values}
        for problem in sample_problems(settings, full):
            problems.setdefault(problem, []).append(i)
            described.setdefault(problem, _describe(values, structural))
        shape = {n: full[n] for n in structural}
        key = tuple(tuple(v) if isinstance(v, list) else v for v in shape.values())
        if key not in structure_index:
            structure_index[key] = len(structures)
            structures.append(Structure(index=len(structures), values=shape))
        samples.append(Sample(index=i, seed=sample_seed(settings.seed, i),
                              structure=structure_index[key],
                              unit=[] if point is None else [float(u) for u in point],
                              values=values))
    if problems:
        shown = []
        for message, indices in list(problems.items())[:MAX_REPORTED]:
            if len(indices) == 1:
                shown.append((f"sample {indices[0]}", f"{message}; {described[message]}"))
            elif len(indices) == len(points):
                shown.append(("every sample", message))
            else:
                shown.append((f"{len(indices)} samples ({_ranges(indices)})",
                              f"{message}; e.g. sample {indices[0]}: {described[message]}"))
        if len(problems) > MAX_REPORTED:
            shown.append(("", f"... and {len(problems) - MAX_REPORTED} more problems"))
        error = HyperlaxError(source, shown, "narrow the [space] ranges (or pin a value in "
                                             "[fixed]) so every combination is valid")
        error.budget = _budget_needed(resolved, problems, samples)
        raise error

    pbt = None
    if resolved.manifest.pbt is not None:
        lonely = [] if resolved.manifest.pbt.schedule else population_problems(samples)
        if lonely:
            raise HyperlaxError(source, lonely)
        halving, pbt = pbt_training(resolved.manifest, settings)
    groups = _groups(samples, len(structures))
    entries = _entries(settings, samples, groups)
    rows = [HyperParamRow(
        name=name, type=param.type, role=param.role, source=resolved.sources[name],
        value=resolved.constants.get(name),
        distribution=to_builtins(resolved.space[name]) if name in resolved.space else None,
        log_scale=name in resolved.space and is_log_scale(resolved.space[name]),
    ) for name, param in written.items()]
    plan = Plan(
        hyperlax_version=hyperlax.__version__, manifest_name=manifest_name,
        manifest_text=resolved.manifest_text, manifest_sha256=sha256_text(resolved.manifest_text),
        recipe_text=resolved.recipe_text, settings=settings, hyperparams=rows,
        constants=constants,
        sampled=list(resolved.listed[0]) if resolved.listed else list(resolved.space),
        structures=structures,
        samples=samples, groups=groups, entries=entries,
        samples_file_sha256=resolved.samples_file_sha256,
        training=Training(checkpoint_every=sweep.checkpoint_every, halving=halving, pbt=pbt)
        if sweep.checkpoint_every or halving else None,
    )
    # The plan format's own checks, the ones exec applies to any plan file it reads (paths
    # inside the output root among them): refuse here what exec would refuse there.
    check_plan(plan, source)
    # What cannot run at all (counter overflow, terabytes per call) is refused now, not
    # minutes into exec; what is merely expensive is a warning.
    cost_problems, cost_warnings = cost_review(plan, warn_gib)
    if cost_problems:
        raise HyperlaxError(source, cost_problems[:MAX_REPORTED],
                            "shrink what the message names; hyperlax show prints every "
                            "structure's estimated memory and work")
    return plan, warnings + cost_warnings


def _budget_needed(resolved: Any, problems: dict[str, list[int]],
                   samples: list[Sample]) -> dict[str, int] | None:
    """For samples refused because the budget gives an evaluation before any update: the
    largest env steps per update among them, and the recipe's own budget, so a front end can
    name the smallest budget that works in its own terms (the seed commands' flags). None when
    no sample was refused for that."""
    from hyperlax.manifest.format import decode_recipe

    flagged = {i for message, indices in problems.items()
               if message.startswith("total_timesteps = ") for i in indices}
    if not flagged:
        return None
    config = CONFIGS[resolved.settings.algorithm]
    per_update = max(config.from_values({**resolved.constants, **samples[i].values})
                     .steps_per_update() for i in flagged)
    recipe = decode_recipe(resolved.recipe_text, f"recipe {resolved.settings.recipe}").settings
    return {"steps_per_update": per_update, "num_evaluations": resolved.settings.num_evaluations,
            "recipe_total_timesteps": recipe.total_timesteps,
            "recipe_num_evaluations": recipe.num_evaluations}


def sample_problems(settings: Any, values: dict[str, Any]) -> list[str]:
    config = CONFIGS[settings.algorithm].from_values(values)
    problems = config.cross_field_problems()
    per_update = config.steps_per_update()
    needed = per_update * settings.num_evaluations
    if settings.total_timesteps < needed:
        problems.append(f"total_timesteps = {settings.total_timesteps} is less than "
                        f"num_evaluations x num_envs x rollout_length = {needed}, so some "
                        "evaluation would come before any update")
    return problems


def _ranges(indices: list[int]) -> str:
    parts = [str(i) for i in indices[:MAX_REPORTED]]
    return ", ".join(parts) + (", ..." if len(indices) > MAX_REPORTED else "")


def _describe(values: dict[str, Any], structural: list[str]) -> str:
    shown = {n: v for n, v in values.items() if n in structural}
    if not shown:
        return "no structural hyperparameter is sampled"
    return "sampled " + ", ".join(f"{n} = {v}" for n, v in shown.items())


def _groups(samples: list[Sample], num_structures: int) -> list[Group]:
    members: list[list[int]] = [[] for _ in range(num_structures)]
    for s in samples:
        members[s.structure].append(s.index)
    return [Group(index=i, structure=i, samples=m) for i, m in enumerate(members)]


def _entries(settings: Any, samples: list[Sample], groups: list[Group]) -> list[Entry]:
    base = f"{settings.recipe}/{env_dirname(settings.env)}/samples"
    size = settings.batch_size
    entries: list[Entry] = []

    def add(indices: list[int], group: int | None, widths: dict[int, int]) -> None:
        by_structure: dict[int, list[int]] = {}
        for i in indices:
            by_structure.setdefault(samples[i].structure, []).append(i)
        subs = [SubBatch(structure=s, samples=m, width=widths.get(s) or _pow2_width(len(m), s))
                for s, m in by_structure.items()]
        name = f"run_{len(entries):04d}" if settings.mode == "sequential" else \
            f"batch_{len(entries):05d}"
        entries.append(Entry(index=len(entries), path=f"{base}/{name}", group=group,
                             samples=indices, sub_batches=subs))

    structure_sizes = [len(g.samples) for g in groups]

    def _pow2_width(n: int, structure: int) -> int:
        # capped at the batch size and at the structure's sample count, so a structure
        # compiles at most ~log2(batch) times
        return pow2_width(n, min(size, structure_sizes[structure]))

    if settings.mode == "sequential":
        for s in samples:
            add([s.index], None, {s.structure: 1})
    elif settings.mode == "grouped":
        for g in groups:
            width = min(size, len(g.samples))  # every batch of a group: one compiled function
            for start in range(0, len(g.samples), size):
                add(g.samples[start:start + size], g.index, {g.structure: width})
    else:
        order = [s.index for s in samples]
        for start in range(0, len(order), size):
            add(order[start:start + size], None, {})
    return entries


def plan_summary(plan: Plan, plan_id: str) -> dict[str, Any]:
    calls = {(sb.structure, sb.width) for e in plan.entries for sb in e.sub_batches}
    lanes = sum(sb.width for e in plan.entries for sb in e.sub_batches)
    return {
        "samples": len(plan.samples),
        "structures": len(plan.structures),
        "groups": len(plan.groups),
        "entries": len(plan.entries),
        "compiles": len(calls),
        "padding_lanes": lanes - len(plan.samples),
        "plan_id": plan_id,
    }


