"""The seed system's command line, ``sweep-hp-samples`` and ``generate-hp-samples``: a thin
front end that builds the equivalent manifest from the seed's flags, compiles it, and runs the
plan through the same use case as ``hyperlax exec`` (``runtime.run_plan``). Registered on the
``hyperlax`` group by ``hyperlax.cli``, so ``python -m hyperlax.cli sweep-hp-samples ...`` works.

Module level stays JAX-free: ``--help`` and flag errors must be instant.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from hyperlax.cli_errors import user_errors
from hyperlax.errors import HyperlaxError
from hyperlax.exec_options import (COMPILE_CACHE_HELP, COMPILE_CACHE_VARIABLE,
                                    COMPILE_WORKERS_OPTION)

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
QUIET_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
SEED_MANIFEST = "sweep.toml"

# Manifest locations as the seed command line spells them, for error messages.
FLAG_OF = {
    "sweep.recipe": "--algo-and-network-config",
    "sweep.env": "--env-config",
    "sweep.num_samples": "--num-samples",
    "sweep.batch_size": "--hparam-batch-size",
    "sweep.sampling": "--sampling-method",
    "sweep.seed": "--seed",
    "sweep.output_root": "--output-root",
}


def _seed_options(command: Callable) -> Callable:
    """Flags shared by sweep-hp-samples and generate-hp-samples, with the seed's defaults."""
    options = [
        click.option("--algo-and-network-config", "recipe", default="ppo_mlp",
                     show_default=True, help="recipe: a built-in name or a recipe .toml path"),
        click.option("--env-config", "env_id", default="gymnax.pendulum", show_default=True),
        click.option("--num-samples", default=8, show_default=True, type=int),
        click.option("--sampling-method", type=click.Choice(["qmc_sobol", "random"]),
                     default="qmc_sobol", show_default=True),
        click.option("--seed", default=42, show_default=True, type=int,
                     help="seed of the sampler (and of every sample's training seed)"),
        click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                     default="INFO", show_default=True,
                     help="WARNING and above: no progress output"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _bool_option(name: str, help_text: str) -> Callable:
    # The seed writes `--sequential True`; a bare `--sequential` also means True.
    return click.option(name, type=click.BOOL, default=False, is_flag=False, flag_value=True,
                        show_default=True, metavar="[True|False]", help=help_text)


def _recipe_name(recipe: str) -> str:
    from hyperlax.manifest.recipes import is_recipe_path

    return Path(recipe).stem if is_recipe_path(recipe) else recipe


def seed_manifest(recipe: str, env_id: str, num_samples: int, batch_size: int, sampling: str,
                  seed: int, mode: str, output_root: str | None, manifest_dir: Path) -> str:
    """The manifest equivalent to a seed command line. A recipe path (relative to the current
    directory on the command line) becomes relative to ``manifest_dir``, as manifests have it."""
    import tomli_w

    from hyperlax.manifest.recipes import is_recipe_path

    recipe_field = recipe
    if is_recipe_path(recipe):
        recipe_field = Path(os.path.relpath(Path(recipe).resolve(),
                                            manifest_dir.resolve())).as_posix()
    stem = f"{_recipe_name(recipe)}-{env_id.split('.')[-1]}".replace("_", "-")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:100] or "sweep"
    sweep: dict[str, Any] = {"name": name, "recipe": recipe_field, "env": env_id,
                             "num_samples": num_samples, "sampling": sampling, "seed": seed,
                             "mode": mode, "batch_size": batch_size}
    flags = [f"--algo-and-network-config {recipe}", f"--env-config {env_id}",
             f"--num-samples {num_samples}", f"--hparam-batch-size {batch_size}",
             f"--sampling-method {sampling}", f"--seed {seed}"]
    if mode == "sequential":
        flags.append("--sequential True")
    if mode == "grouped":
        flags.append("--group-by-structural-hparams True")
    if output_root is not None:
        sweep["output_root"] = output_root
        flags.append(f"--output-root {output_root}")
    header = ["# hyperlax sweep manifest, equivalent to the seed command line",
              "#   python -m hyperlax.cli sweep-hp-samples " + " ".join(flags),
              "# Plan it with `hyperlax plan <this file>`, run the plan with `hyperlax exec`.",
              ""]
    return "\n".join(header) + tomli_w.dumps({"sweep": sweep})


