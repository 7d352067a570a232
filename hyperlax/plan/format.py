"""The plan file: the frozen contract between review time (``plan``) and run time (``exec``).

A plan file is msgpack of a ``PlanFile`` envelope holding the format version, the plan id and
the ``Plan``. The plan id is the sha256 of the plan's canonical msgpack bytes; decoding
re-encodes the plan and refuses a file whose id does not match, so a hand-edited or damaged
plan is caught before anything runs. Canonical means: Struct fields in declaration order, dict
keys in the order the compiler inserted them (sorted by name), no timestamps, no absolute paths,
no host names. JAX-free.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import msgspec

import hyperlax
from hyperlax.errors import HyperlaxError
from hyperlax.hyperparams import CONFIGS, AlgorithmConfig
from hyperlax.hyperparams.budget import Budget, EvalEpisodes, NumEvaluations, TotalTimesteps

FORMAT = "hyperlax-plan"
FORMAT_VERSION = 1


# grid: the product of every sampled axis; listed: samples given by the manifest or a file;
# saltelli: the A, B, AB_i blocks of a Sobol sensitivity design (report computes the indices)
Sampling = Literal["qmc_sobol", "random", "grid", "listed", "saltelli"]
Mode = Literal["batched", "sequential", "grouped"]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
               omit_defaults=True):
    """Everything about a sweep that is not a hyperparameter, with defaults filled in.
    Fields added after format 1 have defaults and are omitted when unset
    (``omit_defaults``), so plans that do not use them keep their bytes."""

    name: str
    recipe: str           # recipe name used in output paths (file stem for a recipe path)
    algorithm: str
    env: str
    num_samples: int
    sampling: Sampling
    seed: int
    mode: Mode
    batch_size: int
    output_root: str
    seeds_per_sample: int
    total_timesteps: TotalTimesteps   # the three fields of a Budget, flat as format 1 has them
    num_evaluations: NumEvaluations
    eval_episodes: EvalEpisodes
    structures: int | None = None  # two-level sampling: this many structural points

    @property
    def budget(self) -> Budget:
        return Budget(total_timesteps=self.total_timesteps,
                      num_evaluations=self.num_evaluations, eval_episodes=self.eval_episodes)


class HyperParamRow(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    type: str
    role: str                 # "scalar" (vmapped leaf) or "structural" (one compile per value)
    source: str               # default | recipe default | fixed | recipe space | space
    value: Any = None         # the constant, when not sampled
    distribution: dict[str, Any] | None = None  # as written, when sampled
    log_scale: bool = False


class Structure(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    index: int
    values: dict[str, Any]    # every structural hyperparameter, sorted by name


class Sample(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    index: int
    seed: int                 # training seed; replicate r uses fold_in(key(seed), r)
    structure: int
    unit: list[float]         # the unit-cube point, one coordinate per sampled hyperparameter
    values: dict[str, Any]    # the sampled hyperparameters' values, sorted by name


class Group(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    index: int
    structure: int
    samples: list[int]


class SubBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Samples of one entry that share a structure: one vmapped call of ``width`` lanes.
    Lanes past ``len(samples)`` are padding (copies of the first sample) whose results are
    dropped; widths are chosen so that calls of one structure reuse one compiled function."""

    structure: int
    samples: list[int]
    width: int


class Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    index: int
    path: str                 # relative to the output root, '/'-separated
    group: int | None         # the group, in grouped mode
    samples: list[int]
    sub_batches: list[SubBatch]


MAX_CALLS_PER_RUN = 100  # chunk calls per sub-batch at most (see chunk_group)


def chunk_group(num_evaluations: int, max_calls: int = MAX_CALLS_PER_RUN) -> int:
    """How exec splits a run into calls from the host (``runtime.schedule``, ``runtime.runner``);
    here because the plan must respect it too: a successive-halving rung ends between calls.
    Evaluation chunks per host call: 1 (a call per evaluation point: progress and a stop
    between any two), unless that would be more than ``max_calls`` calls per run; then the
    smallest divisor of ``num_evaluations`` that brings the calls down to ``max_calls``."""
    for group in range(1, num_evaluations + 1):
        if num_evaluations % group == 0 and num_evaluations // group <= max_calls:
            return group
    return num_evaluations


# What ranks samples at a rung of successive halving, over the evaluations trained so far
# (means over replicates): the return at the last one, the best one, or the mean of all (auc).
# The one declaration of these names: a search's objectives are the same metrics
# (manifest.format.ObjectiveMetric, search.objectives.METRICS), as is plancheck's check.
RungMetric = Literal["final_return", "best_return", "auc"]


