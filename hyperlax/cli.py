"""The ``hyperlax`` command line. Module level stays JAX-free: ``plan``, ``show``, ``check``,
``init`` and ``--help`` must be instant; ``exec`` imports the runtime when it runs."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from hyperlax.errors import HyperlaxError

EXIT_BAD_INPUT = 2


def user_errors(command: Callable) -> Callable:
    """Turn a HyperlaxError into a located message on stderr and exit status 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HyperlaxError as exc:
            for line in exc.render().splitlines():
                click.echo(line if line.startswith("hint: ") else f"error: {line}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hyperlax")
def main() -> None:
    """Reproducible hyperparameter sweeps of JAX reinforcement-learning agents.

    \b
    hyperlax init -o sweep.toml     write a starter manifest
    hyperlax plan sweep.toml        validate, sample, group, slice -> plan.msgpack
    hyperlax exec plan.msgpack      run the plan; run it again to resume
    hyperlax report plan.msgpack    results table and plots
    """


@main.command("plan")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("plan.msgpack"),
              show_default=True, help="where to write the plan")
@user_errors
def plan_command(manifest: Path, output: Path) -> None:
    """Compile MANIFEST (TOML) into a frozen execution plan."""
    from hyperlax.compiler.lower import compile_manifest, plan_summary
    from hyperlax.planfile import encode_plan, plan_id
    from hyperlax.store import atomic_write

    plan, warnings = compile_manifest(manifest)
    for warning in warnings:
        click.echo(f"warning: {manifest.name}: {warning}", err=True)
    try:
        atomic_write(output, encode_plan(plan))
    except OSError as exc:
        raise HyperlaxError(str(output), f"cannot write the plan: {exc.strerror}",
                            "choose another path with -o") from None
    s = plan_summary(plan, plan_id(plan))
    click.echo(f"wrote {output}: {s['samples']} samples, {s['structures']} structures, "
               f"{s['entries']} entries ({plan.settings.mode}), {s['compiles']} compiles, "
               f"plan id {s['plan_id'][:12]}")


@main.command("show")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--samples", is_flag=True, help="print the sample table instead")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True)
@user_errors
def show_command(plan_file: Path, samples: bool, fmt: str) -> None:
    """Explain a plan: settings, hyperparameters, groups, entries."""
    from hyperlax import explain
    from hyperlax.planfile import read_plan

    plan, pid = read_plan(plan_file)
    if samples:
        click.echo(explain.samples_table(plan, fmt), nl=False)
    else:
        click.echo(explain.describe(plan, pid, fmt), nl=False)


@main.command("check")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("plan_file", type=click.Path(path_type=Path))
@user_errors
def check_command(manifest: Path, plan_file: Path) -> None:
    """Exit 0 when PLAN_FILE is exactly what MANIFEST compiles to now, else 1 and what differs."""
    from hyperlax import explain
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.planfile import plan_id, read_plan

    fresh, _ = compile_manifest(manifest)
    stored, stored_id = read_plan(plan_file)
    if plan_id(fresh) == stored_id:
        click.echo(f"{plan_file} is up to date with {manifest} (plan id {stored_id[:12]})")
        return
    click.echo(f"{plan_file} differs from what {manifest} compiles to now:")
    for line in explain.differences(stored, fresh):
        click.echo(f"  {line}")
    click.echo(f"re-plan with: hyperlax plan {manifest} -o {plan_file}")
    sys.exit(1)


@main.command("init")
@click.option("--recipe", default="ppo_mlp", show_default=True)
@click.option("--env", "env_id", default="gymnax.pendulum", show_default=True)
@click.option("--name", default=None, help="sweep name [default: <recipe>-<env>]")
@click.option("--num-samples", default=16, show_default=True, type=int)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("sweep.toml"),
              show_default=True)
@click.option("--force", is_flag=True, help="overwrite an existing file")
@user_errors
def init_command(recipe: str, env_id: str, name: str | None, num_samples: int, output: Path,
                 force: bool) -> None:
    """Write a starter manifest with the recipe's search space spelled out."""
    from hyperlax.starter import starter_manifest
    from hyperlax.store import atomic_write

    if output.exists() and not force:
        raise HyperlaxError(str(output), "already exists", "pass --force to overwrite it")
    text = starter_manifest(recipe, env_id, name, num_samples, output)
    atomic_write(output, text.encode("utf-8"))
    click.echo(f"wrote {output}; next: hyperlax plan {output}")


def _sweep_root(plan_settings_root: str, output_root: Path | None) -> Path:
    return output_root if output_root is not None else Path(plan_settings_root)


@main.command("exec")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="sweep directory [default: the plan's output_root]")
@click.option("--compile-cache", type=click.Path(path_type=Path), default=None,
              envvar="HYPERLAX_COMPILE_CACHE",
              help="JAX persistent compilation cache [default: ~/.cache/hyperlax/jax]")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@user_errors
def exec_command(plan_file: Path, output_root: Path | None, compile_cache: Path | None,
                 quiet: bool) -> None:
    """Run PLAN_FILE's entries; entries already complete are skipped, so re-running resumes."""
    from hyperlax.planfile import read_plan

    plan, pid = read_plan(plan_file)
    root = _sweep_root(plan.settings.output_root, output_root)
    from hyperlax.store import SweepDir

    SweepDir(root).check_owner(pid)  # refuse a foreign directory before importing JAX
    from hyperlax.progress import Progress
    from hyperlax.runtime.executor import enable_compile_cache, execute

    enable_compile_cache(compile_cache or Path.home() / ".cache" / "hyperlax" / "jax")
    report = execute(plan, pid, plan_file.read_bytes(), root, progress=Progress(quiet=quiet))
    if not quiet:
        click.echo(f"{report.ran} entries run, {report.skipped} skipped; {report.compiles} "
                   f"compiles ({report.compile_seconds:.1f}s); {report.env_steps:,} env steps "
                   f"in {report.seconds:.1f}s; results in {root}")


@main.command("status")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None)
@user_errors
def status_command(plan_file: Path, output_root: Path | None) -> None:
    """Per entry: done, partial (interrupted) or pending; and a total."""
    from hyperlax.planfile import read_plan
    from hyperlax.store import SweepDir

    plan, pid = read_plan(plan_file)
    root = _sweep_root(plan.settings.output_root, output_root)
    sweep = SweepDir(root)
    owner = sweep.owner() if root.exists() else None
    if owner is not None and owner != pid:
        raise HyperlaxError(str(root), f"belongs to another plan ({owner[:12]})",
                            "pass the --output-root this plan was run with")
    counts = {"done": 0, "partial": 0, "pending": 0}
    for entry in plan.entries:
        state = sweep.state(entry.path)
        counts[state] += 1
        click.echo(f"{state:<8} {entry.path}  ({len(entry.samples)} samples)")
    click.echo(f"{counts['done']}/{len(plan.entries)} done, {counts['partial']} partial, "
               f"{counts['pending']} pending in {root}")


if __name__ == "__main__":
    main()
