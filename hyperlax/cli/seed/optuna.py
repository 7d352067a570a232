"""The seed system's ``optuna-hp-search``: its flags become a search manifest (``[sweep]`` and
``[search]``, the recipe's space), written as ``search.toml`` into the search directory and run
by the search use case (``hyperlax.search.run``), as ``hyperlax search`` runs it. Registered
on the ``hyperlax`` group by ``hyperlax.cli.main``, so ``python -m hyperlax.cli optuna-hp-search``
works.

Like the seed, ``--objective-names a b`` and ``--objective-directions maximize maximize`` take
several values after one flag (or the flag repeated, or a comma list). The seed's objective
names map to ours (``search.objectives``). ``--storage`` is a file name in the search
directory (the seed's ``optuna_study.db``) or a URL. Resuming is running the same command
again, ``--resume-from DIR``, or the seed's ``--resume True --output-root DIR``; a larger
``--n-trials`` extends a finished search. Exec's options but ``--shard`` (``--devices``,
``--ray``, ...), which the seed had not, say where each round runs, as for ``hyperlax search``.
Module level stays JAX-free and Optuna-free.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from hyperlax.cli.errors import user_errors
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import (COMPILE_CACHE_HELP, COMPILE_CACHE_VARIABLE,
                                    SEARCH_SHARD_REFUSAL, ExecOptions, declared)
from hyperlax.cli.seed.cli import given
from hyperlax.cli.seed.logfile import ConsoleLog, saving_logs
from hyperlax.cli.seed.flags import (LOG_LEVEL_OPTION, OUTPUT_DIR_OPTION, QUIET_LEVELS,
                                     RUN_LENGTH_OPTION, RUN_LENGTHS, SAVE_LOGS_OPTION,
                                     SEEDS_OPTION, SeedCommand, bool_option)

COMMAND = "optuna-hp-search"
SEED_MANIFEST = "search.toml"
STORAGE_DEFAULT = "optuna_study.db"   # the seed's
LIST_FLAGS = ("--objective-names", "--objective-directions")

# manifest locations as this command line spells them, for error messages
FLAG_OF = {"sweep.recipe": "--algo-and-network-config", "sweep.env": "--env-config",
           "sweep.seed": "--seed", "sweep.batch_size": "--runner-hparam-batch-size",
           "sweep.output_root": "--output-root", "search.trials": "--n-trials",
           "search.trials_per_round": "--optuna-study-batch-size",
           "search.method": "--sampler", "search.study_name": "--study-name",
           "search.objectives": "--objective-names",
           "sweep.total_timesteps": "--run-length-modifier",
           "sweep.num_evaluations": "--run-length-modifier",
           "sweep.eval_episodes": "--run-length-modifier",
           "sweep.seeds_per_sample": "--num-seeds"}
BUDGET_KEYS = ("total_timesteps", "num_evaluations", "eval_episodes")


@dataclass(frozen=True)
class SeedSearch:
    """What the flags say."""

    recipe: str
    env: str
    seed: int
    n_trials: int
    study_batch: int
    runner_batch: int
    sampler: str
    study_name: str
    objectives: tuple[tuple[str, str], ...]   # (our metric, direction)
    # --run-length-modifier: its name, the budget keys it sets (the rest are the recipe's),
    # and a quick run's [fixed] structure; --num-seeds (None: the manifest's one replicate)
    run_length: str = "default"
    budget: dict[str, int] = field(default_factory=dict)
    pins: dict[str, Any] = field(default_factory=dict)
    replicates: int | None = None

    def manifest_text(self, output_root: str) -> str:
        import tomli_w

        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.study_name).strip("-._")[:100] or "search"
        sweep = {"name": name, "recipe": self.recipe, "recipe_space": "include",
                 "env": self.env, "seed": self.seed,
                 "mode": "batched", "batch_size": self.runner_batch,
                 **({} if self.replicates is None else {"seeds_per_sample": self.replicates}),
                 **self.budget, "output_root": output_root}
        search = {"method": self.sampler, "trials": self.n_trials,
                  "trials_per_round": self.study_batch, "study_name": self.study_name,
                  "objectives": [{"metric": m, "direction": d} for m, d in self.objectives]}
        header = ["# hyperlax search manifest, equivalent to the seed command line",
                  f"#   python -m hyperlax.cli {COMMAND} " + " ".join(self.flags()),
                  "# Run it with `hyperlax search <this file>`; the space is the recipe's.", ""]
        tables = {"sweep": sweep, "search": search, **({"fixed": self.pins} if self.pins else {})}
        return "\n".join(header) + tomli_w.dumps(tables)

    def flags(self) -> list[str]:
        return [f"--algo-and-network-config {self.recipe}", f"--env-config {self.env}",
                f"--study-name {self.study_name}", f"--n-trials {self.n_trials}",
                "--objective-names " + " ".join(m for m, _ in self.objectives),
                "--objective-directions " + " ".join(d for _, d in self.objectives),
                f"--sampler {self.sampler}", f"--optuna-study-batch-size {self.study_batch}",
                f"--runner-hparam-batch-size {self.runner_batch}", f"--seed {self.seed}",
                *([] if self.run_length == "default" else
                  [f"--run-length-modifier {self.run_length}"]),
                *([] if self.replicates is None else [f"--num-seeds {self.replicates}"])]


def run_length_settings(text: str, recipe: str, num_seeds: int | None
                        ) -> dict[str, Any]:
    """SeedSearch's fields for --run-length-modifier and --num-seeds: the budget keys the
    modifier sets, a quick run's structure pins, and the replicates (--num-seeds, else quick's
    and long's own, else none: the manifest's one replicate, as before these flags)."""
    from hyperlax.cli.seed.flags import parse_run_length, quick_pins, recipe_algorithm

    length = parse_run_length(text, COMMAND)
    budget = {k: getattr(length, k) for k in BUDGET_KEYS if getattr(length, k) is not None}
    pins = quick_pins(length, recipe_algorithm(recipe, COMMAND), set()) if length.shrink \
        else {}
    preset = length.name in RUN_LENGTHS and length.name != "default"
    replicates = num_seeds if num_seeds is not None else \
        (length.replicates if preset else None)
    return {"run_length": length.name, "budget": budget, "pins": pins,
            "replicates": replicates}


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def objectives(names: tuple[str, ...], directions: tuple[str, ...]
               ) -> tuple[tuple[str, str], ...]:
    from hyperlax.search.objectives import METRICS, SEED_ALIASES, metric_name

    names_, directions_ = _split(names), _split(directions)
    problems = []
    for name in names_:
        if metric_name(name) is None:
            problems.append(("--objective-names", f"unknown objective {name!r}; one of "
                                                  f"{', '.join(METRICS)} (or the seed's "
                                                  f"{', '.join(SEED_ALIASES)})"))
    for direction in directions_:
        if direction not in ("maximize", "minimize"):
            problems.append(("--objective-directions", f"{direction!r}: maximize or minimize"))
    if len(names_) != len(directions_):
        problems.append(("--objective-directions", f"{len(directions_)} directions for "
                                                   f"{len(names_)} objectives; give one per "
                                                   "objective"))
    if problems:
        raise HyperlaxError(COMMAND, problems)
    return tuple((metric_name(n), d) for n, d in zip(names_, directions_))


def _find_search(directory: Path) -> Path:
    """The search directory holding ``directory``: itself or one of the three above it (a
    round's directory, say)."""
    from hyperlax.search.study_file import STUDY_FILE

    if not directory.is_dir():
        raise HyperlaxError(str(directory), "no such directory",
                            f"pass the --output-root the {COMMAND} run was started with")
    for candidate in [directory, *list(directory.parents)[:3]]:
        if (candidate / STUDY_FILE).is_file():
            return candidate
    raise HyperlaxError(str(directory), f"is not a hyperlax search directory (no {STUDY_FILE} "
                                        "in it or above it)",
                        f"pass the --output-root a {COMMAND} run was started with")


def _recorded(root: Path) -> SeedSearch:
    """The flags of the search in ``root``, read back from its search.toml."""
    from hyperlax.manifest.format import decode_manifest
    from hyperlax.storage.read import MAX_MANIFEST_BYTES, decode_text, read_bytes

    path = root / SEED_MANIFEST
    if not path.exists() and not path.is_symlink():
        raise HyperlaxError(str(root), f"has no {SEED_MANIFEST}: it was not started by {COMMAND}",
                            f"resume it with: hyperlax search <its manifest> --output-root {root}")
    from hyperlax.manifest.format import parse_toml

    # written by the search itself: never read through a link leading out of its directory
    text = decode_text(read_bytes(path, "manifest", MAX_MANIFEST_BYTES, within=root), path,
                       "manifest")
    manifest = decode_manifest(text, str(path))
    raw_sweep = parse_toml(text, str(path)).get("sweep", {})
    given_length = re.search(r"--run-length-modifier (\S+)", text.split("\n[", 1)[0])
    sweep, search = manifest.sweep, manifest.search
    if search is None:
        raise HyperlaxError(str(path), "has no [search] section")
    return SeedSearch(recipe=sweep.recipe, env=sweep.env, seed=sweep.seed,
                      n_trials=search.trials, study_batch=search.trials_per_round,
                      runner_batch=sweep.batch_size, sampler=search.method,
                      study_name=search.study_name or sweep.name,
                      objectives=tuple((o.metric, o.direction) for o in search.objectives),
                      run_length=given_length[1] if given_length else "default",
                      budget={k: raw_sweep[k] for k in BUDGET_KEYS if k in raw_sweep},
                      pins=dict(manifest.fixed),
                      replicates=raw_sweep.get("seeds_per_sample"))


_RESUME_CHECKS = [("recipe", "algo_and_network_config", "--algo-and-network-config"),
                  ("env", "env_config", "--env-config"), ("seed", "seed", "--seed"),
                  ("study_batch", "optuna_study_batch_size", "--optuna-study-batch-size"),
                  ("runner_batch", "runner_hparam_batch_size", "--runner-hparam-batch-size"),
                  ("sampler", "sampler", "--sampler"), ("study_name", "study_name",
                                                        "--study-name"),
                  ("budget", "run_length", "--run-length-modifier"),
                  ("replicates", "num_seeds", "--num-seeds")]


def _resumed(root: Path, flags: SeedSearch) -> SeedSearch:
    """The recorded search, with --n-trials as given (a larger budget extends it); any other
    flag given that contradicts it is refused."""
    recorded = _recorded(root)
    def shown(search: SeedSearch, field: str) -> object:
        return search.run_length if field == "budget" else getattr(search, field)

    problems = [(flag, f"{shown(flags, field)} differs from the search being resumed "
                       f"({shown(recorded, field)})")
                for field, param, flag in _RESUME_CHECKS
                if given(param) and getattr(flags, field) != getattr(recorded, field)]
    if (given("objective_names") or given("objective_directions")) and \
            flags.objectives != recorded.objectives:
        problems.append(("--objective-names", f"{list(flags.objectives)} differ from the "
                                              f"search being resumed "
                                              f"({list(recorded.objectives)})"))
    if problems:
        raise HyperlaxError(f"{COMMAND} --resume-from {root}", problems,
                            "drop those flags (the search fixes them), or start a new search "
                            "with a new --output-root")
    return replace(recorded, n_trials=flags.n_trials) if given("n_trials") else recorded


@click.command(COMMAND, cls=SeedCommand)
@click.option("--algo-and-network-config", "algo_and_network_config", default="ppo_mlp",
              show_default=True, help="recipe: a built-in name or a recipe .toml path; its "
                                      "[space] is searched")
@click.option("--env-config", "env_config", default="gymnax.pendulum", show_default=True)
@click.option("--study-name", default="hyperlax_optuna_study", show_default=True)
@click.option("--storage", default=STORAGE_DEFAULT, show_default=True,
              help="Optuna storage: a file name in the search directory, or a URL "
                   "(sqlite:///path/study.db)")
@click.option("--n-trials", default=100, show_default=True, type=click.IntRange(min=1),
              help="configurations to try in all")
@click.option("--objective-names", multiple=True, default=("peak_performance",),
              show_default=True, help="one or more of final_return, best_return, auc (the "
                                      "seed's peak_performance, final_performance, "
                                      "normalized_auc too)")
@click.option("--objective-directions", multiple=True, default=("maximize",),
              show_default=True, help="maximize or minimize, one per objective")
@click.option("--sampler", type=click.Choice(["tpe", "nsgaii"]), default="tpe",
              show_default=True)
@click.option("--optuna-study-batch-size", default=1, show_default=True,
              type=click.IntRange(min=1), help="trials asked per round (trained together)")
@click.option("--runner-hparam-batch-size", default=1, show_default=True,
              type=click.IntRange(min=1), help="at most this many trials per vmapped batch")
@click.option("--seed", default=42, show_default=True, type=click.IntRange(min=0),
              help="seed of the sampler (and of every round's training seeds)")
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="the search directory: search.json, search.toml, the storage, rounds/")
@bool_option("--resume", "continue the search in --output-root (or in a search directory "
                         "above it); re-running the same command resumes anyway")
