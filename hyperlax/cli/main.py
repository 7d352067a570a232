"""The ``hyperlax`` command line: parses arguments, calls the use cases, prints. Module level
stays JAX-free: ``plan``, ``show``, ``check``, ``init``, ``status`` and ``--help`` must be
instant; ``exec`` imports the runtime (``runtime.run_plan``) when it runs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from hyperlax.exec import options as exec_options

from hyperlax.cli.seed import benchmark as seed_benchmark

from hyperlax.cli.seed import cli as seed_cli
from hyperlax.cli.seed import plot_benchmark as seed_plot_benchmark

from hyperlax.exec import stopping
from hyperlax.cli.errors import ProcessGroup, end_early_stop_handling, user_errors
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import COMPILE_CACHE_HELP, COMPILE_CACHE_VARIABLE

PathArg = click.Path(path_type=Path)
@click.group(cls=ProcessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hyperlax")
def main() -> None:
    """Reproducible hyperparameter sweeps of JAX reinforcement-learning agents.

    \b
    hyperlax init -o sweep.toml     write a starter manifest
    hyperlax plan sweep.toml        validate, sample, group, slice -> plan.msgpack
    hyperlax exec plan.msgpack      run the plan; run it again to resume
    hyperlax report plan.msgpack    results table and plots
    """
    end_early_stop_handling(click.get_current_context().invoked_subcommand)


@main.command("plan")
@click.argument("manifest", type=PathArg)
@click.option("-o", "--output", type=PathArg, default=Path("plan.msgpack"), show_default=True,
              help="where to write the plan")
@click.option("--warn-memory", "warn_gib", type=click.FloatRange(min=0.0), default=16.0,
              show_default=True, envvar="HYPERLAX_WARN_MEMORY_GIB", metavar="GIB",
              help="warn when a structure's estimated memory per vmapped call exceeds this")
@user_errors
def plan_command(manifest: Path, output: Path, warn_gib: float) -> None:
    """Compile MANIFEST (TOML) into a frozen execution plan."""
    from hyperlax.compiler.lower import compile_manifest, plan_summary
    from hyperlax.plan.format import encode_plan, plan_id
    from hyperlax.storage.atomic import atomic_write

    plan, warnings = compile_manifest(manifest, warn_gib=warn_gib)
    for warning in warnings:
        click.echo(f"warning: {manifest.name}: {warning}", err=True)
    try:
        atomic_write(output, encode_plan(plan), within=None)  # the file the user named
    except OSError as exc:
        raise HyperlaxError(str(output), f"cannot write the plan: {exc.strerror}",
                            "choose another path with -o") from None
    s = plan_summary(plan, plan_id(plan))
    click.echo(f"wrote {output}: {s['samples']} samples, {s['structures']} structures, "
               f"{s['entries']} entries ({plan.settings.mode}), {s['compiles']} compiles, "
               f"plan id {s['plan_id'][:12]}")
    if s["compiles"] >= 4 and s["compiles"] > s["samples"] // 4:  # quiet for tiny sweeps
        click.echo(f"hint: {s['compiles']} compiles for {s['samples']} samples: every distinct "
                   "structure compiles separately. Pin structural hyperparameters in [fixed], "
                   "or set structures = K in [sweep] to sample K structures and fill each.",
                   err=True)


@main.command("show")
@click.argument("plan_file", type=PathArg)
@click.option("--samples", is_flag=True, help="print the sample table instead")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True)
@user_errors
def show_command(plan_file: Path, samples: bool, fmt: str) -> None:
    """Explain a plan: settings, hyperparameters, structures, entries."""
    from hyperlax.plan import explain
    from hyperlax.plan.read import read_plan

    plan, pid = read_plan(plan_file)
    text = explain.samples_table(plan, fmt) if samples else explain.describe(plan, pid, fmt)
    click.echo(text, nl=False)


@main.command("check")
@click.argument("manifest", type=PathArg)
@click.argument("plan_file", type=PathArg)
@user_errors
def check_command(manifest: Path, plan_file: Path) -> None:
    """Exit 0 when PLAN_FILE is exactly what MANIFEST compiles to now, else 1 and what differs
    (and whether the results differ, or only the manifest's text)."""
    from hyperlax.plan import explain
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.plan.format import plan_id
    from hyperlax.plan.read import read_plan

    fresh, _ = compile_manifest(manifest)
    stored, stored_id = read_plan(plan_file)
    if plan_id(fresh) == stored_id:
        click.echo(f"{plan_file} is up to date with {manifest} (plan id {stored_id[:12]})")
        return
    click.echo(f"{plan_file} differs from what {manifest} compiles to now:")
    for line in explain.differences(stored, fresh):
        click.echo(f"  {line}")
    click.echo(explain.difference_kind(stored, fresh))
    for line in explain.hyperlax_change_lines(stored, fresh):
        click.echo(line)
    click.echo(f"re-plan with: hyperlax plan {manifest} -o {plan_file}")
    sys.exit(1)


@main.command("init")
@click.option("--recipe", default="ppo_mlp_small", show_default=True,
              help="a built-in recipe or a recipe .toml path (ppo_mlp_small is CPU-sized)")
@click.option("--env", "env_id", default="gymnax.pendulum", show_default=True)
@click.option("--name", default=None, help="sweep name [default: <recipe>-<env>]")
@click.option("--num-samples", default=16, show_default=True, type=int)
@click.option("-o", "--output", type=PathArg, default=Path("sweep.toml"), show_default=True)
@click.option("--force", is_flag=True, help="overwrite an existing file")
@user_errors
def init_command(recipe: str, env_id: str, name: str | None, num_samples: int, output: Path,
                 force: bool) -> None:
    """Write a starter manifest with the recipe's search space spelled out."""
    from hyperlax.manifest.starter import starter_manifest
    from hyperlax.storage.atomic import atomic_write

    if output.exists() and not force:
        raise HyperlaxError(str(output), "already exists", "pass --force to overwrite it")
    text = starter_manifest(recipe, env_id, name, num_samples, output)
    try:
        atomic_write(output, text.encode("utf-8"), within=None)  # the file the user named
    except OSError as exc:
        raise HyperlaxError(str(output), f"cannot write the manifest: {exc.strerror}",
                            "choose another path with -o") from None
    click.echo(f"wrote {output}; next: hyperlax plan {output}")


@main.command("exec")
@click.argument("plan_file", type=PathArg)
@click.option("--output-root", type=PathArg, default=None,
              help="sweep directory [default: the plan's output_root]")
@click.option("--compile-cache", type=PathArg, default=None, envvar=COMPILE_CACHE_VARIABLE,
              help=COMPILE_CACHE_HELP)
@click.option("--manifest", type=PathArg, default=None,
              help="refuse to run unless this manifest is, byte for byte, the one the plan "
                   "was compiled from")
@click.option("--redo-corrupt", is_flag=True,
              help="re-run complete entries whose files changed after completion "
                   "[default: warn, leave them alone, exit 1]")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@user_errors
@exec_options.declared
def exec_command(plan_file: Path, output_root: Path | None, compile_cache: Path | None,
                 manifest: Path | None, redo_corrupt: bool, quiet: bool,
                 options: exec_options.ExecOptions) -> None:
    """Run PLAN_FILE's entries; entries already complete are skipped, so re-running resumes.

    Before running, every complete entry's files are checked against the checksums in its
    marker; one that changed is reported and left alone unless --redo-corrupt is given.

    Several execs of one plan into one output root (on several machines over a shared file
    system, or array-job shards) cooperate: each entry is claimed by one worker at a time, and
    an exec waits at the end for entries that other workers are running.

    \b
    Exit status: 0 every entry complete; 1 a disk error (nothing is marked complete that
    is not), or corrupt entries left alone; 2 bad input (plan, manifest, output root,
    options); 130 / 143 stopped by SIGINT / SIGTERM: run the same command again to resume.
    """
    with stopping.handling():  # first: a stop while reading the plan or importing JAX too
        from hyperlax.exec.run_plan import ExecRequest, run_exec

        request = ExecRequest(plan_file=plan_file, output_root=output_root,
                              compile_cache=compile_cache, manifest=manifest,
                              redo_corrupt=redo_corrupt, quiet=quiet, options=options)
        status = run_exec(request, click.echo)
        if status:
            stopping.finish(status)


@main.command("status")
@click.argument("plan_file", type=PathArg)
@click.option("--output-root", type=PathArg, default=None)
@click.option("--verify", is_flag=True,
              help="also check each complete entry's files against the checksums in its "
                   "marker; exit 1 if any is corrupt")
@click.option("--recheck", "recheck", type=click.IntRange(min=0), default=None, metavar="N",
              help="also re-run entry N into a temporary directory and say whether this "
                   "environment reproduces its curves (bit for bit, within tolerance, or not); "
                   "exit 1 if not")
@user_errors
def status_command(plan_file: Path, output_root: Path | None, verify: bool,
                   recheck: int | None) -> None:
    """Per entry: done, partial (interrupted) or pending; a total; and the environments
    (library versions, device) that produced the complete entries. With --verify, a complete
    entry whose files changed, were truncated or went missing is 'corrupt'. --recheck N trains
    entry N again (the sweep's files are only read)."""
    from hyperlax.exec.status import sweep_status

    status = sweep_status(plan_file, output_root, verify)
    for line in status.lines:
        click.echo(line)
    failed = bool(status.corrupt)
    if recheck is not None:
        from hyperlax.exec.recheck import recheck_entry

        outcome = recheck_entry(plan_file, output_root, recheck)
        for line in outcome.lines:
            click.echo(line)
        failed = failed or not outcome.reproduced
    if failed:
        sys.exit(1)


@main.command("report")
@click.argument("plan_file", type=PathArg)
@click.option("--output-root", type=PathArg, default=None,
              help="sweep directory [default: the plan's output_root]")
@click.option("-o", "--output", "report_dir", type=PathArg, default=None,
              help="where to write the report [default: <sweep dir>/report]")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=5, show_default=True,
              help="how many of the best samples to show and plot")
