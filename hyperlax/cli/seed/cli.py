"""The seed system's command line: ``sweep-hp-samples``, ``generate-hp-samples`` and
``run-single-hp`` (``run-benchmark`` is in ``seed_benchmark``). A thin front end: it builds the
equivalent manifest from the seed's flags (``seed_flags``), compiles it, says what it costs, and
runs the plan through the same use case as ``hyperlax exec`` (``seed_sweep``). Registered on
the ``hyperlax`` group by ``hyperlax.cli.main``, so ``python -m hyperlax.cli sweep-hp-samples ...``
works.

Module level stays JAX-free: ``--help`` and flag errors must be instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from hyperlax.cli.seed import sweep as S
from hyperlax.cli.errors import user_errors
from hyperlax.cli.seed.logfile import saving_logs
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import (COMPILE_CACHE_HELP, COMPILE_CACHE_VARIABLE,
                                    COMPILE_WORKERS_OPTION)
from hyperlax.cli.seed.flags import (EXPERIMENT_TYPES, LOG_LEVEL_OPTION, OUTPUT_DIR_OPTION,
                                 QUIET_LEVELS, RECIPE_OPTION, RUN_LENGTH_OPTION,
                                 SAVE_LOGS_OPTION, SEED_OPTION, SEEDS_OPTION, SeedCommand,
                                 SeedSweep,
                                 batching_options, bool_option, listed_names, manifest_text,
                                 options, parse_run_length, quick_pins, recipe_algorithm,
                                 recipe_name, sampling_options)

PathType = click.Path(path_type=Path)
OUTPUT_ROOT_OPTION = click.option(
    "--output-root", type=PathType, default=None,
    help="sweep directory; gets sweep.toml, plan.msgpack and <recipe>/<env>/samples/...")
EMIT_OPTION = click.option("--emit-manifest", type=PathType, default=None,
                           help="only write the equivalent manifest here (no plan, no training)")
FORCE_OPTION = click.option("--force", is_flag=True,
                            help="with --emit-manifest: overwrite an existing file")
CACHE_OPTION = click.option("--compile-cache", type=PathType, default=None,
                            envvar=COMPILE_CACHE_VARIABLE, help=COMPILE_CACHE_HELP)
RESUME_OPTIONS = [
    bool_option("--resume", "resume the sweep in --output-root (the original's form of "
                            "--resume-from)"),
    click.option("--resume-from", type=PathType, default=None,
                 help="a sweep to run again, skipping completed entries: its output root or "
                      "<output-root>/<recipe>/<env>/"),
]
RUN_OPTIONS = [LOG_LEVEL_OPTION, SAVE_LOGS_OPTION, OUTPUT_DIR_OPTION, CACHE_OPTION,
               COMPILE_WORKERS_OPTION]


def env_option(default: str | None) -> Any:
    return click.option("--env-config", "env_id", default=default, show_default=True,
                        help=None if default else "environment [default: the first the "
                                                  "recipe's algorithm can act in]")


def given(name: str) -> bool:
    return click.get_current_context().get_parameter_source(name) == ParameterSource.COMMANDLINE


def warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def is_quiet(flags: dict[str, Any]) -> bool:
    return flags["log_level"].upper() in QUIET_LEVELS


def mode_of(flags: dict[str, Any]) -> str:
    if flags.get("sequential"):
        if flags.get("group_by_structural_hparams"):
            warn("--group-by-structural-hparams is ignored when --sequential is used")
        return "sequential"
    return "grouped" if flags.get("group_by_structural_hparams") else "batched"


def seed_sweep(flags: dict[str, Any], command: str, output_root: Path | None,
               single: bool = False) -> SeedSweep:
    """The sweep the flags ask for, after the checks and warnings only flags can have."""
    run_length = parse_run_length(flags["run_length"], command)
    if given("output_dir"):
        warn("--output-dir has no effect (the original overwrote it too); use --output-root")
    sampling, num_samples, samples_file = "qmc_sobol", None, None
    if not single:
        if (flags["min_hparam_batch_size"] or 0) > flags["hparam_batch_size"]:
            raise HyperlaxError(command, [("--min-hparam-batch-size",
                                           f"{flags['min_hparam_batch_size']} exceeds "
                                           f"--hparam-batch-size {flags['hparam_batch_size']}")])
        saltelli = EXPERIMENT_TYPES[flags["experiment_type"]] == "saltelli"
        if flags["omit_ab"] and saltelli:
            raise HyperlaxError(command, [("--omit-ab", "A and B without the AB_i matrices give "
                                                        "no sensitivity indices; hyperlax has no "
                                                        "such design")],
                                "for 2N Sobol points, pass --num-samples 2N instead")
        if flags["omit_ab"]:
            warn("--omit-ab has no effect without --experiment-type sobol_matrices_A_B_AB")
        samples_file = flags["load_hyperparams"]
        if samples_file is not None:
            for name in ("sampling_method", "experiment_type", "structures"):
                if given(name):
                    warn(f"--{name.replace('_', '-')} has no effect with --load-hyperparams")
            num_samples = flags["num_samples"] if given("num_samples") else None
        else:
            if saltelli and given("sampling_method"):
                warn("--sampling-method is ignored: Saltelli's design is a Sobol sequence")
            sampling = "saltelli" if saltelli else flags["sampling_method"]
            num_samples = flags["num_samples"]
    pins = {}
    if run_length.shrink:
        named = listed_names(samples_file, command) if samples_file else set()
        pins = quick_pins(run_length, recipe_algorithm(flags["recipe"], command), named)
    return SeedSweep(
        recipe=flags["recipe"], env=flags["env_id"], num_samples=num_samples,
        sampling=sampling, seed=flags["seed"], mode="batched" if single else mode_of(flags),
        batch_size=1 if single else flags["hparam_batch_size"], run_length=run_length,
        replicates=flags["num_seeds"] or run_length.replicates,
        output_root=output_root.as_posix() if output_root is not None else None,
        structures=None if single or samples_file else flags["structures"],
        samples_file=samples_file, single=single, pins=pins, command=command)


def emit(spec: SeedSweep, path: Path, force: bool, quiet: bool) -> None:
    """--emit-manifest: write the equivalent manifest (after checking it compiles)."""
    from hyperlax.storage.atomic import atomic_write

    if path.exists() and not force:
        raise HyperlaxError(str(path), "already exists", "pass --force to overwrite it")
    text = manifest_text(spec, path.parent)
    plan, warnings = S.compile_in(path.parent, text, path.name, spec.command)
    for warning in warnings:
        warn(warning)
    if spec.output_root is not None and Path(spec.output_root).is_absolute():
        click.echo("note: output_root is an absolute path; a relative one (to the directory "
                   "hyperlax runs in) travels better in a checked-in manifest", err=True)
    try:
        atomic_write(path, text.encode("utf-8"), within=None)  # --emit-manifest names it
    except OSError as exc:
        raise HyperlaxError(str(path), f"cannot write: {exc.strerror}") from None
    if not quiet:
        click.echo(f"wrote {path}: {len(plan.samples)} samples, {len(plan.entries)} entries "
                   f"({spec.mode}); next: hyperlax plan {path} -o plan.msgpack && hyperlax "
                   "exec plan.msgpack")


def run_new(spec: SeedSweep, root: Path, flags: dict[str, Any]) -> None:
    """Write the manifest and plan into ``root`` (or continue the sweep there) and run it."""
    quiet = is_quiet(flags)
    text = manifest_text(spec, root)
    plan, warnings = S.compile_in(root, text, S.SEED_MANIFEST, spec.command)
    for warning in warnings:
        warn(warning)
    pid, continuing = S.start_sweep(root, text, plan, spec.command)
    with saving_logs(flags["save_logs"], root, within=root):  # the sweep is ours from here
        if not quiet:
            what = "continuing" if continuing else "started"
            click.echo(f"{what} sweep in {root}: {S.SEED_MANIFEST} and plan.msgpack (plan "
                       f"{pid[:12]}, {len(plan.samples)} samples, {len(plan.entries)} "
                       f"entries, {spec.mode})")
            for line in S.cost_lines(plan, root):  # a finished sweep run again: none
                click.echo(line, err=True)
        run_plan_in(root, flags)


def run_plan_in(root: Path, flags: dict[str, Any]) -> None:
    """Execute the plan in ``root``; a stop or a failure ends the command with exec's status."""
    from hyperlax.exec import stopping

    quiet = is_quiet(flags)
    with stopping.handling():
        status = S.execute(root, click.echo, quiet, flags["compile_cache"],
                           flags["compile_workers"])
        if status:
            stopping.finish(status)
    if not quiet:
        click.echo(f"next: hyperlax report {root}")


