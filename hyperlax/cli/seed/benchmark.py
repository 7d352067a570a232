"""The seed system's ``run-benchmark``: one sweep per recipe x environment x sweep mode, each
the manifest ``sweep-hp-samples`` would build, in a run directory of its own under the
benchmark directory, planned up front and run by the benchmark use case (``hyperlax.exec.benchmark``),
which skips complete runs and resumes partial ones.

The layout is the original's, without its timestamp: ``<output-root>/<benchmark-name>/
<recipe>_<env>_<mode>-N<samples>-<run length>/`` (recipe with hyphens), so running the same
command again finishes the benchmark instead of starting another. ``--base-config FILE`` reads
the same settings from a TOML file (the original named a Python module); flags given on the
command line win. JAX-free at module level.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

import click
import msgspec

from hyperlax.exec import benchmark

from hyperlax.cli.seed import sweep as S
from hyperlax.cli.errors import user_errors
from hyperlax.errors import HyperlaxError
from hyperlax.storage.atomic import inside_root
from hyperlax.cli.seed.cli import CACHE_OPTION, given, is_quiet, warn
from hyperlax.cli.seed.logfile import saving_logs
from hyperlax.cli.seed.flags import (LOG_LEVEL_OPTION, LOG_LEVELS, OUTPUT_DIR_OPTION,
                                 RUN_LENGTH_OPTION, SAVE_LOGS_OPTION, SEEDS_OPTION,
                                 SeedCommand, SeedSweep, bool_option, manifest_text, options,
                                 parse_run_length, quick_pins, recipe_algorithm, recipe_name)
from hyperlax.exec.options import COMPILE_WORKERS_OPTION

MODES = ("batched", "sequential")


# The ranges of the flags, for the same keys in a --base-config file (click checks the flags;
# a 0 from the file would otherwise pass as "not set" and train the default 8 seeds).
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seeds = Annotated[int, msgspec.Meta(ge=1, le=1024)]
Names = Annotated[list[str], msgspec.Meta(min_length=1)]
BenchmarkName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]


class BenchmarkFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A --base-config file: the flags' settings, by the original's field names."""

    benchmark_name: BenchmarkName | None = None
    algos: Names | None = None
    envs: Names | None = None
    sweep_modes: Names | None = None
    num_samples_per_run: Positive | None = None
    hparam_batch_size: Positive | None = None
    group_by_structural_hparams: bool | None = None
    sampling_method: Literal["qmc_sobol", "random"] | None = None
    run_length_modifier: str | int | None = None
    num_agents_slash_seeds: Seeds | None = None
    output_root: Annotated[str, msgspec.Meta(min_length=1)] | None = None  # relative to the cwd
    seed: Annotated[int, msgspec.Meta(ge=0)] | None = None
    log_level: str | None = None                        # any case, as --log-level


# --base-config field -> the command's parameter
FILE_FIELDS = {"benchmark_name": "benchmark_name", "algos": "algos", "envs": "envs",
               "sweep_modes": "sweep_modes", "num_samples_per_run": "num_samples_per_run",
               "hparam_batch_size": "hparam_batch_size",
               "group_by_structural_hparams": "group_by_structural_hparams",
               "sampling_method": "sampling_method", "run_length_modifier": "run_length",
               "num_agents_slash_seeds": "num_seeds", "output_root": "output_root",
               "seed": "seed", "log_level": "log_level"}


def read_base_config(path: Path) -> BenchmarkFile:
    """The settings of a --base-config file, each checked as its flag is: a wrong type or a
    value out of the flag's range is refused naming the file and the key."""
    from hyperlax.storage.read import read_text
    from hyperlax.manifest.format import parse_toml

    raw = parse_toml(read_text(path, "benchmark file"), str(path))
    try:
        loaded = msgspec.convert(raw, BenchmarkFile)
    except msgspec.ValidationError as exc:
        match = re.match(r"^(.*?)(?: - at `\$\.?(.*)`)?$", str(exc), re.S)
        location, text = (match[2] or ""), match[1].replace("`", "")
        key = location.split("[")[0]
        if key in FILE_FIELDS and isinstance(raw, dict) and key in raw:
            hint = (f"give {key} a value --{key.replace('_', '-')} takes (run-benchmark "
                    "--help), or leave it out for the flag's default")
            text = text.replace(" | null", "")  # every key may be left out
            if ", got " not in text and repr(raw[key]) not in text:
                text += f", got {raw[key]!r}"
        else:
            hint = "keys are run-benchmark's flags with underscores"
        raise HyperlaxError(str(path), [(location, text)], hint) from None
    if loaded.log_level is not None and loaded.log_level.upper() not in LOG_LEVELS:
        raise HyperlaxError(str(path), [("log_level", f"{loaded.log_level!r} is not one of "
                                                      f"{', '.join(LOG_LEVELS)}")])
    if loaded.run_length_modifier is not None:
        try:
            parse_run_length(str(loaded.run_length_modifier), str(path))
        except HyperlaxError as exc:
            raise HyperlaxError(str(path), [("run_length_modifier", message)
                                            for _, message in exc.problems], exc.hint) from None
    return loaded