@click.option("--resume-from", type=click.Path(path_type=Path), default=None,
              help="a search directory: continue its search (--n-trials may raise its budget)")
@click.option("--emit-manifest", type=click.Path(path_type=Path), default=None,
              help="only write the equivalent search manifest here (no training)")
@click.option("--force", is_flag=True, help="with --emit-manifest: overwrite an existing file")
@RUN_LENGTH_OPTION
@SEEDS_OPTION
@bool_option("--save-optuna-plots", "after the search, draw Optuna's figures (history, "
                                    "parameter importance, parallel coordinates) as PNGs into "
                                    "optuna_plots/ in the search directory", default=True)
@LOG_LEVEL_OPTION
@SAVE_LOGS_OPTION
@OUTPUT_DIR_OPTION
@click.option("--compile-cache", type=click.Path(path_type=Path), default=None,
              envvar=COMPILE_CACHE_VARIABLE, help=COMPILE_CACHE_HELP)
@user_errors
@declared(shard_refusal=SEARCH_SHARD_REFUSAL, source=COMMAND)  # as `hyperlax search`
def optuna_command(algo_and_network_config: str, env_config: str, study_name: str,
                   storage: str, n_trials: int, objective_names: tuple[str, ...],
                   objective_directions: tuple[str, ...], sampler: str,
                   optuna_study_batch_size: int, runner_hparam_batch_size: int, seed: int,
                   output_root: Path | None, resume: bool, resume_from: Path | None,
                   emit_manifest: Path | None, force: bool, run_length: str,
                   num_seeds: int | None, save_optuna_plots: bool, log_level: str,
                   save_logs: bool, output_dir: Path | None, compile_cache: Path | None,
                   options: ExecOptions) -> None:
    """The seed system's Optuna study: ask Optuna (TPE, or NSGA-II for several objectives)
    for --optuna-study-batch-size trials at a time, train them vmapped in batches of
    --runner-hparam-batch-size, tell the results, until --n-trials. Re-running the same
    command, or --resume-from DIR, resumes; `hyperlax report DIR` reports the study.
    --devices, --ray and the like spread each round's training, as for `hyperlax search`
    (no --shard: a round is asked only after the one before it is told)."""
    flags = SeedSearch(recipe=algo_and_network_config, env=env_config, seed=seed,
                       n_trials=n_trials, study_batch=optuna_study_batch_size,
                       runner_batch=runner_hparam_batch_size, sampler=sampler,
                       study_name=study_name,
                       objectives=objectives(objective_names, objective_directions))
    if flags.recipe.endswith(".toml") or "/" in flags.recipe:
        # a path from this directory; the manifest lives in the search directory
        flags = replace(flags, recipe=str(Path(flags.recipe).resolve()))
    flags = replace(flags, **run_length_settings(run_length, flags.recipe, num_seeds))
    if given("output_dir"):
        click.echo("warning: --output-dir has no effect (the original overwrote it too); use "
                   "--output-root", err=True)
    quiet = log_level.upper() in QUIET_LEVELS
    if emit_manifest is not None:
        _emit(flags, output_root, emit_manifest, force, quiet)
        return
    if resume and resume_from is None and output_root is not None and output_root.is_dir():
        # the seed's `--resume True --output-root DIR`: DIR may be (inside) a search directory
        try:
            resume_from = _find_search(output_root)
            output_root = None
        except HyperlaxError:
            pass  # not a search yet: start one there
    if resume_from is not None:
        root = _find_search(resume_from)
        if output_root is not None and output_root.resolve() != root.resolve():
            raise HyperlaxError(COMMAND, [("--output-root", f"{output_root} is not the search "
                                                            f"directory being resumed ({root})")],
                                "pass only --resume-from")
        flags = _resumed(root, flags)
    elif output_root is None:
        raise HyperlaxError(COMMAND, [("--output-root", "is required (or --resume-from, or "
                                                        "--emit-manifest)")],
                            "pass a new or empty directory for the search")
    else:
        root = output_root
    # logged from when the search has claimed its directory (lines before wait in memory)
    with saving_logs(save_logs, None, within=root) as log:
        status = _run(flags, root, storage, quiet, compile_cache, options, log)
        if save_optuna_plots and status == 0:
            from hyperlax.report.optuna_plots import write_optuna_plots

            lines = write_optuna_plots(root, storage, flags.study_name,
                                       [m for m, _ in flags.objectives])
            if not quiet:
                for line in lines:
                    click.echo(line, err=True)