def resume_conflicts(plan: Any, flags: dict[str, Any]) -> list[tuple[str, str]]:
    """Flags given on the command line that disagree with the plan being resumed."""
    s = plan.settings
    listed = s.sampling == "listed"
    base = s.num_samples // (len(plan.sampled) + 2) if s.sampling == "saltelli" else \
        s.num_samples
    checks: list[tuple[str, str, Any, Any]] = [
        ("recipe", "--algo-and-network-config", recipe_name(flags["recipe"]), s.recipe),
        ("env_id", "--env-config", flags["env_id"], s.env),
        ("seed", "--seed", flags["seed"], s.seed),
        ("sequential", "--sequential", flags["sequential"], s.mode == "sequential"),
        ("num_seeds", "--num-agents-slash-seeds", flags["num_seeds"], s.seeds_per_sample),
        ("structures", "--structures", flags["structures"], s.structures),
    ]
    if not listed:
        checks += [("num_samples", "--num-samples", flags["num_samples"], base),
                   ("experiment_type", "--experiment-type", flags["experiment_type"],
                    "sobol_matrices_A_B_AB" if s.sampling == "saltelli"
                    else "independent_samples")]
        if s.sampling != "saltelli":
            checks.append(("sampling_method", "--sampling-method", flags["sampling_method"],
                           s.sampling))
    if s.mode != "sequential":
        checks.append(("hparam_batch_size", "--hparam-batch-size", flags["hparam_batch_size"],
                       s.batch_size))
        if not (given("sequential") and flags["sequential"]):
            checks.append(("group_by_structural_hparams", "--group-by-structural-hparams",
                           flags["group_by_structural_hparams"], s.mode == "grouped"))
    if given("run_length"):
        budget = S.budget_of(parse_run_length(flags["run_length"], "resume"), plan)
        checks.append(("run_length", "--run-length-modifier", budget, S.planned_budget(plan)))
    if given("load_hyperparams"):
        digest = S.file_sha256(flags["load_hyperparams"])
        checks.append(("load_hyperparams", "--load-hyperparams", digest,
                       plan.samples_file_sha256))
    problems = []
    for param, flag, value, planned in checks:
        if given(param) and value != planned:
            shown = flags[param]
            problems.append((flag, f"{shown} differs from the sweep being resumed "
                                   f"({_planned_text(param, planned)})"))
    return problems


