"""What the seed commands do once their flags are parsed: compile the equivalent manifest
(errors named by flag), say what the sweep costs before anything runs, claim a sweep directory,
find the sweep to resume, and run the plan through the same use case as ``hyperlax exec``.
JAX-free at module level; ``execute`` imports the runtime when it runs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from hyperlax.errors import HyperlaxError
from hyperlax.cli.seed.flags import flag_location

SEED_MANIFEST = "sweep.toml"

Echo = Callable[..., None]


def compile_text(text: str, name: str, manifest_dir: Path, command: str) -> tuple[Any, list]:
    """(plan, warnings) of manifest text built from flags; its errors name the flags."""
    from hyperlax.compiler.lower import lower
    from hyperlax.manifest.resolve import resolve_text

    try:
        return lower(resolve_text(text, name, manifest_dir), manifest_name=name)
    except HyperlaxError as exc:
        if exc.source != name:
            raise
        problems = [(flag_location(loc), msg) for loc, msg in exc.problems]
        budget = getattr(exc, "budget", None)
        raise HyperlaxError(command, problems,
                            run_length_hint(budget) if budget else exc.hint) from None


def run_length_hint(budget: dict[str, int]) -> str:
    """The smallest --run-length-modifier under which every sample updates before its first
    evaluation: a number of env steps keeps the recipe's evaluations (``flags.RunLength``)."""
    per_update, evaluations = budget["steps_per_update"], budget["recipe_num_evaluations"]
    smallest = per_update * evaluations
    default = (" (or default: the recipe's own "
               f"{budget['recipe_total_timesteps']:,} env steps)"
               if budget["recipe_total_timesteps"] >= smallest else "")
    return (f"pass --run-length-modifier {smallest} or more{default}: the largest num_envs x "
            f"rollout_length among these samples, {per_update:,}, times the recipe's "
            f"{evaluations} evaluations")


def compile_in(directory: Path, text: str, name: str, command: str,
               within: Path | None = None) -> tuple[Any, list]:
    """compile_text for a manifest that will live in ``directory``, which may not exist yet:
    a path relative to it (``../recipe.toml``) can only be read through an existing directory,
    so it is created for the compile and removed again if the flags are bad. ``within`` is the
    directory it must not leave through a symbolic link (a benchmark's directory); by default
    the directory itself, which the user named."""
    from hyperlax.storage.atomic import make_dirs, remove_empty_dir, storage_error

    created = [d for d in [directory, *directory.parents] if not d.exists()]
    try:
        make_dirs(directory, within=within or directory)
    except OSError as exc:  # a file, a FIFO or a dangling link in the way
        raise storage_error(directory, exc, "cannot make the sweep directory",
                            "run the same command again") from None
    try:
        return compile_text(text, name, directory, command)
    except BaseException:
        for d in created:  # innermost first; they were empty when made
            if not remove_empty_dir(d, within=created[-1].parent):
                break
        raise


# --- what it costs ------------------------------------------------------------------------

