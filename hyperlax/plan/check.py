"""A decoded plan's content, checked before anything runs. JAX-free.

A plan's id only proves that the file is the one its id names; anyone can edit a plan and
recompute the id. So every plan read (``exec``, ``status``, ``show``, ``report``) is also checked
for what the runtime relies on: known algorithm and environment, settings in range, every index
in range, every value legal for its hyperparameter, each sample's structure matching its values,
sub-batches that partition their entry, and entry paths that are plain relative paths, distinct,
not nested in one another and clear of the sweep directory's own files. Problems come back
located (``entries[3].path``) so a damaged or hostile plan is refused with exit status 2 and
nothing touched.
"""

from __future__ import annotations

import math

from typing import Any, get_args

import hyperlax

from hyperlax.environments import ENVS, unknown_env_message
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import ALGORITHMS, CONFIGS
from hyperlax.hyperparams.declare import env_value_problem, value_problems
from hyperlax.plan.format import (Plan, RungMetric, chunk_group, interval_ends, populations,
                                  rung_sizes)
from hyperlax.storage.paths import path_problem

# Names at the top of a sweep directory that entries must leave alone (storage.sweepdir has
# the record and the plan copy; report writes report/).
RESERVED_TOP = ("hyperlax-sweep.json", "plan.msgpack", "report", "sweep.toml")
# ... and, in a plan that uses them, where checkpoints and successive halving's rungs live
CHECKPOINTS_DIR = "checkpoints"
RUNGS_DIR = "rungs"
RUNG_METRICS: tuple[str, ...] = get_args(RungMetric)
MAX_REPORTED = 8


def plan_problems(plan: Plan) -> list[tuple[str, str]]:
    """Located problems with ``plan``'s content; [] for a plan the compiler could have made."""
    problems: list[tuple[str, str]] = []
    s = plan.settings
    table = ALGORITHMS.get(s.algorithm)
    if table is None:
        return [("settings.algorithm", f"unknown algorithm {s.algorithm!r}")]
    if s.env not in ENVS:
        problems.append(("settings.env", unknown_env_message(s.env)))
    elif ENVS[s.env].action_space not in CONFIGS[s.algorithm].action_spaces:
        problems.append(("settings.env", f"{s.algorithm} cannot act in {s.env}"))
    for name, low, high in (("num_samples", 1, 1_000_000), ("batch_size", 1, 1 << 20),
                            ("seeds_per_sample", 1, 1024)):
        value = getattr(s, name)
        if not low <= value <= high:
            problems.append((f"settings.{name}", f"must be in [{low}, {high}], got {value}"))
    if s.num_samples != len(plan.samples):
        problems.append(("settings.num_samples", f"is {s.num_samples} but the plan has "
                                                 f"{len(plan.samples)} samples"))
    if not s.output_root or "\0" in s.output_root:
        problems.append(("settings.output_root", "is empty or contains a NUL character"))
    problems += _hyperparam_problems(plan, table)
    problems += _halving_problems(plan)
    if problems:
        return problems  # the checks below index by these
    problems += _structure_problems(plan, table)
    problems += _sample_problems(plan, table)
    if problems:
        return problems[:MAX_REPORTED]
    return _entry_problems(plan)[:MAX_REPORTED]


def _hyperparam_problems(plan: Plan, table: dict) -> list[tuple[str, str]]:
    """The plan's rows against today's declarations. A plan may lack rows: one written before
    a hyperparameter existed (or, for one declared ``since`` a later version, one that left it
    at its default) trains with the declared default, which reproduces the earlier behaviour
    (``hyperparams.declare``). A row whose hyperparameter became data (structural in the plan,
    scalar today) is read as data: the value is the same, only how it is compiled changed."""
    problems = []
    rows = {r.name: r for r in plan.hyperparams}
    unknown = sorted(set(rows) - set(table))
    if unknown:
        problems.append(("hyperparams", f"{', '.join(unknown)}: not hyperparameters of "
                                        f"{plan.settings.algorithm} (a plan from a newer "
                                        f"hyperlax, or an edited one)"))
        return problems
    for name, row in rows.items():
        declared = table[name]
        if row.type != declared.type or (row.role, declared.role) not in \
                ((declared.role, declared.role), ("structural", "scalar")):
            problems.append((f"hyperparams.{name}", f"says {row.type} {row.role}; it is declared "
                                                    f"{declared.type} {declared.role}"))
    if set(plan.constants) | set(plan.sampled) != set(rows) or \
            set(plan.constants) & set(plan.sampled):
        problems.append(("constants", "constants and sampled names must partition the "
                                      "hyperparameters"))
    problems += value_problems(plan.constants, table, "constants")
    problems += _env_value_problems(plan, plan.constants, table, "constants")
    return problems


def _env_value_problems(plan: Plan, values: dict[str, Any], table: dict,
                        prefix: str) -> list[tuple[str, str]]:
    """Values the plan's env cannot take (a convolutional torso without image observations):
    the compiler refuses them, so only an edited plan has them."""
    env = ENVS.get(plan.settings.env)
    if env is None:
        return []  # reported as settings.env
    return [(f"{prefix}.{name}", f"{problem} ({env.id})") for name, value in values.items()
            if name in table and (problem := env_value_problem(table[name], value,
                                                               env.obs_shape))]