def _planned_text(param: str, planned: Any) -> str:
    if param == "run_length":
        return f"{planned[0]:,} env steps, {planned[1]} evaluations of {planned[2]} episodes"
    if param == "load_hyperparams":
        return "another file" if planned else "sampled, not loaded"
    return str(planned)


@click.command("sweep-hp-samples", cls=SeedCommand)
@options(RECIPE_OPTION, env_option("gymnax.pendulum"), *sampling_options(8),
         *batching_options(4), RUN_LENGTH_OPTION, SEEDS_OPTION, SEED_OPTION,
         OUTPUT_ROOT_OPTION, *RESUME_OPTIONS, EMIT_OPTION, FORCE_OPTION, *RUN_OPTIONS)
@user_errors
def sweep_command(**flags: Any) -> None:
    """The seed system's sweep command: builds the equivalent manifest, writes it and its plan
    into the sweep directory (--output-root), prints what the sweep costs, and executes the
    plan. Re-running the same command, or --resume-from DIR, skips completed entries. With
    --emit-manifest, only writes the manifest: the way to checked-in manifests and
    `hyperlax plan` / `hyperlax exec`. Defaults are the original's, 8 seeds per configuration
    included (--num-agents-slash-seeds)."""
    command, output_root = "sweep-hp-samples", flags["output_root"]
    resume_from = flags["resume_from"]
    if flags["resume"] and resume_from is None:
        if output_root is None:
            raise HyperlaxError(command, [("--resume", "needs --output-root: the sweep to "
                                                       "resume")], "or pass --resume-from DIR")
        resume_from, output_root = output_root, None
    if resume_from is not None:
        if flags["emit_manifest"] is not None:
            raise HyperlaxError(command, [("--emit-manifest", "cannot be combined with "
                                                              "--resume-from")])
        root = S.find_sweep(resume_from)
        if output_root is not None and output_root.resolve() != root.resolve():
            raise HyperlaxError(command, [("--output-root", f"{output_root} is not the sweep "
                                                            f"directory being resumed ({root})")],
                                "pass only --resume-from")
        plan, pid = S.read_sweep(root)
        conflicts = resume_conflicts(plan, flags)
        if conflicts:
            raise HyperlaxError(f"{command} --resume-from {resume_from}", conflicts,
                                "drop those flags (the sweep's plan fixes them), or start a new "
                                "sweep with a new --output-root")
        with saving_logs(flags["save_logs"], root, within=root):
            if not is_quiet(flags):
                click.echo(f"resuming the sweep in {root} (plan {pid[:12]})")
                for line in S.cost_lines(plan, root):  # what is left; none when done
                    click.echo(line, err=True)
            run_plan_in(root, flags)
        return

    spec = seed_sweep(flags, command, output_root)
    if flags["emit_manifest"] is not None:
        emit(spec, flags["emit_manifest"], flags["force"], is_quiet(flags))
        return
    if output_root is None:
        raise HyperlaxError(command, [("--output-root", "is required (or --resume-from, or "
                                                        "--emit-manifest)")],
                            "pass a new or empty directory for the sweep")
    run_new(spec, output_root, flags)