# tyro's list flags: --objective-names a b (each value one use of the `multiple` option)
optuna_command.list_flags = LIST_FLAGS


def _translated(exc: HyperlaxError) -> HyperlaxError:
    problems = [(FLAG_OF.get(loc.split("[")[0], loc), msg) for loc, msg in exc.problems]
    return HyperlaxError(COMMAND, problems, exc.hint)


def _emit(flags: SeedSearch, output_root: Path | None, path: Path, force: bool,
          quiet: bool) -> None:
    from hyperlax.search.run import SearchRequest, resolve_search
    from hyperlax.storage.atomic import atomic_write

    if path.exists() and not force:
        raise HyperlaxError(str(path), "already exists", "pass --force to overwrite it")
    text = flags.manifest_text((output_root or Path(f"runs/{flags.study_name}")).as_posix())
    try:
        resolve_search(SearchRequest(manifest_text=text, manifest_name=SEED_MANIFEST,
                                     manifest_dir=path.parent, resume=""))
    except HyperlaxError as exc:
        raise (_translated(exc) if exc.source == SEED_MANIFEST else exc) from None
    try:
        atomic_write(path, text.encode("utf-8"), within=None)  # --emit-manifest names it
    except OSError as exc:
        raise HyperlaxError(str(path), f"cannot write: {exc.strerror}") from None
    if not quiet:
        click.echo(f"wrote {path}; next: hyperlax search {path}")


