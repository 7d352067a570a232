"""The sweep manifest (TOML) and recipe files as msgspec Structs, decoded with located errors.

The Structs are the truth about the formats: schemas/ is generated from them. Decoding goes in
two steps so that every error names its place: the TOML text is parsed first (syntax errors get
line and column), then each section is converted on its own, so a bad entry of ``[space]`` is
reported as ``space.actor_lr.low`` rather than msgspec's anonymous ``$.space[...]``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams.budget import Budget, EvalEpisodes, NumEvaluations, TotalTimesteps
from hyperlax.manifest.distributions import DIST_NAMES, Distribution
from hyperlax.plan.format import Mode, RungMetric

MAX_SAMPLES = 1_000_000
MAX_RUNGS = 32

# A rung's budget: an evaluation count (an integer), or a fraction of the full budget, as a
# float in (0, 1] or exactly as a string "1/9". The compiler turns each into evaluations and
# explains a fraction that does not land on an evaluation (compiler.halving).
RungBudget = (Annotated[int, Meta(ge=1, le=100_000)]
              | Annotated[float, Meta(gt=0, le=1)]
              | Annotated[str, Meta(pattern=r"^ *[0-9]+ *(/ *[0-9]+ *)?$")])


class SweepSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    recipe: str
    env: str
    # None: as many as the grid has points or the samples list has rows; required otherwise
    num_samples: Annotated[int, Meta(ge=1, le=MAX_SAMPLES)] | None = None
    sampling: Literal["qmc_sobol", "random", "grid", "saltelli"] = "qmc_sobol"
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0
    mode: Mode = "batched"
    batch_size: Annotated[int, Meta(ge=1, le=65_536)] = 16
    output_root: str | None = None      # default: runs/<name>
    seeds_per_sample: Annotated[int, Meta(ge=1, le=1024)] = 1
    total_timesteps: TotalTimesteps | None = None  # None: the recipe's budget
    num_evaluations: NumEvaluations | None = None
    eval_episodes: EvalEpisodes | None = None
    # two-level sampling: draw this many structures
    structures: Annotated[int, Meta(ge=1)] | None = None
    samples_file: str | None = None     # CSV or JSON of samples to run, next to the manifest
    # Save each entry's training state every this many evaluations; 0: never (docs/checkpoints.md)
    checkpoint_every: Annotated[int, Meta(ge=0, le=100_000)] = 0
    # Successive halving: the rungs' budgets, increasing, the last the full budget; at each
    # rung the top 1/eta of the samples by rung_metric go on to the next
    rungs: Annotated[list[RungBudget], Meta(min_length=2, max_length=MAX_RUNGS)] | None = None
    eta: Annotated[int, Meta(ge=2, le=1000)] | None = None          # default 3, with rungs
    rung_metric: RungMetric | None = None                           # default final_return
    # Whether the recipe's [space] is sampled too, for names neither [space] nor [fixed] sets:
    # "exclude" (the manifest's [space] is the whole space; what `init` writes) or "include"
    # (what hyperlax before 0.2 did silently). None: the manifest predates the key; it is
    # accepted only where the two mean the same (manifest.resolve.recipe_space).
    recipe_space: Literal["include", "exclude"] | None = None


# Objectives of a search, computed from each trial's results (hyperlax/search/objectives.py):
# final_return and best_return as in summary.json (means over replicates), auc the mean
# return over every evaluation point (the area under the learning curve per env step). The
# same names as a rung's metric (planfile.RungMetric, their one declaration).
ObjectiveMetric = RungMetric


class SearchObjective(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    metric: ObjectiveMetric
    direction: Literal["maximize", "minimize"] = "maximize"


class SearchSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[search]``: model-based search in rounds (``hyperlax search``) instead of a fixed
    sample. Optuna asks ``trials_per_round`` configurations of ``[space]`` at a time; each
    round trains as one plan of listed samples; the sweep's seed seeds the sampler."""

    method: Literal["tpe", "nsgaii"] = "tpe"
    trials: Annotated[int, Meta(ge=1, le=100_000)]
    trials_per_round: Annotated[int, Meta(ge=1, le=65_536)] = 8
    objectives: Annotated[list[SearchObjective], Meta(min_length=1, max_length=3)] = \
        msgspec.field(default_factory=lambda: [SearchObjective(metric="final_return")])
    # TPE's random start (trials before the model is used); None: the first round's
    startup_trials: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    study_name: str | None = None       # the Optuna study's name; None: the sweep's name


class PbtSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[pbt]``: population-based training (Jaderberg et al. 2017) inside the vmapped batch.
    Ray Tune's ``PopulationBasedTraining`` knobs under names of ours; the population is each
    structure's samples (compiler.pbt). Values are checked by the compiler, which names the
    place and the fix, so the types here are loose on purpose."""

    # evaluations between two exploit/explore steps (Ray: perturbation_interval)
    interval: int
    # the hyperparameters that explore may change: sampled in [space], scalar (not structural)
    # (Ray: hyperparam_mutations)
    explore: list[str]
    quantile_fraction: float = 0.25       # the bottom fraction copies the top (Ray's default)
    perturbation_factors: list[float] = msgspec.field(default_factory=lambda: [1.2, 0.8])
    resample_probability: float = 0.25    # else perturbed by a factor (Ray's default)
    # what ranks the members at the end of each interval, over that interval's evaluations
    metric: RungMetric = "final_return"
    # replay: one table per interval of the values of the explore names (what `hyperlax
    # report` writes for a PBT sweep's best member); every sample trains interval k with
    # schedule[k], and nothing is exploited or explored
    schedule: list[dict[str, Any]] | None = None


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    sweep: SweepSection
    fixed: dict[str, Any] = {}
    # What is sampled, with sweep.recipe_space (see there). Before 0.2, and still in a manifest
    # without recipe_space: None (no [space] table) took the recipe's space, an empty [space]
    # took none, and a non-empty one added the recipe's other names.
    space: dict[str, Distribution] | None = None
    samples: list[dict[str, Any]] = []   # [[samples]]: configurations to run, listed
    search: SearchSection | None = None  # [search]: hyperlax search runs it, not plan
    pbt: PbtSection | None = None        # [pbt]: population-based training (compiler.pbt)


class Recipe(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    algorithm: str
    description: str = ""
    settings: Budget      # the [settings] table: default training budget
    defaults: dict[str, Any] = {}
    space: dict[str, Distribution] = {}


_SECTION_FIELDS = {
    Manifest: {"sweep": SweepSection},
    Recipe: {"settings": Budget},
}


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HyperlaxError(source, f"TOML syntax error: {exc}",
                            "fix the TOML syntax at that line and column") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise HyperlaxError(source, "TOML nested too deeply (arrays or inline tables inside "
                                    "one another, thousands deep)",
                            "is this the right file?") from None


def decode_manifest(text: str, source: str) -> Manifest:
    return _decode(parse_toml(text, source), Manifest, source)


def decode_recipe(text: str, source: str) -> Recipe:
    return _decode(parse_toml(text, source), Recipe, source)


def _decode(raw: dict[str, Any], struct: type, source: str) -> Any:
    """Convert parsed TOML into ``struct``, collecting every located problem before raising."""
    problems: list[tuple[str, str]] = []
    known = set(struct.__struct_fields__)
    for key in raw:
        if key not in known:
            problems.append((key, f"unknown section{_did_you_mean(key, known)}"))
    for key, sub in _SECTION_FIELDS[struct].items():
        if key not in raw:
            problems.append((key, f"missing section [{key}]"))
        elif not isinstance(raw[key], dict):
            problems.append((key, "must be a table"))
        else:
            problems.extend(_search_choices(_struct_problems(raw[key], sub, key)))
    for optional, sub in ((("search", SearchSection), ("pbt", PbtSection))
                          if struct is Manifest else ()):
        if optional in raw:  # optional, checked key by key when present
            if not isinstance(raw[optional], dict):
                problems.append((optional, "must be a table"))
            else:
                problems.extend(_search_choices(_struct_problems(raw[optional], sub,
                                                                 optional)))
    space: dict[str, Any] = {}
    if "space" in raw:
        if not isinstance(raw["space"], dict):
            problems.append(("space", "must be a table of distributions"))
        else:
            for name, value in raw["space"].items():
                try:
                    space[name] = msgspec.convert(value, Distribution)
                except msgspec.ValidationError as exc:
                    problems.append(_dist_problem(f"space.{name}", value, exc))
    for mapping in ("fixed", "defaults"):
        if mapping in raw and mapping in known and not isinstance(raw[mapping], dict):
            problems.append((mapping, "must be a table of name = value"))
    if problems:
        raise HyperlaxError(source, problems)
    if "samples" in raw and struct is Manifest:
        rows = raw["samples"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise HyperlaxError(source, [("samples", "must be an array of tables: [[samples]] "
                                                     "blocks of name = value")])
    decoded = msgspec.convert({k: v for k, v in raw.items() if k != "space"}, struct)
    # a Manifest tells "no [space] table" (None: the recipe's space) from an empty one
    return msgspec.structs.replace(decoded, space=space if "space" in raw or struct is Recipe
                                   else None)


def _struct_problems(value: dict[str, Any], struct: type, prefix: str) -> list[tuple[str, str]]:
    problems = []
    known = set(struct.__struct_fields__)
    for key in value:
        if key not in known:
            problems.append((f"{prefix}.{key}", f"unknown key{_did_you_mean(key, known)}"))
    # Field by field, so every bad value of the table is reported, not only the first.
    for field in msgspec.structs.fields(struct):
        if field.encode_name not in value:
            if field.required:
                problems.append((prefix, f"missing required key {field.encode_name}"))
            continue
        item = value[field.encode_name]
        try:
            msgspec.convert(item, field.type)
        except msgspec.ValidationError as exc:
            location, message = _translate(str(exc), f"{prefix}.{field.encode_name}")
            problems.append((location, _with_value(message, _element(item, location))))
    return problems


_SEARCH_CHOICES = {"method": SearchSection, "metric": SearchObjective,
                   "direction": SearchObjective, "rung_metric": SweepSection}


def _search_choices(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """'search.objectives[0].metric: invalid value 'x'' gets the values it may take."""
    out = []
    for location, message in problems:
        field = location.rsplit(".", 1)[-1]
        if message.startswith("invalid value") and field in _SEARCH_CHOICES:
            kind = typing.get_type_hints(_SEARCH_CHOICES[field])[field]
            message += f"; one of {', '.join(_choices(kind))}"
        out.append((location, message))
    return out


def _choices(kind: Any) -> list[str]:
    """The strings a Literal (possibly optional) allows."""
    args = typing.get_args(kind)
    if all(isinstance(a, str) for a in args):
        return list(args)
    return [c for a in args for c in _choices(a)]


def _element(value: Any, location: str) -> Any:
    """The list element a location such as ``sweep.rungs[2]`` names, else ``value``."""
    index = re.search(r"\[(\d+)\]$", location)
    if index and isinstance(value, list) and int(index[1]) < len(value):
        return value[int(index[1])]
    return value


def _with_value(message: str, value: Any) -> str:
    """'expected int >= 1' (a bound in the type) -> 'must be >= 1, got 0'."""
    bound = re.match(r"expected (?:int|float|number) (>=|>|<=|<) (\S+)$", message)
    return f"must be {bound[1]} {bound[2]}, got {value!r}" if bound else message


def _dist_problem(prefix: str, value: Any, exc: msgspec.ValidationError) -> tuple[str, str]:
    if not isinstance(value, dict):
        return (prefix, "must be a distribution table such as "
                        "{ dist = \"uniform\", low = 0.0, high = 1.0 }")
    dist = value.get("dist")
    if dist is None:
        return (prefix, f"missing key dist (one of {', '.join(DIST_NAMES)})")
    if dist not in DIST_NAMES:
        return (f"{prefix}.dist", f"unknown distribution {dist!r}"
                                  f"{_did_you_mean(str(dist), DIST_NAMES)}; one of "
                                  f"{', '.join(DIST_NAMES)}")
    location, message = _translate(str(exc), prefix)
    if message.startswith("unknown key"):
        return location, f"{message} for {dist}"
    return location, message


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")


def _translate(message: str, prefix: str) -> tuple[str, str]:
    """msgspec's 'Expected `int`, got `str` - at `$.x`' -> ('prefix.x', 'expected int, got str')."""
    match = _AT.match(message)
    text, path = match["msg"], (match["path"] or "")
    location = prefix + path
    unknown = re.match(r"Object contains unknown field `(.+)`", text)
    if unknown:
        return f"{location}.{unknown[1]}", "unknown key"
    missing = re.match(r"Object missing required field `(.+)`", text)
    if missing:
        return location, f"missing required key {missing[1]}"
    text = text.replace("`", "").replace(" | null", "")  # TOML has no null: optional is absent
    text = re.sub(r"^Expected object", "Expected a table", text)
    text = re.sub(r"^Invalid enum value (.+)", r"invalid value \1", text)
    return location, text[0].lower() + text[1:]


def _did_you_mean(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


did_you_mean = _did_you_mean