@click.command("run-single-hp", cls=SeedCommand)
@options(RECIPE_OPTION, env_option("gymnax.pendulum"), RUN_LENGTH_OPTION, SEEDS_OPTION,
         SEED_OPTION, OUTPUT_ROOT_OPTION, EMIT_OPTION, FORCE_OPTION, *RUN_OPTIONS)
@user_errors
def single_command(**flags: Any) -> None:
    """The seed system's single run: trains the recipe's default hyperparameters once on the
    environment, with every seed (--num-agents-slash-seeds, default 8). The equivalent manifest
    has an empty [space]. Outputs and resuming as sweep-hp-samples: re-run to resume."""
    command = "run-single-hp"
    spec = seed_sweep(flags, command, flags["output_root"], single=True)
    if flags["emit_manifest"] is not None:
        emit(spec, flags["emit_manifest"], flags["force"], is_quiet(flags))
        return
    if flags["output_root"] is None:
        raise HyperlaxError(command, [("--output-root", "is required (or --emit-manifest)")],
                            "pass a new or empty directory for the run")
    run_new(spec, flags["output_root"], flags)


# Flags of sweep-hp-samples that do not change which samples are drawn.
NO_TABLE_EFFECT = ["hparam_batch_size", "min_hparam_batch_size", "sequential",
                   "group_by_structural_hparams", "num_seeds", "output_root", "resume",
                   "resume_from", "emit_manifest", "force", "save_logs", "output_dir",
                   "compile_cache", "compile_workers"]


@click.command("generate-hp-samples", cls=SeedCommand)
@options(RECIPE_OPTION, env_option(None), *sampling_options(256), *batching_options(4),
         RUN_LENGTH_OPTION, SEEDS_OPTION, SEED_OPTION, OUTPUT_ROOT_OPTION, *RESUME_OPTIONS,
         EMIT_OPTION, FORCE_OPTION, *RUN_OPTIONS,
         click.option("--output-file", type=PathType, default=Path("hyperparam_samples.csv"),
                      show_default=True, help="CSV file to write; '-' for stdout"))
@user_errors
def generate_command(**flags: Any) -> None:
    """The seed system's sample generation: the samples sweep-hp-samples would run with the
    same flags, as CSV (sample, seed, structure, one column per sampled hyperparameter, full
    precision), which --load-hyperparams reads back. No training. Accepts every flag of
    sweep-hp-samples; those that only say how samples run (batching, seeds, output, resume)
    do not change the table."""
    from hyperlax.storage.atomic import atomic_write

    command = "generate-hp-samples"
    quiet = is_quiet(flags)
    ignored = [f"--{n.replace('_', '-')}" for n in NO_TABLE_EFFECT if given(n)]
    if ignored and not quiet:
        click.echo(f"note: {', '.join(ignored)} do not change the sample table", err=True)
    if flags["env_id"] is None:  # the samples do not depend on it: any env the recipe fits
        flags["env_id"] = first_env(recipe_algorithm(flags["recipe"], command))
    spec = seed_sweep({**flags, "emit_manifest": None}, command, None)
    plan, warnings = S.compile_text(manifest_text(spec, Path.cwd()), S.SEED_MANIFEST,
                                    Path.cwd(), command)
    for warning in warnings:
        warn(warning)
    table = S.samples_csv(plan)
    output = flags["output_file"]
    if str(output) == "-":
        click.echo(table, nl=False)
        return
    try:
        atomic_write(output, table.encode("utf-8"), within=None)  # --output-file names it
    except OSError as exc:
        raise HyperlaxError(str(output), f"cannot write: {exc.strerror}",
                            "choose another path with --output-file") from None
    if not quiet:
        click.echo(f"wrote {len(plan.samples)} samples of {plan.settings.recipe} to {output}",
                   err=True)


def first_env(algorithm: str) -> str:
    from hyperlax.environments import ENVS
    from hyperlax.hyperparams import CONFIGS

    spaces = CONFIGS[algorithm].action_spaces
    fitting = [e for e, info in ENVS.items() if info.action_space in spaces]
    return "gymnax.pendulum" if "gymnax.pendulum" in fitting else fitting[0]