def cost_lines(plan: Any, root: Path | None = None, now: float | None = None) -> list[str]:
    """What the sweep will cost, before it runs: trainings, env steps, structures, compiles;
    how long training and compiling take, from the throughput an exec measured on this machine
    (``exec.throughput``; a range when there is none); and a hint when nearly every sample
    compiles its own program, which the original's commands typed verbatim do with its
    recipes. With the sweep directory ``root``: what is left of it; nothing when it is done."""
    from hyperlax.exec.schedule import entry_steps, programs_needed
    from hyperlax.storage.sweepdir import SweepDir

    s = plan.settings
    todo = plan.entries
    if root is not None and root.is_dir():
        sweep = SweepDir(root)
        todo = [e for e in plan.entries if sweep.state(e.path) != "done"]
        if not todo:
            return []
    samples = sum(len(e.samples) for e in todo)
    steps = sum(entry_steps(plan, e) for e in todo)
    programs = programs_needed(todo, 1)
    structures = len({key.structure for key in programs})
    left = f" (left of {len(plan.samples)})" if len(todo) < len(plan.entries) else ""
    lines = [f"cost: {samples} configurations{left} x {s.seeds_per_sample} seeds, "
             f"{steps:,} env steps in all; {structures} structures, {len(programs)} "
             "programs to compile",
             time_line(s.algorithm, s.env, steps, len(programs), now)]
    compiles = len(programs)
    if compiles >= 4 and compiles > samples // 4:
        if s.sampling in ("qmc_sobol", "random") and s.structures is None:
            k = max(1, math.ceil(samples / max(s.batch_size, 1)))
            lines.append(f"hint: {structures} of {samples} samples have "
                         f"a structure of their own, so compiling dominates; --structures {k} "
                         f"samples {k} structures and fills each ({k} compiles), or pin "
                         "structural hyperparameters in a manifest (--emit-manifest)")
        else:
            lines.append("hint: compiling dominates; pin structural hyperparameters in a "
                         "manifest (--emit-manifest) to share programs")
    return lines


def time_line(algorithm: str, env: str, steps: int, compiles: int,
              now: float | None = None) -> str:
    """How long training and compiling will take, and how sure that is: from the figure an
    exec measured here, within ``throughput.SPREAD`` either way; without one, a wide range."""
    from hyperlax.exec import throughput as T

    found, why = T.figure(algorithm, env, now)
    if found is None:
        slow, fast = T.UNKNOWN_STEPS_PER_SECOND
        quick, long = T.UNKNOWN_SECONDS_PER_COMPILE
        return (f"time: unknown here ({why}): at {_rate(slow)} to {_rate(fast)} env steps/s, "
                f"{_duration(steps / fast / 60)} to {_duration(steps / slow / 60)} of training, "
                f"and {_duration(compiles * quick / 60)} to {_duration(compiles * long / 60)} "
                f"of compiling at {quick:g}-{long:g} s a program; an exec here measures it for "
                "the next estimate")
    train = steps / found.steps_per_second / 60
    where = (f"measured here for {found.key}" + ("" if found.key == f"{algorithm} {env}"
                                                 else f", not {env}")
             + f" on {found.device}, {_age(found.age_days(now))}")
    text = (f"time: about {_duration(train)} of training at {_rate(found.steps_per_second)} "
            f"env steps/s ({where}; other structures train faster or slower, so "
            f"{_duration(train / T.SPREAD)} to {_duration(train * T.SPREAD)})")
    if found.seconds_per_compile is not None and compiles:
        text += (f", and up to {_duration(compiles * found.seconds_per_compile / 60)} of "
                 f"compiling at {found.seconds_per_compile:.0f} s a program (measured; "
                 "compiles run while training, so less)")
    return text


