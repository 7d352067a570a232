"""Click commands: ``report``, and the seed system's ``sweep-hp-samples`` and
``generate-hp-samples`` as a thin front end that builds the equivalent manifest.

Module level stays JAX-free and matplotlib-free: ``hyperlax.cli`` imports this module to
register the commands, and ``plan``/``show``/``--help`` must stay instant.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from hyperlax.errors import HyperlaxError  # the class hyperlax.cli re-exports

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
QUIET_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
SEED_MANIFEST = "sweep.toml"
DEFAULT_COMPILE_CACHE = Path.home() / ".cache" / "hyperlax" / "jax"

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


def user_errors(command: Callable) -> Callable:
    """``hyperlax.cli.user_errors``, looked up when the command runs. ``hyperlax.cli`` imports
    this module at its end, and ``python -m hyperlax.cli`` runs cli.py as ``__main__``, so a
    module-level ``from hyperlax.cli import user_errors`` here would be a circular import."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hyperlax.cli import user_errors as cli_user_errors

        return cli_user_errors(command)(*args, **kwargs)

    return wrapper


# --- hyperlax report ---------------------------------------------------------------------------

@click.command("report")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="sweep directory [default: the plan's output_root]")
@click.option("-o", "--output", "report_dir", type=click.Path(path_type=Path), default=None,
              help="where to write the report [default: <sweep dir>/report]")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=5, show_default=True,
              help="how many of the best samples to show and plot")
@click.option("--metric", type=click.Choice(["final", "best"]), default="final",
              show_default=True, help="rank by the final or the best eval return "
                                      "(mean over replicates)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the whole report on stdout, for machines")
@click.option("--no-plots", is_flag=True, help="write results.csv and report.json only")
@user_errors
def report_command(plan_file: Path, output_root: Path | None, report_dir: Path | None,
                   top_k: int, metric: str, fmt: str, no_plots: bool) -> None:
    """Results of PLAN_FILE's sweep: results.csv (one row per sample), the top configurations,
    the [fixed] block that pins the best, and PNG plots. A partial sweep reports what it has.
    PLAN_FILE may also be a sweep directory (its plan.msgpack is used)."""
    from hyperlax.planfile import read_plan
    from hyperlax.report import results as R
    from hyperlax.store import PLAN_COPY, atomic_write

    if plan_file.is_dir():
        output_root = output_root if output_root is not None else plan_file
        plan_file = plan_file / PLAN_COPY
    plan, pid = read_plan(plan_file)
    root = output_root if output_root is not None else Path(plan.settings.output_root)
    collected = R.collect(plan, pid, root, str(plan_file))
    report_dir = report_dir if report_dir is not None else root / "report"

    files: dict[str, bytes] = {"results.csv": R.results_csv(collected, metric).encode("utf-8")}
    if not no_plots:
        from hyperlax.report.plots import render_plots

        files.update(render_plots(collected, metric, top_k))
    names = ["results.csv", "report.json", *(n for n in files if n.endswith(".png"))]
    document = R.report_document(collected, metric, top_k, [str(report_dir / n) for n in names])
    files["report.json"] = (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
    try:
        for name in names:
            atomic_write(report_dir / name, files[name])
    except OSError as exc:
        raise HyperlaxError(str(report_dir), f"cannot write the report: {exc.strerror}",
                            "choose another directory with -o") from None

    if fmt == "json":
        click.echo(files["report.json"].decode(), nl=False)
        if not collected.complete:
            click.echo(f"warning: {root}: partial sweep, "
                       f"{document['samples']['missing']} samples missing", err=True)
        return
    for line in R.status_lines(collected, str(plan_file)):
        click.echo(line)
    order = R.ranked(collected, metric)
    click.echo()
    if order:
        for line in R.top_table(collected, order[:top_k], metric):
            click.echo(line)
        click.echo()
        click.echo("to pin the best in a follow-up manifest, paste:")
        click.echo(R.fixed_block(collected, order[0], metric), nl=False)
    else:
        click.echo("no sample finished without diverging: there is no best configuration")
    click.echo()
    click.echo(f"wrote {', '.join(names)} to {report_dir}")


# --- the seed system's command line ------------------------------------------------------------

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
    from hyperlax.spec.recipes import is_recipe_path

    return Path(recipe).stem if is_recipe_path(recipe) else recipe


def seed_manifest(recipe: str, env_id: str, num_samples: int, batch_size: int, sampling: str,
                  seed: int, mode: str, output_root: str | None, manifest_dir: Path) -> str:
    """The manifest equivalent to a seed command line. A recipe path (relative to the current
    directory on the command line) becomes relative to ``manifest_dir``, as manifests have it."""
    import tomli_w

    from hyperlax.spec.recipes import is_recipe_path

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
    from hyperlax.spec.resolve import resolve_text

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
    from hyperlax.store import PLAN_COPY, SWEEP_RECORD

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


def _execute(plan: Any, pid: str, plan_bytes: bytes, root: Path, quiet: bool,
             compile_cache: Path | None) -> None:
    """Run the plan in ``root`` as ``hyperlax exec <root>/plan.msgpack --output-root <root>``
    would (the exec command of the group this command is registered in: its progress,
    interruption handling and exit statuses), or directly when used outside the group."""
    from hyperlax.store import PLAN_COPY

    ctx = click.get_current_context()
    group = ctx.find_root().command
    exec_command = group.get_command(ctx, "exec") if isinstance(group, click.Group) else None
    if exec_command is not None:
        ctx.invoke(exec_command, plan_file=root / PLAN_COPY, output_root=root,
                   compile_cache=compile_cache, quiet=quiet)
    else:
        from hyperlax.progress import Progress
        from hyperlax.runtime.executor import enable_compile_cache, execute

        enable_compile_cache(compile_cache or DEFAULT_COMPILE_CACHE)
        report = execute(plan, pid, plan_bytes, root, progress=Progress(quiet=quiet))
        if not quiet:
            click.echo(f"{report.ran} entries run, {report.skipped} skipped; results in {root}")
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
              envvar="HYPERLAX_COMPILE_CACHE",
              help="JAX persistent compilation cache [default: ~/.cache/hyperlax/jax]")