def _compile_text(text: str, name: str, manifest_dir: Path, command: str) -> tuple[Any, list]:
    """(plan, warnings) for manifest text built from flags; errors name the flags."""
    from hyperlax.compiler.lower import lower
    from hyperlax.manifest.resolve import resolve_text

    try:
        return lower(resolve_text(text, name, manifest_dir), manifest_name=name)
    except HyperlaxError as exc:
        if exc.source != name:
            raise
        problems = [(FLAG_OF.get(loc, loc), msg) for loc, msg in exc.problems]
        raise HyperlaxError(command, problems, exc.hint) from None


def _compile_in(directory: Path, text: str, name: str, command: str) -> tuple[Any, list]:
    """_compile_text for a manifest that will live in ``directory``, which may not exist yet:
    a recipe path relative to it (``../recipe.toml``) can only be read through an existing
    directory, so it is created for the compile and removed again if the flags are bad."""
    created = [d for d in [directory, *directory.parents] if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _compile_text(text, name, directory, command)
    except BaseException:
        for d in created:  # innermost first; they were empty when made
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _mode(sequential: bool, grouped: bool) -> str:
    if sequential:
        if grouped:
            click.echo("warning: --group-by-structural-hparams is ignored when --sequential is "
                       "used", err=True)
        return "sequential"
    return "grouped" if grouped else "batched"


def _given(name: str) -> bool:
    return click.get_current_context().get_parameter_source(name) == ParameterSource.COMMANDLINE


def _find_sweep(directory: Path) -> Path:
    """The sweep directory holding ``directory``: itself, or (as the seed's docs resume from
    ``<output-root>/<recipe>/<env>/``) one of the three directories above it."""
    from hyperlax.storage.sweepdir import PLAN_COPY, SWEEP_RECORD

    if not directory.is_dir():
        raise HyperlaxError(str(directory), "no such directory",
                            "pass the --output-root the sweep was started with")
    for candidate in [directory, *list(directory.parents)[:3]]:
        if (candidate / SWEEP_RECORD).is_file() and (candidate / PLAN_COPY).is_file():
            return candidate
    raise HyperlaxError(str(directory), "is not a hyperlax sweep directory (no "
                                        "hyperlax-sweep.json and plan.msgpack in it or above it)",
                        "pass the --output-root a sweep-hp-samples run was started with")


def _resume_conflicts(plan: Any, flags: dict[str, Any]) -> list[tuple[str, str]]:
    """Flags given on the command line that disagree with the plan being resumed."""
    s = plan.settings
    checks = [
        ("recipe", "--algo-and-network-config", lambda v: _recipe_name(v), s.recipe),
        ("env_id", "--env-config", lambda v: v, s.env),
        ("num_samples", "--num-samples", lambda v: v, s.num_samples),
        ("sampling_method", "--sampling-method", lambda v: v, s.sampling),
        ("seed", "--seed", lambda v: v, s.seed),
        ("sequential", "--sequential", lambda v: v, s.mode == "sequential"),
    ]
    if s.mode != "sequential":
        checks.append(("hparam_batch_size", "--hparam-batch-size", lambda v: v, s.batch_size))
        if not (_given("sequential") and flags["sequential"]):
            checks.append(("group_by_structural_hparams", "--group-by-structural-hparams",
                           lambda v: v, s.mode == "grouped"))
    problems = []
    for param, flag, normal, planned in checks:
        if _given(param) and normal(flags[param]) != planned:
            problems.append((flag, f"{flags[param]} differs from the sweep being resumed "
                                   f"({planned})"))
    return problems


def _execute(root: Path, quiet: bool, compile_cache: Path | None,
             compile_workers: int | None = None) -> None:
    """Run the plan in ``root`` exactly as ``hyperlax exec <root>/plan.msgpack --output-root
    <root>`` does: the same use case, progress, interruption handling and exit statuses."""
    from hyperlax import stopping
    from hyperlax.exec_options import ExecOptions
    from hyperlax.runtime.run_plan import ExecRequest, run_exec
    from hyperlax.storage.sweepdir import PLAN_COPY

    request = ExecRequest(plan_file=root / PLAN_COPY, output_root=root,
                          compile_cache=compile_cache, quiet=quiet,
                          options=ExecOptions(compile_workers_given=compile_workers))
    with stopping.handling():
        status = run_exec(request, click.echo)
        if status:
            stopping.finish(status)
    if not quiet:
        click.echo(f"next: hyperlax report {root}")


@click.command("sweep-hp-samples")
@_seed_options
@click.option("--hparam-batch-size", default=4, show_default=True, type=int,
              help="at most this many samples per vmapped batch")
@_bool_option("--sequential", "one entry per sample, run one at a time")
@_bool_option("--group-by-structural-hparams", "group samples by structural hyperparameters "
                                               "before batching")
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="sweep directory; gets sweep.toml, plan.msgpack and "
                   "<recipe>/<env>/samples/...")