def _rate(x: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def _age(days: float) -> str:
    if days < 1 / 24:
        return "just now"
    if days < 1:
        return f"{days * 24:.0f} h ago"
    return f"{days:.0f} days ago"


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


# --- sweep directories --------------------------------------------------------------------

def find_sweep(path: Path) -> Path:
    """The sweep directory ``path`` names, in the forms the original's --resume-from takes:
    the run directory ``<output-root>/<recipe>/<env>/`` (what its docs show), the output root
    itself (a hyperlax sweep directory), a directory below them, or the plan copy in one."""
    from hyperlax.storage.sweepdir import PLAN_COPY, SWEEP_RECORD

    if path.is_file() and path.name == PLAN_COPY:
        path = path.parent
    if not path.is_dir():
        raise HyperlaxError(str(path), "no such directory",
                            "pass the --output-root the sweep was started with")
    for candidate in [path, *list(path.parents)[:3]]:
        if (candidate / SWEEP_RECORD).is_file() and (candidate / PLAN_COPY).is_file():
            return candidate
    raise HyperlaxError(str(path), "is not a hyperlax sweep directory (no hyperlax-sweep.json "
                                   "and plan.msgpack in it or above it)",
                        "pass the --output-root a sweep-hp-samples run was started with")


def start_sweep(root: Path, text: str, plan: Any, command: str) -> tuple[str, bool]:
    """Claim ``root`` for ``plan`` (a new or empty directory, or this plan's own sweep) and
    write the manifest beside its plan copy; (plan id, whether it continues a sweep). A
    directory holding another plan's results or anything else is refused untouched."""
    from hyperlax.plan.format import encode_plan, plan_id
    from hyperlax.storage.atomic import atomic_write
    from hyperlax.storage.sweepdir import Owner, SweepDir, another_plan

    pid, data = plan_id(plan), encode_plan(plan)
    sweep, owner = SweepDir(root), Owner.of(plan, pid)
    record = sweep.record()
    if record is not None and not owner.owns(record):
        raise another_plan(root, record, owner, "these flags make another sweep; continue that "
                                                f"sweep with --resume-from {root}, or pass a new "
                                                "--output-root")
    sweep.claim(data, owner)  # refuses a non-empty directory that is not a sweep, untouched
    if not (root / SEED_MANIFEST).exists():
        atomic_write(root / SEED_MANIFEST, text.encode("utf-8"), within=root)
    return pid, record is not None


def read_sweep(root: Path) -> tuple[Any, str]:
    """The plan of the sweep in ``root``, refusing a directory whose record names another."""
    from hyperlax.plan.read import read_plan
    from hyperlax.storage.sweepdir import PLAN_COPY, Owner, SweepDir

    plan, pid = read_plan(root / PLAN_COPY)
    SweepDir(root).check_owner(Owner.of(plan, pid))
    return plan, pid


def execute(root: Path, echo: Echo, quiet: bool, compile_cache: Path | None,
            compile_workers: int | None = None) -> int:
    """Run the plan in ``root`` exactly as ``hyperlax exec <root>/plan.msgpack --output-root
    <root>`` does: the same use case, progress and interruption handling; its exit status."""
    from hyperlax.exec.options import ExecOptions
    from hyperlax.exec.run_plan import ExecRequest, run_exec
    from hyperlax.storage.sweepdir import PLAN_COPY

    request = ExecRequest(plan_file=root / PLAN_COPY, output_root=root,
                          compile_cache=compile_cache, quiet=quiet,
                          options=ExecOptions(compile_workers_given=compile_workers))
    return run_exec(request, echo)


# --- resuming -----------------------------------------------------------------------------

def planned_budget(plan: Any) -> tuple[int, int, int]:
    s = plan.settings
    return s.total_timesteps, s.num_evaluations, s.eval_episodes


def budget_of(run_length: Any, plan: Any) -> tuple[int, int, int]:
    """The budget a --run-length-modifier gives the recipe the plan was made with."""
    from hyperlax.manifest.format import decode_recipe

    recipe = decode_recipe(plan.recipe_text, f"recipe {plan.settings.recipe}").settings
    return (run_length.total_timesteps or recipe.total_timesteps,
            run_length.num_evaluations or recipe.num_evaluations,
            run_length.eval_episodes or recipe.eval_episodes)


def file_sha256(path: str) -> str | None:
    from hyperlax.storage.read import read_text

    try:
        text = read_text(Path(path), "samples file", limit=256 << 20)
    except HyperlaxError:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the sample table ---------------------------------------------------------------------

def samples_csv(plan: Any) -> str:
    """The plan's samples as CSV that --load-hyperparams (and a manifest's samples_file) read
    back to the same values: floats in full (shortest round-trip) precision, booleans and lists
    as JSON, strings as they are. ``sample``, ``seed`` and ``structure`` are bookkeeping."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["sample", "seed", "structure", *plan.sampled])
    for s in plan.samples:
        writer.writerow([s.index, s.seed, s.structure, *(_cell(s.values[n]) for n in plan.sampled)])
    return buf.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, (bool, list)):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)
