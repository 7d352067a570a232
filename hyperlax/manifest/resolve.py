"""Validate a manifest against its recipe and the hyperparameter tables, and merge them into one
resolved search problem: the constant value of every hyperparameter not sampled, and the
distribution of every one that is. Every problem found is reported with its location at once."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import msgspec

from hyperlax.environments import ENVS, EnvInfo, unknown_env_message
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import ALGORITHMS, CONFIGS, HyperParam
from hyperlax.hyperparams.declare import env_value_problem, value_problems
from hyperlax.storage.read import read_text
from hyperlax.manifest.distributions import (Categorical, Distribution, IntLogUniform,
                                             IntUniform, LogNormal, LogUniform, Normal,
                                             Quantized, Uniform, grid_points, grid_size)
from hyperlax.manifest.format import (MAX_SAMPLES, Manifest, Recipe, decode_manifest,
                                      decode_recipe, did_you_mean)
from hyperlax.manifest.listed import read_samples_file, row_problems
from hyperlax.manifest.recipes import (env_defaults, env_defaults_problems, load_recipe_text,
                                       split_defaults)
from hyperlax.plan.format import Settings

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    manifest: Manifest
    manifest_text: str
    recipe_text: str
    settings: Settings
    env: EnvInfo
    table: dict[str, HyperParam]           # the algorithm's declarations, sorted by name
    constants: dict[str, Any]              # every hyperparameter not sampled, sorted by name
    space: dict[str, Distribution]         # every sampled hyperparameter, sorted by name
    sources: dict[str, str]                # name -> where its value or distribution came from
    listed: list[dict[str, Any]] | None = None  # listed samples' values, instead of a space
    samples_file_sha256: str | None = None


def read_manifest(path: Path) -> str:
    """The manifest's text: a regular UTF-8 file of bounded size (a byte-order mark is
    dropped), as the compiler and ``exec --manifest`` both read it."""
    try:
        return read_text(path, "manifest")
    except HyperlaxError as exc:
        if exc.problems == [("", "no such manifest")]:
            raise HyperlaxError(str(path), "no such manifest file",
                                f"create one with: hyperlax init -o {path}") from None
        raise


def resolve_file(path: Path) -> Resolved:
    return resolve_text(read_manifest(path), path.name, path.parent)


def resolve_text(text: str, source: str, manifest_dir: Path, for_search: bool = False
                 ) -> Resolved:
    """The resolved manifest. A manifest with a ``[search]`` section is refused unless
    ``for_search``: ``hyperlax search`` runs it in rounds, ``plan`` compiles fixed sweeps."""
    manifest = decode_manifest(text, source)
    sweep = manifest.sweep
    if manifest.search is not None and not for_search:
        raise HyperlaxError(source, [("search", "this manifest declares a search, which runs "
                                                "in rounds of configurations Optuna asks for, "
                                                "not as one frozen plan")],
                            f"run it with: hyperlax search {source}; or remove [search] to "
                            "plan a fixed sweep")
    if for_search and manifest.search is None:
        raise HyperlaxError(source, [("search", "missing section [search]: hyperlax search "
                                                "needs one, e.g. [search] method = \"tpe\", "
                                                "trials = 32, trials_per_round = 8")],
                            f"or plan a fixed sweep with: hyperlax plan {source}")
    recipe_name, recipe_text = load_recipe_text(sweep.recipe, manifest_dir, source)
    recipe_source = sweep.recipe if recipe_name != sweep.recipe else f"recipe {recipe_name}"
    recipe = decode_recipe(recipe_text, recipe_source)
    if recipe.algorithm not in ALGORITHMS:
        raise HyperlaxError(recipe_source, [("algorithm", f"unknown algorithm "
                                             f"{recipe.algorithm!r}; one of "
                                             f"{', '.join(ALGORITHMS)}")])
    table = ALGORITHMS[recipe.algorithm]

    problems: list[tuple[str, str]] = []
    env = ENVS.get(sweep.env)
    if env is None:
        problems.append(("sweep.env", unknown_env_message(sweep.env)))
    elif env.action_space not in CONFIGS[recipe.algorithm].action_spaces:
        actions = CONFIGS[recipe.algorithm].action_spaces
        fitting = [e for e, i in ENVS.items() if i.action_space in actions]
        problems.append(("sweep.env", f"{recipe.algorithm.upper()} needs a "
                         f"{actions[0]} action space but {env.id} "
                         f"is {env.action_space}; use one of {', '.join(fitting)}"))
    problems += _sweep_problems(manifest, recipe)
    problems += _search_problems(manifest)

    # Recipe problems are the recipe author's; report them against the recipe file.
    recipe_problems = _defaults_problems(recipe.defaults, table, recipe.algorithm)
    recipe_problems += _space_problems(recipe.space, "space", table)
    if recipe_problems:
        raise HyperlaxError(recipe_source, recipe_problems)
    defaults, env_own = env_defaults(recipe.defaults, sweep.env)

    own_space = manifest.space or {}
    listed, samples_sha256, where = _listed(manifest, manifest_dir, source)
    recipe_space, refusal = _recipe_space(manifest, recipe.space, listed is not None)
    if refusal:
        problems.append(refusal)
    problems += _names_problems(manifest.fixed, "fixed", table)
    problems += _names_problems(own_space, "space", table)
    problems += value_problems(manifest.fixed, table, "fixed")
    problems += _space_problems(own_space, "space", table)
    for name in own_space:
        if name in manifest.fixed:
            problems.append((f"space.{name}", "is also pinned in [fixed]; keep only one"))
    if listed is not None:
        if own_space:
            problems.append(("space", "a manifest that lists its samples has no [space]; "
                                      "remove one of them"))
        problems += row_problems(listed, where, table, manifest.fixed)
    sampled = set(own_space) | (set(recipe_space) - set(manifest.fixed))
    if sweep.sampling == "grid" and listed is None:
        for name in sorted(sampled):
            dist = own_space.get(name) or recipe_space[name]
            if grid_points(dist) is None:
                where_from = "in [space]" if name in own_space else "in the recipe's space"
                problems.append((f"space.{name}", f"grid sampling enumerates values, but {name}"
                                                  f" ({where_from}) is "
                                                  f"{type(dist).__struct_config__.tag}; use "
                                                  "categorical, quantized or int_uniform, or "
                                                  "pin it in [fixed]"))
    if manifest.search is not None and not sampled and not problems:
        problems.append(("space", "a search needs hyperparameters to search: the [space] "
                                  "(and the recipe's, unless [fixed] pins them) is empty"))
    if sweep.structures is not None and not problems:
        if not any(table[n].role == "structural" for n in sampled) or \
                sweep.sampling in ("grid", "saltelli") or listed is not None:
            problems.append(("sweep.structures", "needs sampled structural hyperparameters "
                                                 "and qmc_sobol or random sampling; remove "
                                                 "structures"))
    if env is not None and not problems:
        problems += _env_problems(env, table, manifest.fixed, own_space, recipe_space,
                                  defaults, listed, where, recipe_name)
    if problems:
        raise HyperlaxError(source, problems)

    constants, space, sources = {}, {}, {}
    listed_names = set(listed[0]) if listed else set()
    for name, param in table.items():
        if name in manifest.fixed:
            constants[name], sources[name] = manifest.fixed[name], "fixed"
        elif name in listed_names:
            sources[name] = "samples"
        elif name in own_space:
            space[name], sources[name] = own_space[name], "space"
        elif name in recipe_space:
            space[name], sources[name] = recipe_space[name], "recipe space"
        elif name in defaults:
            constants[name] = defaults[name]
            sources[name] = "env default" if name in env_own else "recipe default"
        else:
            constants[name], sources[name] = param.default, "default"

    num_samples = _num_samples(sweep, space, listed, source) if manifest.search is None \
        else _search_trials(sweep, manifest.search.trials, source)
    settings = Settings(
        name=sweep.name, recipe=recipe_name, algorithm=recipe.algorithm, env=sweep.env,
        num_samples=num_samples, sampling="listed" if listed is not None else sweep.sampling,
        seed=sweep.seed, mode=sweep.mode,
        batch_size=sweep.batch_size,
        output_root=sweep.output_root if sweep.output_root is not None else f"runs/{sweep.name}",
        seeds_per_sample=sweep.seeds_per_sample,
        total_timesteps=_or(sweep.total_timesteps, recipe.settings.total_timesteps),
        num_evaluations=_or(sweep.num_evaluations, recipe.settings.num_evaluations),
        eval_episodes=_or(sweep.eval_episodes, recipe.settings.eval_episodes),
        structures=sweep.structures,
    )
    if listed is not None:  # rows in name order, like sampled values
        listed = [{n: row[n] for n in sorted(row)} for row in listed]
    return Resolved(manifest=manifest, manifest_text=text, recipe_text=recipe_text,
                    settings=settings, env=env, table=table, constants=constants, space=space,
                    sources=sources, listed=listed, samples_file_sha256=samples_sha256)


def _listed(manifest: Manifest, manifest_dir: Path, source: str
            ) -> tuple[list[dict[str, Any]] | None, str | None, str]:
    """(listed rows or None, the samples file's sha256 or None, where rows are located)."""
    sweep = manifest.sweep
    if sweep.samples_file is not None and manifest.samples:
        raise HyperlaxError(source, [("samples", "the manifest lists [[samples]] and names a "
                                                 "samples_file; keep one of them")])
    if sweep.samples_file is not None:
        rows, digest = read_samples_file(sweep.samples_file, manifest_dir, source)
        return rows, digest, f"samples_file {sweep.samples_file}"
    if manifest.samples:
        return list(manifest.samples), None, "samples"
    return None, None, ""


def _recipe_space(manifest: Manifest, space: dict[str, Distribution],
                  listed: bool) -> tuple[dict[str, Distribution], tuple[str, str] | None]:
    """The part of the recipe's space a manifest samples, and the refusal of a manifest whose
    meaning is not written in it. A recipe's space never applies to listed samples or a grid
    (its continuous ranges have no grid points). ``recipe_space = "include"`` adds the recipe's
    names that [space] and [fixed] leave open; "exclude" adds none: the manifest's [space] is
    all that is sampled, so deleting a line stops sampling it. A manifest without the key
    (written before 0.2) keeps its old meaning where that needs no key (no recipe name would
    be added) and is refused where it does, with the line that keeps it."""
    sweep = manifest.sweep
    applies = not listed and sweep.sampling != "grid"
    if sweep.recipe_space == "include":
        return (space if applies else {}), None
    if sweep.recipe_space == "exclude" or not applies or manifest.space == {}:
        return {}, None
    added = sorted(set(space) - set(manifest.space or {}) - set(manifest.fixed))
    if not added:
        return {}, None
    shown = ", ".join(added[:6]) + (f" and {len(added) - 6} more" if len(added) > 6 else "")
    where = "has no [space] table" if manifest.space is None else \
        "does not list them in [space]"
    return {}, ("sweep.recipe_space", f"this manifest {where}, so before hyperlax 0.2 it also "
                                      f"sampled the recipe's space ({shown}) without saying so; "
                                      "add recipe_space = \"include\" under [sweep] to keep "
                                      "sampling them, or recipe_space = \"exclude\" to sample "
                                      "only [space] (they then take the recipe's defaults)")


def _num_samples(sweep: Any, space: dict[str, Distribution], listed: list | None,
                 source: str) -> int:
    """How many samples: the rows listed, the grid's points, one configuration without a
    space, or num_samples (which must agree with any of the others when given)."""
    given = sweep.num_samples
    if listed is not None:
        implied, what = len(listed), f"the {len(listed)} listed samples"
    elif sweep.sampling == "grid":
        implied, what = grid_size(space), "the grid's points"
        if implied > MAX_SAMPLES:
            raise HyperlaxError(source, [("sweep.sampling", f"the grid has {implied:,} points; "
                                                            f"at most {MAX_SAMPLES:,}")])
    elif not space:
        implied, what = 1, "1: without a space every sample is the same configuration"
    elif sweep.sampling == "saltelli":
        base = given
        if base is None or base & (base - 1):
            raise HyperlaxError(source, [("sweep.num_samples", f"saltelli sampling needs a power "
                                                               f"of two base sample count, got "
                                                               f"{base}")],
                                "the plan runs num_samples x (sampled hyperparameters + 2) "
                                "configurations")
        total = base * (len(space) + 2)
        if total > MAX_SAMPLES:
            raise HyperlaxError(source, [("sweep.num_samples", f"{base} x ({len(space)} + 2) = "
                                                               f"{total:,} configurations; at "
                                                               f"most {MAX_SAMPLES:,}")])
        return total
    elif given is None:
        raise HyperlaxError(source, [("sweep", "missing required key num_samples")])
    else:
        return given
    if given is not None and given != implied:
        raise HyperlaxError(source, [("sweep.num_samples", f"is {given}, but must be {implied}"
                                                           f" ({what}); leave it out")],
                            "seeds_per_sample gives one configuration more seeds")
    return implied


def _search_trials(sweep: Any, trials: int, source: str) -> int:
    """A search's sample count is its trials; num_samples, when given, must agree."""
    if sweep.num_samples is not None and sweep.num_samples != trials:
        raise HyperlaxError(source, [("sweep.num_samples", f"is {sweep.num_samples}, but a "
                                                           f"search runs search.trials = "
                                                           f"{trials} configurations; leave "
                                                           "num_samples out")])
    return trials


def _search_problems(manifest: Manifest) -> list[tuple[str, str]]:
    """What a [search] section cannot be combined with, and its own cross-key rules."""
    search, sweep = manifest.search, manifest.sweep
    if search is None:
        return []
    problems = []
    if sweep.sampling != "qmc_sobol":  # the default: a search's sampler is Optuna's
        problems.append(("sweep.sampling", f"{sweep.sampling!r}: a search asks Optuna for its "
                                           "configurations; remove sampling"))
    if sweep.structures is not None:
        problems.append(("sweep.structures", "a search asks for whole configurations; remove "
                                             "structures"))
    if manifest.samples or sweep.samples_file is not None:
        problems.append(("search", "a manifest that lists its samples has nothing to search; "
                                   "remove [search] or the listed samples"))
    # A round is trained to its full budget and told at once: neither rungs nor checkpoints
    # reach the round plans, so a search refuses them rather than dropping them silently.
    if sweep.rungs is not None or sweep.eta is not None or sweep.rung_metric is not None:
        problems.append(("sweep.rungs", "successive halving does not combine with a search "
                                        "(each round trains its trials to the full budget); "
                                        "remove rungs, eta and rung_metric"))
    if manifest.pbt is not None:
        problems.append(("pbt", "population-based training does not combine with a search "
                                "(each round trains its trials to the full budget); remove "
                                "[pbt] or [search]"))
    if sweep.checkpoint_every:
        problems.append(("sweep.checkpoint_every", "a search's rounds do not checkpoint; remove "
                                                   "checkpoint_every"))
    if search.method == "nsgaii" and search.trials_per_round < 2:
        problems.append(("search.trials_per_round", "nsgaii breeds each round from the last "
                                                    "one, a population of at least 2; got "
                                                    f"{search.trials_per_round}"))
    seen: set[str] = set()
    for i, objective in enumerate(search.objectives):
        if objective.metric in seen:
            problems.append((f"search.objectives[{i}]", f"repeats {objective.metric}"))
        seen.add(objective.metric)
    if search.study_name is not None and not NAME_PATTERN.match(search.study_name):
        problems.append(("search.study_name", f"{search.study_name!r} must be 1-100 letters, "
                                              "digits, '.', '_' or '-', starting with a "
                                              "letter or digit"))
    return problems


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _sweep_problems(manifest: Manifest, recipe: Recipe) -> list[tuple[str, str]]:
    sweep, problems = manifest.sweep, []
    if not NAME_PATTERN.match(sweep.name):
        problems.append(("sweep.name", f"{sweep.name!r} must be 1-100 letters, digits, '.', '_' "
                                       "or '-', starting with a letter or digit"))
    # bounds of single fields are in the SweepSection types; these involve several
    if sweep.structures is not None and sweep.num_samples is not None and \
            sweep.structures > sweep.num_samples:
        problems.append(("sweep.structures", f"must be between 1 and num_samples = "
                                             f"{sweep.num_samples}, got {sweep.structures}"))
    if sweep.output_root is not None:
        root = sweep.output_root
        if not root.strip():
            problems.append(("sweep.output_root", "must not be empty"))
        elif root.startswith("~"):
            # expanding it would write this user's home directory into the plan, and the same
            # manifest would give different plans on different machines
            problems.append(("sweep.output_root", f"{root!r} starts with '~', which hyperlax "
                                                  "does not expand; use a path relative to "
                                                  "where hyperlax runs, or an absolute path"))
        elif any(ord(c) < 32 for c in root):
            problems.append(("sweep.output_root", "contains a control character"))
    evaluations = _or(sweep.num_evaluations, recipe.settings.num_evaluations)
    timesteps = _or(sweep.total_timesteps, recipe.settings.total_timesteps)
    if evaluations > timesteps:
        problems.append(("sweep.num_evaluations", f"{evaluations} evaluations cannot fit in "
                                                  f"total_timesteps = {timesteps}"))
    return problems


def _defaults_problems(defaults: dict[str, Any], table: dict[str, HyperParam],
                       algorithm: str) -> list[tuple[str, str]]:
    """A recipe's [defaults]: the shared values, then each env's sub-table, checked alike."""
    shared, per_env = split_defaults(defaults)
    problems = _names_problems(shared, "defaults", table)
    problems += value_problems(shared, table, "defaults")
    problems += env_defaults_problems(defaults, CONFIGS[algorithm].action_spaces)
    for env_id, values in per_env.items():
        where = f'defaults."{env_id}"'
        problems += _names_problems(values, where, table)
        problems += value_problems(values, table, where)
    return problems


def _env_problems(env: EnvInfo, table: dict[str, HyperParam], fixed: dict[str, Any],
                  own_space: dict[str, Distribution], recipe_space: dict[str, Distribution],
                  defaults: dict[str, Any], listed: list[dict[str, Any]] | None,
                  listed_where: str, recipe_name: str) -> list[tuple[str, str]]:
    """Values this env cannot take (a convolutional torso without image observations),
    wherever they would come from: [fixed], a space's categorical values, listed samples, or
    the recipe's defaults for a name nothing else sets."""
    problems: list[tuple[str, str]] = []

    def check(where: str, param: HyperParam, value: Any, note: str = "") -> None:
        problem = env_value_problem(param, value, env.obs_shape)
        if problem:
            problems.append((where, f"{problem} ({env.id}){note}"))

    for name, param in table.items():
        if not param.image_only:
            continue
        if name in fixed:
            check(f"fixed.{name}", param, fixed[name])
            continue
        for space, note in ((own_space, ""), (recipe_space, "; it is in the recipe's space: "
                                                             "pin the name in [fixed]")):
            dist = space.get(name)
            if isinstance(dist, Categorical):
                for i, value in enumerate(dist.values):
                    check(f"space.{name}.values[{i}]", param, value, note)
        for i, row in enumerate(listed or []):
            if name in row:
                check(f"{listed_where} row {i + 1}.{name}", param, row[name])
        if name in defaults and name not in own_space and name not in recipe_space and \
                not (listed and name in listed[0]):
            check("sweep.env", param, defaults[name],
                  f"; recipe {recipe_name} sets {name} = {defaults[name]!r}: pin another "
                  "value in [fixed]")
    return problems


def _names_problems(mapping: dict[str, Any], section: str,
                    table: dict[str, HyperParam]) -> list[tuple[str, str]]:
    return [(f"{section}.{name}", "unknown hyperparameter"
                                  + (did_you_mean(name, table) or f"; known: {', '.join(table)}"))
            for name in mapping if name not in table]


_FITTING = {
    "float": (Uniform, LogUniform, Normal, LogNormal, Quantized, Categorical),
    "int": (IntUniform, IntLogUniform, Quantized, Categorical),
    "bool": (Categorical,),
    "str": (Categorical,),
    "int_list": (Categorical,),
}
_ADVICE = {
    "float": "uniform, log_uniform, normal, log_normal, quantized or categorical",
    "int": "int_uniform, int_log_uniform, quantized (integer low, high, step) or categorical",
    "bool": "categorical with values = [true, false]",
    "str": "categorical",
    "int_list": "categorical with values that are lists, e.g. [[64, 64], [128, 128]]",
}


def _space_problems(space: dict[str, Distribution], section: str,
                    table: dict[str, HyperParam]) -> list[tuple[str, str]]:
    problems = []
    for name, dist in space.items():
        param = table.get(name)
        if param is None:
            continue
        where = f"{section}.{name}"
        tag = type(dist).__struct_config__.tag
        if not isinstance(dist, _FITTING[param.type]):
            problems.append((f"{where}.dist", f"{tag} does not fit {param.type} hyperparameter "
                                              f"{name}; use {_ADVICE[param.type]}"))
            continue
        own = dist.problems()
        if own:
            problems += [(f"{where}.{loc}" if loc else where, msg) for loc, msg in own]
            continue
        if param.type == "int" and isinstance(dist, Quantized) and not dist.integral():
            problems.append((where, f"quantized for integer hyperparameter {name} needs integer "
                                    "low, high and step"))
            continue
        if isinstance(dist, Categorical):
            for i, value in enumerate(dist.values):
                problem = param.check_value(value)
                if problem:
                    problems.append((f"{where}.values[{i}]", problem))
        else:
            for end in ("low", "high"):
                problem = param.check_value(getattr(dist, end))
                if problem:
                    problems.append((f"{where}.{end}", f"{problem} (allowed range of {name}: "
                                                       f"{param.bounds_text()})"))
    return problems