def resume_line(root: Path, storage: str, compile_cache: Path | None,
                options: ExecOptions) -> str:
    """The command that resumes the search in ``root`` where and how it ran: the flags that
    are not recorded in its search.toml, as given."""
    words = ["python", "-m", "hyperlax.cli", COMMAND, "--resume-from", str(root)]
    if storage != STORAGE_DEFAULT:
        words += ["--storage", storage]
    if compile_cache is not None:
        words += ["--compile-cache", str(compile_cache)]
    return shlex.join(words + options.words())


def _run(flags: SeedSearch, root: Path, storage: str, quiet: bool,
         compile_cache: Path | None, options: ExecOptions, log: ConsoleLog | None) -> int:
    """Run (or resume) the search; its exit status, 0 when every trial was told (a stop
    ends the process here)."""
    from hyperlax.exec import stopping
    from hyperlax.search.round_plan import write_file
    from hyperlax.search.run import SearchRequest, run_search

    text = flags.manifest_text(root.as_posix())

    def write_manifest(directory: Path) -> None:  # the search's flags, for --resume-from
        from hyperlax.storage.read import MAX_MANIFEST_BYTES, read_bytes

        try:  # anything but this very text (missing, a FIFO, a link out, edited) is rewritten
            same = read_bytes(directory / SEED_MANIFEST, "manifest", MAX_MANIFEST_BYTES,
                              within=directory) == text.encode("utf-8")
        except HyperlaxError:
            same = False
        if not same:
            write_file(directory, SEED_MANIFEST, text.encode("utf-8"))
        if log is not None:  # --save-logs: the directory is the search's now
            log.attach(directory)

    request = SearchRequest(manifest_text=text, manifest_name=SEED_MANIFEST,
                            manifest_dir=root, output_root=root, storage=storage,
                            resume=resume_line(root, storage, compile_cache, options),
                            compile_cache=compile_cache, options=options, quiet=quiet,
                            on_claimed=write_manifest)
    with stopping.handling():
        try:
            status = run_search(request, click.echo)
        except HyperlaxError as exc:
            raise (_translated(exc) if exc.source == SEED_MANIFEST else exc) from None
        if status:
            stopping.finish(status)
    return status