@click.option("--metric", type=click.Choice(["final", "best"]), default="final",
              show_default=True, help="rank by the final or the best eval return "
                                      "(mean over replicates)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the whole report on stdout, for machines")
@click.option("--no-plots", is_flag=True, help="write results.csv and report.json only")
@click.option("--tensorboard", "tensorboard_dir", type=PathArg, default=None, metavar="DIR",
              help="also write TensorBoard event files (HParams dashboard) into DIR; needs "
                   "pip install 'hyperlax[tensorboard]'")
@user_errors
def report_command(plan_file: Path, output_root: Path | None, report_dir: Path | None,
                   top_k: int, metric: str, fmt: str, no_plots: bool,
                   tensorboard_dir: Path | None) -> None:
    """Results of PLAN_FILE's sweep: results.csv (one row per sample), the top configurations,
    the [fixed] block that pins the best, and PNG plots. A partial sweep reports what it has.
    A population-based training sweep adds its lineage and the best member's schedule, with a
    [pbt] block that trains that schedule again in place of the [fixed] block.
    PLAN_FILE may also be a sweep directory (its plan.msgpack is used). With --tensorboard,
    each sample's curve and hyperparameters also go to TensorBoard's HParams dashboard."""
    from hyperlax.report.study import is_search_dir, write_search_report

    if is_search_dir(plan_file):  # a search directory: its study, round by round
        study = write_search_report(plan_file, report_dir, top_k, not no_plots)
        click.echo(study.json_text if fmt == "json" else study.text, nl=False)
        return
    from hyperlax.report.write import write_report

    if tensorboard_dir is not None:
        from hyperlax.report.tensorboard import require_tensorboardx
        require_tensorboardx()  # a missing extra is refused before anything is written
    report = write_report(plan_file, output_root, report_dir, top_k, metric, not no_plots)
    if tensorboard_dir is not None:
        from hyperlax.report.tensorboard import export_tensorboard

        count = export_tensorboard(report.collected, tensorboard_dir)
        click.echo(f"wrote TensorBoard events of {count} samples to {tensorboard_dir} "
                   f"(view: tensorboard --logdir {tensorboard_dir})", err=True)
    if fmt == "json":
        click.echo(report.json_text, nl=False)
        for warning in (report.partial_warning(), report.collected.environment_warning()):
            if warning:
                click.echo(warning if warning.startswith("warning") else f"warning: {warning}",
                           err=True)
        return
    click.echo(report.text(metric, top_k), nl=False)