def merged(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags, with --base-config's values for those not given on the command line."""
    if flags["base_config"] is None:
        return flags
    loaded = read_base_config(flags["base_config"])
    out = dict(flags)
    for field, param in FILE_FIELDS.items():
        value = getattr(loaded, field)
        if value is not None and not given(param):
            out[param] = tuple(value) if isinstance(value, list) else value
    if isinstance(out["run_length"], int):
        out["run_length"] = str(out["run_length"])
    if isinstance(out["output_root"], str):
        out["output_root"] = Path(out["output_root"])
    return out


def benchmark_dir(flags: dict[str, Any], command: str) -> Path:
    """Where the benchmark's runs live: --resume-from DIR, --resume True with --output-root
    DIR (the original's two forms), or <output-root>/<benchmark-name>."""
    if flags["resume_from"] is not None or flags["resume"]:
        path = flags["resume_from"] or flags["output_root"]
        if path is None:
            raise HyperlaxError(command, [("--resume", "needs --output-root: the benchmark "
                                                       "directory to resume")])
        if not path.is_dir():
            raise HyperlaxError(str(path), "no such directory",
                                "pass the benchmark directory: <output-root>/<benchmark-name>")
        return path
    if flags["output_root"] is None:
        raise HyperlaxError(command, [("--output-root", "is required (or --resume-from)")])
    name = flags["benchmark_name"] or "benchmark"
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", name):
        raise HyperlaxError(command, [("--benchmark-name", f"{name!r} must be 1-100 letters, "
                                                           "digits, '.', '_' or '-'")])
    return flags["output_root"] / name


def plan_runs(flags: dict[str, Any], command: str, echo: Any) -> list[benchmark.Run]:
    """One run per recipe x env x mode, compiled; combinations an algorithm cannot act in are
    skipped with a note, as the original skipped them."""
    from hyperlax.environments import ENVS
    from hyperlax.hyperparams import CONFIGS
    from hyperlax.plan.format import plan_id

    from hyperlax.manifest.format import did_you_mean

    for flag, values in (("--algos", flags["algos"]), ("--envs", flags["envs"])):
        if not values:
            raise HyperlaxError(command, [(flag, "needs at least one value")])
    unknown = [(("--envs", f"unknown env {env!r}{did_you_mean(env, ENVS)}; one of "
                           f"{', '.join(ENVS)}")) for env in flags["envs"] if env not in ENVS]
    if unknown:  # before an env id becomes part of a directory name
        raise HyperlaxError(command, unknown)
    modes = flags["sweep_modes"] or ("batched",)
    for mode in modes:
        if mode not in MODES:
            extra = ("; run-benchmark runs sampled sweeps only: search each recipe x env with "
                     "optuna-hp-search") if mode == "optuna" else ""
            raise HyperlaxError(command, [("--sweep-modes", f"unknown mode {mode!r}{extra}; "
                                                            f"one of {', '.join(MODES)}")])
    run_length = parse_run_length(flags["run_length"], command)
    root, n = benchmark_dir(flags, command), flags["num_samples_per_run"]
    # The directory the user named: the benchmark directory to resume, else --output-root,
    # in which hyperlax makes <benchmark-name>/; no sweep may leave it through a planted link.
    resumed = flags["resume_from"] is not None or flags["resume"]
    within = root if resumed else flags["output_root"]
    inside_root(root, within, "run a benchmark")
    runs = []
    for algo in flags["algos"]:
        algorithm = recipe_algorithm(algo, command)
        for env in flags["envs"]:
            for mode in modes:
                name = f"{recipe_name(algo).replace('_', '-')}_{env}_{mode}-N{n}-{run_length.name}"
                info = ENVS[env]
                if info.action_space not in CONFIGS[algorithm].action_spaces:
                    echo(f"skipping {name}: {algorithm.upper()} cannot act in {env} "
                         f"({info.action_space} actions)", err=True)
                    continue
                grouped = mode == "batched" and flags["group_by_structural_hparams"]
                spec = SeedSweep(
                    recipe=algo, env=env, num_samples=n, sampling=flags["sampling_method"],
                    seed=flags["seed"], mode="grouped" if grouped else mode,
                    batch_size=flags["hparam_batch_size"], run_length=run_length,
                    replicates=flags["num_seeds"] or run_length.replicates,
                    output_root=(root / name).as_posix(),
                    pins=quick_pins(run_length, algorithm, set()))
                text = manifest_text(spec, root / name)
                inside_root(root / name, within, "run a sweep")  # before compile_in makes it
                plan, warnings = S.compile_in(root / name, text, S.SEED_MANIFEST,
                                              f"{command} {name}", within=within)
                for warning in warnings:
                    warn(f"{name}: {warning}")
                runs.append(benchmark.Run(name, root / name, plan, plan_id(plan), text,
                                          within=within))
    if not runs:
        raise HyperlaxError(command, "no recipe x env combination can run",
                            "DQN needs discrete actions, SAC continuous ones")
    benchmark.check_runs(runs)
    return runs


def resume_line() -> str:
    """This run-benchmark command line with the flags as given (its --base-config too), for
    the stop hint: run again, it skips the complete sweeps and finishes the others."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    words = ["python", "-m", "hyperlax.cli", ctx.info_name or "run-benchmark"]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag if value else (param.secondary_opts or [flag])[0])
            continue
        for one in value if getattr(param, "multiple", False) else [value]:
            words += [flag, str(one)]
    return shlex.join(words)


@click.command("run-benchmark", cls=SeedCommand)
@options(
    click.option("--base-config", type=click.Path(path_type=Path, dir_okay=False),
                 default=None, metavar="FILE",
                 help="a TOML file with these settings (keys: the flags with underscores); "
                      "flags given here win"),
    click.option("--benchmark-name", default=None, help="[default: benchmark]"),
    click.option("--algos", multiple=True, metavar="RECIPE...", help="recipes to benchmark"),
    click.option("--envs", multiple=True, metavar="ENV...", help="environments"),
    click.option("--sweep-modes", multiple=True, metavar="MODE...",
                 help="batched and/or sequential [default: batched]"),
    click.option("--num-samples-per-run", default=8, show_default=True,
                 type=click.IntRange(min=1)),
    click.option("--hparam-batch-size", default=8, show_default=True,
                 type=click.IntRange(min=1)),
    bool_option("--group-by-structural-hparams", "batched runs group samples by structure"),
    click.option("--sampling-method", type=click.Choice(["qmc_sobol", "random"]),
                 default="qmc_sobol", show_default=True),
    RUN_LENGTH_OPTION, SEEDS_OPTION,
    click.option("--seed", default=42, show_default=True, type=click.IntRange(min=0)),
    click.option("--output-root", type=click.Path(path_type=Path), default=None,
                 help="the benchmark directory is <output-root>/<benchmark-name>"),
    bool_option("--resume", "resume the benchmark directory given as --output-root"),
    click.option("--resume-from", type=click.Path(path_type=Path), default=None,
                 help="a benchmark directory to finish"),
    LOG_LEVEL_OPTION, SAVE_LOGS_OPTION, OUTPUT_DIR_OPTION, CACHE_OPTION,
    COMPILE_WORKERS_OPTION)
@user_errors
def run_benchmark_command(**flags: Any) -> None:
    """The seed system's benchmark: a sweep-hp-samples sweep for every recipe (--algos) x
    environment (--envs) x mode (--sweep-modes), each in its own directory under
    <output-root>/<benchmark-name>/. Everything is planned before anything runs; complete runs
    are skipped and partial ones resume, so the same command finishes an interrupted
    benchmark. Then compare the runs with `hyperlax compare`."""
    from hyperlax.exec import stopping

    command = "run-benchmark"
    flags = merged(flags)
    quiet = is_quiet(flags)
    if given("output_dir"):
        warn("--output-dir has no effect (the original overwrote it too); use --output-root")
    runs = plan_runs(flags, command, click.echo)
    # the benchmark directory holds every sweep's directory and the benchmark's one log
    root = benchmark_dir(flags, command)
    resumed = flags["resume_from"] is not None or flags["resume"]
    with saving_logs(flags["save_logs"], root, within=root if resumed else flags["output_root"]):
        if not quiet:
            for run in runs:
                click.echo(f"{run.label}: " + S.cost_lines(run.plan)[0][len("cost: "):],
                           err=True)
        with stopping.handling():
            outcome = benchmark.run_all(runs, click.echo, quiet, flags["compile_cache"],
                                        flags["compile_workers"], resume=resume_line())
            if outcome.stopped:
                stopping.finish(outcome.stopped)
        for line in benchmark.summary_lines(runs, outcome):
            click.echo(line)
        if not quiet and not outcome.status:
            click.echo(f"plot them: hyperlax plot-benchmark --results-dir-to-plot {root}")
    if outcome.status:
        raise SystemExit(outcome.status)


# tyro's list flags: --algos ppo_mlp sac_mlp
run_benchmark_command.list_flags = ("--algos", "--envs", "--sweep-modes")