def _structure_problems(plan: Plan, table: dict) -> list[tuple[str, str]]:
    problems = []
    # the names the plan grouped by: its own structural rows (see _hyperparam_problems)
    structural = sorted(r.name for r in plan.hyperparams if r.role == "structural")
    budget = plan.settings.budget
    for i, structure in enumerate(plan.structures):
        where = f"structures[{i}]"
        if structure.index != i:
            problems.append((f"{where}.index", f"is {structure.index}, expected {i}"))
        if sorted(structure.values) != structural:
            problems.append((f"{where}.values", "must name exactly the structural "
                                                "hyperparameters"))
            continue
        problems += value_problems(structure.values, table, f"{where}.values")
        problems += _env_value_problems(plan, structure.values, table, f"{where}.values")
        if problems:
            continue
        config = CONFIGS[plan.settings.algorithm].from_values(
            {**plan.constants, **structure.values})
        for problem in config.cross_field_problems():
            problems.append((where, problem))
        if budget.total_timesteps < config.steps_per_update() * budget.num_evaluations:
            problems.append((where, "total_timesteps is too small for one update per "
                                    "evaluation"))
    return problems


def _sample_problems(plan: Plan, table: dict) -> list[tuple[str, str]]:
    problems = []
    sampled = list(plan.sampled)
    for i, sample in enumerate(plan.samples):
        where = f"samples[{i}]"
        if sample.index != i:
            problems.append((f"{where}.index", f"is {sample.index}, expected {i}"))
        if not 0 <= sample.seed < 2**32:
            problems.append((f"{where}.seed", f"must be in [0, 2**32), got {sample.seed}"))
        if not 0 <= sample.structure < len(plan.structures):
            problems.append((f"{where}.structure", f"{sample.structure} is out of range "
                                                   f"({len(plan.structures)} structures)"))
            continue
        units = 0 if plan.settings.sampling == "listed" else len(sampled)  # listed: no points
        if list(sample.values) != sampled or len(sample.unit) != units:
            problems.append((f"{where}.values", "must hold one value and one unit coordinate "
                                                "per sampled hyperparameter"))
            continue
        problems += value_problems(sample.values, table, f"{where}.values")
        structure = plan.structures[sample.structure].values
        full = {**plan.constants, **sample.values}
        if any(full[n] != v for n, v in structure.items()):
            problems.append((f"{where}.structure", f"structure {sample.structure}'s values "
                                                   "differ from the sample's"))
        if len(problems) >= MAX_REPORTED:
            break
    return problems


def _halving_problems(plan: Plan) -> list[tuple[str, str]]:
    """Checkpoints and rungs as the compiler makes them (``compiler.halving``)."""
    total = plan.settings.num_evaluations
    problems = []
    if not 0 <= plan.checkpoint_every <= total:
        problems.append(("checkpoint_every", f"must be in [0, {total}], got "
                                             f"{plan.checkpoint_every}"))
    halving = plan.halving
    if halving is None:
        return problems
    if halving.metric not in RUNG_METRICS:
        problems.append(("halving.metric", f"unknown metric {halving.metric!r}"))
    if plan.pbt is not None:  # PBT's intervals: every sample in every one
        problems += _pbt_problems(plan)
    elif not 2 <= halving.eta <= 1000:
        problems.append(("halving.eta", f"must be in [2, 1000], got {halving.eta}"))
        return problems
    evaluations = [r.evaluations for r in halving.rungs]
    group = chunk_group(total)
    if len(evaluations) < 2 or evaluations[-1] != total or any(
            e % group or not 0 < e < f for e, f in zip(evaluations, evaluations[1:])):
        problems.append(("halving.rungs", f"must be 2 or more increasing evaluation counts, "
                                          f"multiples of {group}, the last {total}"))
    elif [r.samples for r in halving.rungs] != rung_sizes(len(plan.samples), halving.eta,
                                                          len(evaluations)):
        problems.append(("halving.rungs", "the samples of each rung must be the top 1/eta of "
                                          "the rung before"))
    return problems