@main.command("compare")
@click.argument("sweeps", nargs=-1, required=True, type=PathArg)
@click.option("--label", "labels", multiple=True,
              help="a name per sweep, in order (sweeps with one label are one method across "
                   "environments) [default: each sweep's name]")
@click.option("--metric", type=click.Choice(["final", "best"]), default="final",
              show_default=True)
@click.option("-o", "--output", type=PathArg, default=None,
              help="where to write compare.csv, compare.json and compare.png [default: "
                   "compare/ in the folder holding the sweep directories]")
@click.option("--no-plots", is_flag=True)
@user_errors
def compare_command(sweeps: tuple[Path, ...], labels: tuple[str, ...], metric: str,
                    output: Path | None, no_plots: bool) -> None:
    """Several sweeps (plan files or sweep directories) side by side: per sweep the best,
    median and interquartile mean of its samples' returns with bootstrap intervals; per label
    across environments the normalized IQM with stratified bootstrap intervals."""
    from hyperlax.report.compare import compare_sweeps

    lines, _ = compare_sweeps(list(sweeps), list(labels) or None, metric, output,
                              plots=not no_plots)
    click.echo("\n".join(lines))


@main.command("benchmark")
@click.argument("manifests", nargs=-1, required=True, type=PathArg)
@click.option("--output-root", type=PathArg, default=None,
              help="run each sweep in DIR/<sweep name> [default: each manifest's output_root]")
