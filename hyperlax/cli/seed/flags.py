"""The seed system's flags, and the manifest they stand for. JAX-free: flag errors are instant.

The seed (the original hyperlax-quantum command line) spells a sweep as flags; hyperlax spells it
as a manifest. ``SeedSweep`` holds what the flags say, ``manifest_text`` writes the equivalent
manifest, and ``FLAG_OF`` turns the compiler's manifest locations back into the flags, so an
error names what the user typed. Run-length presets (``--run-length-modifier``) are the
original's, mapped onto the manifest's budget fields; see ``RUN_LENGTHS``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click
import tomli_w

from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import CONFIGS
from hyperlax.manifest.toml_inline import toml_key, toml_value

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
QUIET_LEVELS = {"WARNING", "ERROR", "CRITICAL"}

# The original's sweep designs (its --experiment-type) and what they are here.
EXPERIMENT_TYPES = {"independent_samples": None, "sobol_matrices_A_B_AB": "saltelli"}

# Manifest locations as the seed command line spells them, for error messages.
FLAG_OF = {
    "sweep.recipe": "--algo-and-network-config",
    "sweep.env": "--env-config",
    "sweep.num_samples": "--num-samples",
    "sweep.batch_size": "--hparam-batch-size",
    "sweep.sampling": "--sampling-method",
    "sweep.seed": "--seed",
    "sweep.output_root": "--output-root",
    "sweep.total_timesteps": "--run-length-modifier",
    "sweep.num_evaluations": "--run-length-modifier",
    "sweep.eval_episodes": "--run-length-modifier",
    "sweep.seeds_per_sample": "--num-agents-slash-seeds",
    "sweep.structures": "--structures",
    "sweep.samples_file": "--load-hyperparams",
}


def flag_location(location: str) -> str:
    """The flag a manifest location stands for (rows of a loaded file keep their row)."""
    if location.startswith("samples_file "):
        return "--load-hyperparams " + location[len("samples_file "):]
    return FLAG_OF.get(location, location)


# --- run length -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunLength:
    """A --run-length-modifier: budget overrides (None: the recipe's [settings]), the default
    replicates, and whether structural hyperparameters shrink to the original's quick values."""

    name: str
    total_timesteps: int | None = None
    num_evaluations: int | None = None
    eval_episodes: int | None = None
    replicates: int = 8
    shrink: bool = False


# The original's presets (hyperlax/configs/modifiers/common_settings.py): "default" changes
# nothing, so the recipe's [settings] hold (the original's recipes train 1e6 steps, 5
# evaluations of 16 episodes, with its training default of 8 seeds); "quick" and "long" set
# these values. A number is total env steps per configuration.
RUN_LENGTHS = {
    "quick": RunLength("quick", 40, 4, 4, replicates=2, shrink=True),
    "default": RunLength("default"),
    "long": RunLength("long", 5_000_000, 40, 32, replicates=4),
}

_INTEGER = re.compile(r"^[0-9][0-9_]*$")


def parse_run_length(text: str, command: str) -> RunLength:
    """A preset name, or a whole number of env steps. Anything else is refused: the original
    silently ran its default run length for a number given as text, which hid typos."""
    if text in RUN_LENGTHS:
        return RUN_LENGTHS[text]
    if _INTEGER.match(text) and not text.endswith("_"):
        steps = int(text)
        if steps < 1:
            raise HyperlaxError(command, [("--run-length-modifier", "must be >= 1 env steps, "
                                                                   f"got {text}")])
        return RunLength(str(steps), total_timesteps=steps)
    hint = "quick, default, long, or total env steps per configuration as an integer"
    if text.startswith("runtime_benchmark"):
        hint = ("the original's runtime benchmark presets trained without evaluating; here "
                "every run evaluates: pass the env steps, e.g. --run-length-modifier 1000000")
    elif re.match(r"^[0-9.]+[eE][+]?[0-9]+$", text):
        hint = f"write the integer out, e.g. {int(float(text))}"
    raise HyperlaxError(command, [("--run-length-modifier",
                                   f"{text!r} is neither a preset (quick, default, long) nor "
                                   "a whole number of env steps")], hint)


# --- the manifest ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedSweep:
    """What a seed command line asks for, in manifest terms."""

    recipe: str                  # a built-in name, or a recipe path relative to the cwd
    env: str
    num_samples: int | None      # None: implied (listed samples, one configuration)
    sampling: str                # qmc_sobol | random | saltelli
    seed: int
    mode: str                    # batched | sequential | grouped
    batch_size: int
    run_length: RunLength
    replicates: int
    output_root: str | None = None
    structures: int | None = None
    samples_file: str | None = None   # a CSV/JSON path relative to the cwd
    single: bool = False              # one configuration: an empty [space]
    pins: dict[str, Any] = field(default_factory=dict)
    command: str = "sweep-hp-samples"

    def flags(self) -> list[str]:
        """The seed command line these values come from, canonical (the same values give the
        same text, so re-running a command re-creates the same manifest)."""
        out = [f"--algo-and-network-config {self.recipe}", f"--env-config {self.env}"]
        if self.single:
            return out + self._common()
        if self.samples_file is not None:
            out.append(f"--load-hyperparams {self.samples_file}")
        if self.num_samples is not None:
            out.append(f"--num-samples {self.num_samples}")
        if self.sampling == "saltelli":
            out.append("--experiment-type sobol_matrices_A_B_AB")
        elif self.samples_file is None:
            out.append(f"--sampling-method {self.sampling}")
        out.append(f"--hparam-batch-size {self.batch_size}")
        if self.mode == "sequential":
            out.append("--sequential True")
        if self.mode == "grouped":
            out.append("--group-by-structural-hparams True")
        if self.structures is not None:
            out.append(f"--structures {self.structures}")
        return out + self._common()

    def _common(self) -> list[str]:
        out = [f"--run-length-modifier {self.run_length.name}", f"--seed {self.seed}",
               f"--num-agents-slash-seeds {self.replicates}"]
        if self.output_root is not None:
            out.append(f"--output-root {self.output_root}")
        return out

    def name(self) -> str:
        stem = f"{recipe_name(self.recipe)}-{self.env.split('.')[-1]}"
        stem += "-single" if self.single else ""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem.replace("_", "-")).strip("-._")
        return name[:100] or "sweep"