def _pbt_problems(plan: Plan) -> list[tuple[str, str]]:
    """PBT as the compiler makes it (``compiler.pbt``): intervals, knobs, explored names."""
    pbt, halving = plan.pbt, plan.halving
    assert pbt is not None and halving is not None
    problems = []
    total = plan.settings.num_evaluations
    ends = [r.evaluations for r in halving.rungs]
    if halving.eta != 1 or not 0 < pbt.interval < total or \
            ends != interval_ends(pbt.interval, total):
        problems.append(("pbt.interval", "the intervals must split num_evaluations evenly "
                                         "(eta 1), the last one possibly shorter"))
    if not 0 < pbt.quantile_fraction <= 0.5 or not 0 <= pbt.resample_probability <= 1 or \
            not pbt.perturbation_factors or \
            not all(math.isfinite(f) and f > 0 for f in pbt.perturbation_factors):
        problems.append(("pbt", "quantile_fraction must be in (0, 0.5], resample_probability "
                                "in [0, 1], perturbation_factors positive"))
    roles = {row.name: row.role for row in plan.hyperparams}
    replay = pbt.schedule is not None
    bad = [n for n in pbt.explore if (n in plan.sampled) == replay or roles.get(n) != "scalar"]
    if bad or not pbt.explore or pbt.explore != sorted(set(pbt.explore)):
        problems.append(("pbt.explore", f"must name scalar hyperparameters, sorted, sampled "
                                        f"(scheduled in a replay); not {bad[:4]}"))
    if replay:  # nothing is copied: a population of one is fine
        if len(pbt.schedule) != len(halving.rungs) or \
                any(sorted(row) != pbt.explore for row in pbt.schedule):
            problems.append(("pbt.schedule", "must give the explore names' values, one row "
                                             "per interval"))
        return problems
    if any(len(members) < 2 for members in populations(plan.samples).values()):
        problems.append(("pbt", "every population (a structure's samples) needs two samples"))
    return problems


def reserved_top(plan: Plan) -> tuple[str, ...]:
    """Top-level names of the sweep directory that no entry path may start with."""
    extra = (CHECKPOINTS_DIR,) if plan.checkpoint_every or plan.halving else ()
    return RESERVED_TOP + extra + ((RUNGS_DIR,) if plan.halving else ())


def _entry_problems(plan: Plan) -> list[tuple[str, str]]:
    problems = []
    seen: dict[str, int] = {}
    reserved = reserved_top(plan)
    n_samples, n_groups = len(plan.samples), len(plan.groups)
    for i, entry in enumerate(plan.entries):
        where = f"entries[{i}]"
        if entry.index != i:
            problems.append((f"{where}.index", f"is {entry.index}, expected {i}"))
        problem = path_problem(entry.path)
        if problem is None and entry.path.split("/")[0] in reserved:
            problem = f"{entry.path!r} would overwrite the sweep directory's own files"
        if problem is None and any(ord(c) < 32 for c in entry.path):
            problem = "contains a control character"
        if problem:
            problems.append((f"{where}.path", problem))
            continue
        seen[entry.path] = i
        if entry.group is not None and not 0 <= entry.group < n_groups:
            problems.append((f"{where}.group", f"{entry.group} is out of range"))
        if not entry.samples or any(not 0 <= j < n_samples for j in entry.samples):
            problems.append((f"{where}.samples", "must list samples that exist"))
            continue
        in_subs: list[int] = []
        for k, sb in enumerate(entry.sub_batches):
            sub = f"{where}.sub_batches[{k}]"
            if not sb.samples or not 0 <= sb.structure < len(plan.structures):
                problems.append((sub, "has no samples or an unknown structure"))
            elif not len(sb.samples) <= sb.width <= 1 << 20:
                problems.append((f"{sub}.width", f"{sb.width} cannot hold "
                                                 f"{len(sb.samples)} samples"))
            elif any(not 0 <= j < n_samples or plan.samples[j].structure != sb.structure
                     for j in sb.samples):
                problems.append((f"{sub}.samples", f"must all have structure {sb.structure}"))
            in_subs += sb.samples
        if sorted(in_subs) != sorted(entry.samples) or len(set(in_subs)) != len(in_subs):
            problems.append((f"{where}.sub_batches", "must hold each of the entry's samples "
                                                     "exactly once"))
    if len(seen) < len(plan.entries) and not problems:
        problems.append(("entries", "two entries share a path"))
    paths = sorted(seen)
    for a, b in zip(paths, paths[1:]):  # sorted: a nested path follows its parent
        if b.startswith(a + "/"):
            problems.append((f"entries[{seen[b]}].path", f"{b!r} lies inside entry "
                                                         f"{seen[a]}'s directory {a!r}"))
    return problems


def check_plan(plan: Plan, source: str) -> None:
    """Raise a HyperlaxError listing ``plan``'s problems, if it has any. The hint says what
    the plan's own version makes likely: a plan of this version that fails was edited after
    ``plan`` wrote it; one of an older version that fails is hyperlax's fault, not the user's
    (every older plan must be read), so it says so and how to go on."""
    problems = plan_problems(plan)
    if not problems:
        return
    located = [(f"plan.{loc}", msg) for loc, msg in problems]
    if plan.hyperlax_version == hyperlax.__version__:
        hint = ("the plan file was changed after `hyperlax plan` wrote it (its id was "
                "recomputed, so this is an edit, not damage); re-create it with: hyperlax plan "
                "<manifest>")
    else:
        hint = (f"this plan was written by hyperlax {plan.hyperlax_version} and this is "
                f"{hyperlax.__version__}, which should read every older plan: please report "
                "it with the plan file attached; meanwhile re-plan the manifest with this "
                "version (hyperlax plan <manifest>), or run the plan with hyperlax "
                f"{plan.hyperlax_version}")
    raise HyperlaxError(source, located, hint)


__all__ = ["check_plan", "plan_problems"]