class Rung(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One rung of successive halving: ``samples`` samples train to ``evaluations``
    evaluation points (a whole number of the runtime's calls: ``chunk_group``)."""

    evaluations: int
    samples: int


class Halving(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Successive halving: every sample trains to the first rung; at each rung the best
    ``rungs[r + 1].samples`` by ``metric`` (the top 1/eta) continue, from their checkpoints,
    to the next. The last rung is the full budget."""

    metric: RungMetric
    eta: int
    rungs: list[Rung]


class Pbt(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
          omit_defaults=True):
    """Population-based training: the population is each structure's samples; training is cut
    into intervals (``Training.halving``'s rungs, every sample in every one, eta 1). After each
    interval but the last, in every population, the bottom ``quantile_fraction`` by the
    halving's metric (over the interval's evaluations) takes the training carry of a member
    of the top quantile (exploit) and that member's ``explore`` values, each perturbed by one of
    ``perturbation_factors`` or, with ``resample_probability``, drawn anew from its
    distribution (explore). ``exec.halving.pbt`` has the rules."""

    interval: int                       # evaluations per interval
    quantile_fraction: float
    perturbation_factors: list[float]
    resample_probability: float
    explore: list[str]                  # sampled scalar hyperparameters, sorted
    # a replay: the explore names' values in each interval, for every sample; no exploit and
    # no explore (then the explore names are scalars pinned by the schedule, not sampled)
    schedule: list[dict[str, Any]] | None = None

    def quantile(self, members: int) -> int:
        """How many of a population of ``members`` are in its top (and its bottom) quantile:
        the fraction rounded up, at most half (as Ray Tune counts)."""
        count = math.ceil(members * self.quantile_fraction)
        return count if count <= members / 2 else members // 2


class Training(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
               omit_defaults=True):
    """How training proceeds beyond the budget: checkpoints and successive halving. A plan
    that uses neither has none (``Plan.training`` is None, omitted), so its bytes are those of
    a plan from before these existed. (Plans written since 0.1 carry this table under this
    name, so it stays; a field added later can go wherever it belongs: see ``encode``.)"""

    # Save each entry's training carry every this many evaluations (0: never), so a killed
    # entry resumes from it. Results are bit-identical either way: not in results_id.
    checkpoint_every: int = 0
    halving: Halving | None = None  # successive halving: rungs, see Halving
    # population-based training: its intervals are ``halving``'s rungs (every sample in each)
    pbt: Pbt | None = None


def interval_ends(interval: int, num_evaluations: int) -> list[int]:
    """Where PBT's intervals end, in evaluations: every ``interval``, the last one at the full
    budget (possibly shorter). The compiler lowers them, and a plan read back is checked
    against them."""
    return list(range(interval, num_evaluations, interval)) + [num_evaluations]


def populations(samples: list[Sample]) -> dict[int, list[int]]:
    """PBT's populations: structure -> its samples' indices, in sample order (a copy moves a
    training carry, whose shapes are its structure's)."""
    members: dict[int, list[int]] = {}
    for sample in samples:
        members.setdefault(sample.structure, []).append(sample.index)
    return members


def pow2_width(n: int, cap: int) -> int:
    """Batched mode's call width for a sub-batch of ``n`` samples: ``n`` rounded up to a power
    of two, at most ``cap``. Few widths, so few compiles, and padding never more than doubles
    the work. The compiler's entries and successive halving's rung entries share it."""
    width = 1
    while width < n:
        width *= 2
    return min(width, cap)


def rung_sizes(num_samples: int, eta: int, rungs: int) -> list[int]:
    """How many samples train to each rung: all of them to the first, then the top ``1/eta``
    (rounded down, at least one) of the rung before."""
    counts = [num_samples]
    for _ in range(rungs - 1):
        counts.append(max(1, counts[-1] // eta))
    return counts


class Plan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
           omit_defaults=True):
    hyperlax_version: str
    manifest_name: str        # the manifest's file name, no directory
    manifest_text: str
    manifest_sha256: str
    recipe_text: str
    settings: Settings
    hyperparams: list[HyperParamRow]
    constants: dict[str, Any]
    sampled: list[str]        # names of the sampled hyperparameters, the unit-cube axes
    structures: list[Structure]
    samples: list[Sample]
    groups: list[Group]
    entries: list[Entry]
    samples_file_sha256: str | None = None  # listed samples from a file: its text's sha256
    training: Training | None = None  # checkpoints and successive halving; None: neither

    @property
    def checkpoint_every(self) -> int:
        return 0 if self.training is None else self.training.checkpoint_every

    @property
    def halving(self) -> Halving | None:
        """The stages of a staged training: successive halving's rungs, or PBT's intervals."""
        return None if self.training is None else self.training.halving

    @property
    def pbt(self) -> Pbt | None:
        return None if self.training is None else self.training.pbt

    def sample_values(self, index: int) -> dict[str, Any]:
        """Every hyperparameter's value for one sample."""
        return {**self.constants, **self.samples[index].values}

    def sample_config(self, index: int, explored: dict[str, Any] | None = None
                      ) -> AlgorithmConfig:
        """One sample's configuration: the algorithm's config Struct (validated on the way);
        ``explored``: values PBT gave it since, over the plan's."""
        values = self.sample_values(index)
        return CONFIGS[self.settings.algorithm].from_values(
            values if not explored else {**values, **explored})


class PlanFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    format: str
    format_version: int
    plan_id: str
    plan: Plan


class _Header(msgspec.Struct):
    format: str = ""
    format_version: int = 0


class _Writer(msgspec.Struct):
    hyperlax_version: str = ""


class _Envelope(msgspec.Struct):
    """Just enough of a plan file to learn which hyperlax wrote it, whatever else it holds."""

    plan: _Writer = msgspec.field(default_factory=_Writer)


def version_tuple(version: str) -> tuple[int, ...]:
    """"0.2.0" -> (0, 2, 0); a part that is not a number ends the tuple ("1.0.dev3" -> (1, 0))."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def newer_than_this(version: str) -> bool:
    """Whether a plan written by hyperlax ``version`` comes from a later release than this one."""
    return version_tuple(version) > version_tuple(hyperlax.__version__)


def encode(value: Any) -> bytes:
    """The canonical msgpack bytes of a plan or a part of one. Through ``to_builtins`` first,
    so each map's header counts the fields actually written: msgspec sizes a Struct's header by
    its declared fields (a Struct of 16 or more fields gets a map16 header even when
    ``omit_defaults`` writes fewer), which would tie every plan's bytes to how many fields the
    model declares. A dict's header counts its keys, so a field added later with a default
    changes no existing plan's bytes."""
    return msgspec.msgpack.encode(msgspec.to_builtins(value))


def plan_id(plan: Plan) -> str:
    return hashlib.sha256(encode(plan)).hexdigest()


def encode_plan(plan: Plan) -> bytes:
    return encode(PlanFile(format=FORMAT, format_version=FORMAT_VERSION, plan_id=plan_id(plan),
                           plan=plan))


def decode_plan(data: bytes, source: str) -> tuple[Plan, str]:
    """(plan, plan id) from plan-file bytes, or a HyperlaxError saying what is wrong."""
    remake = "re-create it with: hyperlax plan <manifest>"
    try:
        header = msgspec.msgpack.decode(data, type=_Header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HyperlaxError(source, f"not a hyperlax plan file (corrupt or truncated: {exc})",
                            remake) from None
    except RecursionError:  # hostile nesting: no plan hyperlax wrote is nested so deep
        raise HyperlaxError(source, "not a hyperlax plan file (nested too deeply to be one)",
                            remake) from None
    if header.format != FORMAT:
        raise HyperlaxError(source, "not a hyperlax plan file", remake)
    if header.format_version > FORMAT_VERSION:
        raise HyperlaxError(source, f"plan format version {header.format_version} is newer than "
                                    f"this hyperlax reads ({FORMAT_VERSION})",
                            "upgrade hyperlax, or re-plan the manifest with this version")
    if header.format_version < FORMAT_VERSION:
        raise HyperlaxError(source, f"plan format version {header.format_version} is older than "
                                    f"this hyperlax reads ({FORMAT_VERSION})", remake)
    try:
        writer = msgspec.msgpack.decode(data, type=_Envelope).plan.hyperlax_version
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        writer = ""  # the full decode below says what is wrong
    if newer_than_this(writer):
        raise HyperlaxError(source, f"this plan was written by hyperlax {writer}, which is newer "
                                    f"than this hyperlax ({hyperlax.__version__})",
                            f"upgrade hyperlax to {writer} or later, or re-plan the manifest "
                            "with this version")
    try:
        envelope = msgspec.msgpack.decode(data, type=PlanFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HyperlaxError(source, f"damaged plan file: {exc}", remake) from None
    except RecursionError:
        raise HyperlaxError(source, "damaged plan file: nested too deeply to be one hyperlax "
                                    "wrote", remake) from None
    actual = plan_id(envelope.plan)
    if actual != envelope.plan_id:
        raise HyperlaxError(source, "plan id does not match its contents: the file was edited "
                                    "or damaged after it was written", remake)
    return envelope.plan, actual


RESULTS_ID_FORMAT = "hyperlax-results-1"


def results_id(plan: Plan) -> str:
    """The sha256 of what determines a plan's results: its settings, hyperparameter rows,
    constants, sampled names, structures, samples (values, unit points, seeds) and entries
    (paths, sub-batches). Not the manifest's name or text, its sha256, the recipe's text or
    the hyperlax version: a comment-only edit or a renamed manifest keeps the results id, and
    so keeps its completed results (a sweep directory is owned by a results id). Nor
    ``checkpoint_every``: checkpoints change when results are saved, not what they are."""
    basis = [RESULTS_ID_FORMAT, plan.settings, plan.hyperparams, plan.constants, plan.sampled,
             plan.structures, plan.samples, plan.entries]
    if plan.halving is not None:  # which samples reach which budget; absent: ids unchanged
        basis.append(plan.halving)
    if plan.pbt is not None:      # what each interval continues from, with which values
        basis.append(plan.pbt)
    return hashlib.sha256(encode(basis)).hexdigest()