@click.option("--resume-from", type=click.Path(path_type=Path), default=None,
              help="a sweep directory: run its plan again, skipping completed entries")
@click.option("--emit-manifest", type=click.Path(path_type=Path), default=None,
              help="only write the equivalent manifest here (no plan, no training)")
@click.option("--force", is_flag=True, help="with --emit-manifest: overwrite an existing file")
@click.option("--compile-cache", type=click.Path(path_type=Path), default=None,
              envvar=COMPILE_CACHE_VARIABLE, help=COMPILE_CACHE_HELP)
@COMPILE_WORKERS_OPTION
@user_errors
def sweep_command(recipe: str, env_id: str, num_samples: int, sampling_method: str, seed: int,
                  log_level: str, hparam_batch_size: int, sequential: bool,
                  group_by_structural_hparams: bool, output_root: Path | None,
                  resume_from: Path | None, emit_manifest: Path | None, force: bool,
                  compile_cache: Path | None, compile_workers: int | None) -> None:
    """The seed system's sweep command: builds the equivalent manifest, writes it and its plan
    into the sweep directory (--output-root) and executes the plan. Re-running the same command,
    or --resume-from DIR, skips completed entries. With --emit-manifest, only writes the
    manifest: the way to checked-in manifests and `hyperlax plan` / `hyperlax exec`."""
    from hyperlax.planfile import encode_plan, plan_id, read_plan
    from hyperlax.storage.atomic import atomic_write
    from hyperlax.storage.sweepdir import PLAN_COPY, Owner, SweepDir, another_plan

    quiet = log_level.upper() in QUIET_LEVELS
    command = "sweep-hp-samples"
    if resume_from is not None:
        if emit_manifest is not None:
            raise HyperlaxError(command, [("--emit-manifest", "cannot be combined with "
                                                              "--resume-from")])
        root = _find_sweep(resume_from)
        if output_root is not None and output_root.resolve() != root.resolve():
            raise HyperlaxError(command, [("--output-root", f"{output_root} is not the sweep "
                                                            f"directory being resumed ({root})")],
                                "pass only --resume-from")
        plan, pid = read_plan(root / PLAN_COPY)
        SweepDir(root).check_owner(Owner.of(plan, pid))
        flags = {"recipe": recipe, "env_id": env_id, "num_samples": num_samples,
                 "sampling_method": sampling_method, "seed": seed, "sequential": sequential,
                 "hparam_batch_size": hparam_batch_size,
                 "group_by_structural_hparams": group_by_structural_hparams}
        conflicts = _resume_conflicts(plan, flags)
        if conflicts:
            raise HyperlaxError(f"{command} --resume-from {resume_from}", conflicts,
                                "drop those flags (the sweep's plan fixes them), or start a new "
                                "sweep with a new --output-root")
        if not quiet:
            click.echo(f"resuming the sweep in {root} (plan {pid[:12]})")
        _execute(root, quiet, compile_cache, compile_workers)
        return

    mode = _mode(sequential, group_by_structural_hparams)
    if emit_manifest is not None:
        if emit_manifest.exists() and not force:
            raise HyperlaxError(str(emit_manifest), "already exists",
                                "pass --force to overwrite it")
        manifest_dir = emit_manifest.parent
        text = seed_manifest(recipe, env_id, num_samples, hparam_batch_size, sampling_method, seed,
                             mode, output_root.as_posix() if output_root else None, manifest_dir)
        plan, warnings = _compile_in(manifest_dir, text, emit_manifest.name, command)
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if output_root is not None and output_root.is_absolute():
            click.echo("note: output_root is an absolute path; a relative one (to the directory "
                       "hyperlax runs in) travels better in a checked-in manifest", err=True)
        try:
            atomic_write(emit_manifest, text.encode("utf-8"))
        except OSError as exc:
            raise HyperlaxError(str(emit_manifest), f"cannot write: {exc.strerror}") from None
        if not quiet:
            click.echo(f"wrote {emit_manifest}: {len(plan.samples)} samples, "
                       f"{len(plan.entries)} entries ({mode}); next: hyperlax plan "
                       f"{emit_manifest} -o plan.msgpack && hyperlax exec plan.msgpack")
        return

    if output_root is None:
        raise HyperlaxError(command, [("--output-root", "is required (or --resume-from, or "
                                                        "--emit-manifest)")],
                            "pass a new or empty directory for the sweep")
    root = output_root
    text = seed_manifest(recipe, env_id, num_samples, hparam_batch_size, sampling_method, seed,
                         mode, root.as_posix(), root)
    plan, warnings = _compile_in(root, text, SEED_MANIFEST, command)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    pid, data = plan_id(plan), encode_plan(plan)
    sweep, owner = SweepDir(root), Owner.of(plan, pid)
    record = sweep.record()
    if record is not None and not owner.owns(record):
        raise another_plan(root, record, owner, "these flags make another sweep; continue that "
                                                f"sweep with --resume-from {root}, or pass a new "
                                                "--output-root")
    sweep.claim(data, owner)  # refuses a non-empty directory that is not a sweep, untouched
    if not (root / SEED_MANIFEST).exists():
        atomic_write(root / SEED_MANIFEST, text.encode("utf-8"))
    if not quiet:
        what = "continuing" if record is not None else "started"
        click.echo(f"{what} sweep in {root}: {SEED_MANIFEST} and {PLAN_COPY} (plan {pid[:12]}, "
                   f"{len(plan.samples)} samples, {len(plan.entries)} entries, {mode})")
    _execute(root, quiet, compile_cache, compile_workers)