def recipe_name(recipe: str) -> str:
    from hyperlax.manifest.recipes import is_recipe_path

    return Path(recipe).stem if is_recipe_path(recipe) else recipe


def _relative(path: str, manifest_dir: Path) -> str:
    """A command-line path (relative to the cwd) as the manifest in ``manifest_dir`` needs it."""
    return Path(os.path.relpath(Path(path).resolve(), manifest_dir.resolve())).as_posix()


def manifest_text(sweep: SeedSweep, manifest_dir: Path) -> str:
    """The manifest equivalent to ``sweep``, to live in ``manifest_dir``. Paths on the command
    line (recipe, samples file) are relative to the cwd; the manifest's are relative to it."""
    from hyperlax.manifest.recipes import is_recipe_path

    table: dict[str, Any] = {"name": sweep.name(),
                             "recipe": _relative(sweep.recipe, manifest_dir)
                             if is_recipe_path(sweep.recipe) else sweep.recipe,
                             "env": sweep.env}
    if sweep.num_samples is not None:
        table["num_samples"] = sweep.num_samples
    if sweep.samples_file is not None:
        table["samples_file"] = _relative(sweep.samples_file, manifest_dir)
    elif not sweep.single:
        table["sampling"] = sweep.sampling
    if sweep.samples_file is None:  # the original samples the recipe's space, or none (single)
        table["recipe_space"] = "exclude" if sweep.single else "include"
    table.update(seed=sweep.seed, mode=sweep.mode, batch_size=sweep.batch_size,
                 seeds_per_sample=sweep.replicates)
    budget = sweep.run_length
    for key in ("total_timesteps", "num_evaluations", "eval_episodes"):
        if getattr(budget, key) is not None:
            table[key] = getattr(budget, key)
    if sweep.structures is not None:
        table["structures"] = sweep.structures
    if sweep.output_root is not None:
        table["output_root"] = sweep.output_root
    lines = ["# hyperlax sweep manifest, equivalent to the seed command line",
             f"#   python -m hyperlax.cli {sweep.command} " + " ".join(sweep.flags()),
             "# Plan it with `hyperlax plan <this file>`, run the plan with `hyperlax exec`.",
             "", tomli_w.dumps({"sweep": table}).rstrip("\n")]
    if sweep.pins:
        lines += ["", f"# --run-length-modifier {budget.name} shrinks the structure"
                      " (the original's quick values)", "[fixed]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in sorted(sweep.pins.items())]
    if sweep.single:
        lines += ["", "# one configuration: the recipe's defaults", "[space]"]
    return "\n".join(lines) + "\n"


def recipe_algorithm(recipe: str, command: str) -> str:
    """The algorithm a recipe (name or path relative to the cwd) trains."""
    from hyperlax.manifest.format import decode_recipe
    from hyperlax.manifest.recipes import load_recipe_text

    try:
        name, text = load_recipe_text(recipe, Path.cwd(), command)
    except HyperlaxError as exc:
        raise HyperlaxError(command, [(flag_location(loc), msg) for loc, msg in exc.problems],
                            exc.hint) from None
    return decode_recipe(text, f"recipe {name}").algorithm


def listed_names(samples_file: str, command: str) -> set[str]:
    """The hyperparameters a --load-hyperparams file names (its first row)."""
    from hyperlax.manifest.listed import read_samples_file

    try:
        rows, _ = read_samples_file(samples_file, Path.cwd(), command)
    except HyperlaxError as exc:
        raise HyperlaxError(command, [(flag_location(loc), msg) for loc, msg in exc.problems],
                            "the file is read relative to the current directory") from None
    return set(rows[0]) if rows else set()


def quick_pins(run_length: RunLength, algorithm: str, named: set[str]) -> dict[str, Any]:
    """[fixed] values of a quick run: the original's quick structure, except what a loaded
    samples file names (a listed value and a pin may not name the same hyperparameter). Each
    algorithm declares its quick structure (``quick_pins`` of its config Struct)."""
    config = CONFIGS.get(algorithm)
    if not run_length.shrink or config is None:
        return {}
    return {k: v for k, v in config.quick_pins.items() if k not in named}


# --- click options shared by the seed commands ----------------------------------------------

def bool_option(name: str, help_text: str, default: bool = False) -> Callable:
    # The seed writes `--sequential True`; a bare `--sequential` also means True.
    return click.option(name, type=click.BOOL, default=default, is_flag=False,
                        flag_value=True, show_default=True, metavar="[True|False]",
                        help=help_text)


def options(*decorators: Callable) -> Callable:
    """Apply option decorators in the order written (click lists them in that order)."""
    def apply(command: Callable) -> Callable:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command
    return apply


RECIPE_OPTION = click.option(
    "--algo-and-network-config", "recipe", default="ppo_mlp", show_default=True,
    help="recipe: a built-in name (ppo_mlp, ppo_mlp_no_network_search, dqn_mlp, sac_mlp: the "
         "original's spaces; *_small, ppo_mlp_fixed_net: CPU-sized) or a recipe .toml path")
RUN_LENGTH_OPTION = click.option(
    "--run-length-modifier", "run_length", default="default", show_default=True,
    metavar="quick|default|long|STEPS",
    help="training budget: default (the recipe's), quick (40 env steps, 4 evaluations of 4 "
         "episodes, 2 seeds, the original's small structure), long (5,000,000 steps, 40 "
         "evaluations of 32 episodes, 4 seeds), or total env steps per configuration")
SEEDS_OPTION = click.option(
    "--num-agents-slash-seeds", "--num-seeds", "num_seeds", type=click.IntRange(1, 1024),
    default=None, metavar="N",
    help="replicate trainings (seeds) per configuration, vmapped alongside [default: 8, the "
         "original's num_agents_slash_seeds; 2 with quick, 4 with long]")
SEED_OPTION = click.option("--seed", default=42, show_default=True, type=click.IntRange(min=0),
                           help="seed of the sampler and of every configuration's training")
LOG_LEVEL_OPTION = click.option(
    "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO",
    show_default=True, help="WARNING and above: no progress output")
SAVE_LOGS_OPTION = bool_option(
    "--save-logs", "also append what the command prints while it runs (with the time) to "
                   "hyperlax.log in its sweep, benchmark or search directory, as the "
                   "original did; generate-hp-samples has none",
    default=True)
OUTPUT_DIR_OPTION = click.option(
    "--output-dir", type=click.Path(path_type=Path), default=None, hidden=True,
    help="the original set this itself and overwrote what was given; no effect")


def sampling_options(num_samples_default: int) -> list[Callable]:
    return [
        click.option("--load-hyperparams", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE", help="CSV or JSON of configurations to run instead of "
                                          "sampling (what generate-hp-samples writes)"),
        click.option("--num-samples", default=num_samples_default, show_default=True,
                     type=int, help="configurations to sample"),
        click.option("--sampling-method", type=click.Choice(["qmc_sobol", "random"]),
                     default="qmc_sobol", show_default=True),
        click.option("--experiment-type", type=click.Choice(list(EXPERIMENT_TYPES)),
                     default="independent_samples", show_default=True,
                     help="sobol_matrices_A_B_AB: Saltelli's design for Sobol sensitivity "
                          "indices (num_samples x (sampled hyperparameters + 2) runs)"),
        bool_option("--omit-ab", "with sobol_matrices_A_B_AB: only A and B; not supported "
                                 "(no indices without AB)"),
        click.option("--structures", type=click.IntRange(min=1), default=None, metavar="K",
                     help="sample K structures and fill each with samples: K compiles "
                          "instead of about one per sample (structure-aware sampling)"),
    ]


def batching_options(batch_default: int) -> list[Callable]:
    return [
        click.option("--hparam-batch-size", default=batch_default, show_default=True,
                     type=click.IntRange(min=1), help="at most this many samples per vmapped "
                                                      "batch"),
        click.option("--min-hparam-batch-size", type=click.IntRange(min=1), default=None,
                     metavar="N", help="accepted; no effect: short last batches are padded "
                                       "(see docs/seed.md)"),
        bool_option("--sequential", "one entry per sample, run one at a time"),
        bool_option("--group-by-structural-hparams", "group samples by structure before "
                                                     "batching"),
    ]


class SeedCommand(click.Command):
    """A click command that reads the seed's spellings too (its command line was tyro's):
    ``--num_samples_per_run 8`` as ``--num-samples-per-run 8``, and a list flag followed by
    several values, ``--algos ppo_mlp sac_mlp``, as the flag repeated once per value."""

    list_flags: tuple[str, ...] = ()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        current: str | None = None   # the list flag whose values are being read
        for i, arg in enumerate(args):
            if arg == "--":
                out += args[i:]
                break
            if arg.startswith("--"):
                name, eq, value = arg.partition("=")
                name = name.replace("_", "-")
                current = name if name in self.list_flags and not eq else None
                out.append(name + eq + value)
            elif arg.startswith("-") and arg[1:2].isalpha():   # a short option
                current = None
                out.append(arg)
            elif current is not None and out[-1] != current:
                out += [current, arg]   # a further value of a list flag
            else:
                out.append(arg)
        return super().parse_args(ctx, out)