@user_errors
def sweep_command(recipe: str, env_id: str, num_samples: int, sampling_method: str, seed: int,
                  log_level: str, hparam_batch_size: int, sequential: bool,
                  group_by_structural_hparams: bool, output_root: Path | None,
                  resume_from: Path | None, emit_manifest: Path | None, force: bool,
                  compile_cache: Path | None) -> None:
    """The seed system's sweep command: builds the equivalent manifest, writes it and its plan
    into the sweep directory (--output-root) and executes the plan. Re-running the same command,
    or --resume-from DIR, skips completed entries. With --emit-manifest, only writes the
    manifest: the way to checked-in manifests and `hyperlax plan` / `hyperlax exec`."""
    from hyperlax.planfile import encode_plan, plan_id, read_plan
    from hyperlax.store import PLAN_COPY, SweepDir, atomic_write

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
        SweepDir(root).check_owner(pid)
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
        _execute(plan, pid, (root / PLAN_COPY).read_bytes(), root, quiet, compile_cache)
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
    sweep = SweepDir(root)
    owner = sweep.owner()
    if owner is not None and owner != pid:
        raise HyperlaxError(str(root), f"holds another sweep (plan {owner[:12]}); these flags "
                                       f"make plan {pid[:12]}; nothing was touched",
                            f"continue that sweep with --resume-from {root}, or pass a new "
                            "--output-root")
    sweep.claim(data, pid)  # refuses a non-empty directory that is not a sweep, untouched
    if not (root / SEED_MANIFEST).exists():
        atomic_write(root / SEED_MANIFEST, text.encode("utf-8"))
    if not quiet:
        what = "continuing" if owner == pid else "started"
        click.echo(f"{what} sweep in {root}: {SEED_MANIFEST} and {PLAN_COPY} (plan {pid[:12]}, "
                   f"{len(plan.samples)} samples, {len(plan.entries)} entries, {mode})")
    _execute(plan, pid, data, root, quiet, compile_cache)


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
    from hyperlax.store import atomic_write

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


def register(group: click.Group) -> None:
    for command in (report_command, sweep_command, generate_command):
        group.add_command(command)