@click.option("--compile-cache", type=PathArg, default=None, envvar=COMPILE_CACHE_VARIABLE,
              help=COMPILE_CACHE_HELP)
@exec_options.COMPILE_WORKERS_OPTION
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@user_errors
def benchmark_command(manifests: tuple[Path, ...], output_root: Path | None,
                      compile_cache: Path | None, compile_workers: int | None,
                      quiet: bool) -> None:
    """Plan every MANIFEST, then run the sweeps one after another, each in its own sweep
    directory. Complete sweeps are skipped and partial ones resume, so running the same
    command again finishes the benchmark. Nothing runs unless every manifest compiles and no
    two sweeps share a directory. Exit 1 if a sweep failed on disk (the others still ran)."""
    from hyperlax.exec import benchmark

    runs, warnings = benchmark.plan_manifests(list(manifests), output_root)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    with stopping.handling():
        words = ["hyperlax", "benchmark", *map(str, manifests)]  # a stop's hint: all of it
        for flag, value in (("--output-root", output_root), ("--compile-cache", compile_cache),
                            ("--compile-workers", compile_workers)):
            words += [flag, str(value)] if value is not None else []
        outcome = benchmark.run_all(runs, click.echo, quiet, compile_cache, compile_workers,
                                    resume=shlex.join(words + ["--quiet"] * quiet))
        if outcome.stopped:
            stopping.finish(outcome.stopped)
    for line in benchmark.summary_lines(runs, outcome):
        click.echo(line)
    if outcome.status:
        sys.exit(outcome.status)


main.add_command(seed_cli.sweep_command)
main.add_command(seed_cli.generate_command)
main.add_command(seed_cli.single_command)
main.add_command(seed_benchmark.run_benchmark_command)
main.add_command(seed_plot_benchmark.plot_benchmark_command)

# Model-based search in rounds (hyperlax/search/) and the seed's front end to it; both modules
# import neither JAX nor Optuna at module level.
from hyperlax.cli.seed import optuna as seed_optuna  # noqa: E402
from hyperlax.cli.search import search_command  # noqa: E402

main.add_command(search_command)
main.add_command(seed_optuna.optuna_command)


if __name__ == "__main__":
    main()  # a stop while importing this module: see hyperlax/__main__.py