@click.command("generate-hp-samples")
@_seed_options
@click.option("--output-file", type=click.Path(path_type=Path), default=Path("-"),
              show_default=True, help="CSV file to write; '-' for stdout")
@user_errors
def generate_command(recipe: str, env_id: str, num_samples: int, sampling_method: str,
                     seed: int, log_level: str, output_file: Path) -> None:
    """The seed system's sample generation: the samples a sweep with these flags would run,
    as CSV (sample, seed, structure, one column per sampled hyperparameter). No training."""
    from hyperlax.explain import samples_table
    from hyperlax.storage.atomic import atomic_write

    text = seed_manifest(recipe, env_id, num_samples, 16, sampling_method, seed, "batched", None,
                         Path.cwd())
    plan, warnings = _compile_text(text, SEED_MANIFEST, Path.cwd(), "generate-hp-samples")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    table = samples_table(plan, "csv")
    if str(output_file) == "-":
        click.echo(table, nl=False)
        return
    try:
        atomic_write(output_file, table.encode("utf-8"))
    except OSError as exc:
        raise HyperlaxError(str(output_file), f"cannot write: {exc.strerror}",
                            "choose another path with --output-file") from None
    if log_level.upper() not in QUIET_LEVELS:
        click.echo(f"wrote {len(plan.samples)} samples of {plan.settings.recipe} on "
                   f"{plan.settings.env} to {output_file}", err=True)
