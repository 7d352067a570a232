"""What a structure costs to run, estimated without JAX: memory of one compiled call and the work
of one run. ``plan`` refuses what cannot run at all (counters that overflow, calls whose memory
is beyond any machine) and warns above a threshold; ``show`` prints the estimates so a reviewer
sees an expensive manifest before it runs.

The estimates count float32 arrays the training program keeps alive: parameters with their Adam
moments, gradients and target copies; the rollout or the replay buffer and its sampled batches;
environment states; and the activations of one gradient step. Each algorithm counts its own
part (its config's ``footprint``, declared with its hyperparameters); this module knows no
algorithm. They are meant to
be right within a small factor, which is what a go/no-go review needs; XLA's own figure for the
compiled program is what ``exec`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hyperlax.environments import ENVS, EnvInfo
from hyperlax.hyperparams import CONFIGS
from hyperlax.hyperparams.footprint import FLOAT

INT32_MAX = 2**31 - 1
HARD_LIMIT_BYTES = 1 << 40    # 1 TiB for one call: no machine runs it; refuse at plan time
DEFAULT_WARN_GIB = 16.0


@dataclass(frozen=True)
class Cost:
    params: int               # parameters of one sample-replicate, all networks
    lane_bytes: int           # memory of one sample-replicate (one lane of the vmapped call)
    steps_per_run: int        # env steps one run trains (after rounding to whole updates)
    gradient_steps: int       # gradient steps one run takes

    def call_bytes(self, width: int, replicates: int) -> int:
        return self.lane_bytes * width * replicates


def _config(algorithm: str, values: dict[str, Any]) -> Any:
    return CONFIGS[algorithm].from_values(values)


def structure_cost(algorithm: str, env_id: str, values: dict[str, Any], budget: Any) -> Cost:
    """The cost of one sample-replicate of a structure; ``values`` holds every hyperparameter's
    value (constants and the structure's structural values). The algorithm counts its own
    networks, data and gradient steps (its config's ``footprint``); added here: the env states
    and the evaluation's, and the budget's number of updates."""
    env: EnvInfo = ENVS[env_id]
    config = _config(algorithm, values)
    own = config.footprint(env)
    per_update = config.steps_per_update()
    per_eval = max(budget.total_timesteps // per_update // budget.num_evaluations, 1)
    updates = per_eval * budget.num_evaluations
    env_state = config.num_envs * (env.obs_size + 8) * FLOAT   # gymnax states: a few floats more
    eval_state = budget.eval_episodes * (env.obs_size + 8) * FLOAT
    lane = own.params * own.param_copies * FLOAT + own.data_bytes + env_state + eval_state
    return Cost(params=own.params, lane_bytes=lane, steps_per_run=updates * per_update,
                gradient_steps=updates * own.gradient_steps_per_update)


def carry_bytes(algorithm: str, env_id: str, values: dict[str, Any]) -> int:
    """Bytes of one sample-replicate's training carry: what a checkpoint stores per lane
    (parameters and their Adam moments, target networks, the replay buffer, environment states
    and observations, keys and counters; not the transient rollout or activations). An
    estimate, from the same counts as ``structure_cost``."""
    env: EnvInfo = ENVS[env_id]
    config = _config(algorithm, values)
    own = config.footprint(env)
    envs = config.num_envs * (2 * env.obs_size + 8) * FLOAT  # env states, the last observations
    return own.learner_floats * FLOAT + own.buffer_bytes + envs + 64


def plan_carry_bytes(plan: Any) -> dict[str, int]:
    """What checkpoints of ``plan`` hold on disk, estimated: ``entry`` (the largest entry's
    periodic checkpoint, all its sub-batches' lanes, padding included: what one running entry
    keeps), ``periodic`` (that summed over every entry: the most a sweep's periodic checkpoints
    could take at once if every entry were stopped midway) and, with successive halving,
    ``rung_ends`` (the carries every rung but the last keeps for the next, real lanes only,
    kept with the results)."""
    replicates = plan.settings.seeds_per_sample
    per_lane = [carry_bytes(plan.settings.algorithm, plan.settings.env,
                            {**plan.constants, **s.values}) for s in plan.structures]
    entries = [sum(per_lane[sb.structure] * sb.width for sb in e.sub_batches) * replicates
               for e in plan.entries]
    out = {"entry": max(entries, default=0), "periodic": sum(entries)}
    if plan.halving is not None:
        lanes = [per_lane[s.structure] * replicates for s in plan.samples]
        mean = sum(lanes) / max(len(lanes), 1)
        # rung 0 keeps every sample's; later rungs' survivors are not known until they run
        out["rung_ends"] = sum(lanes) + int(mean * sum(r.samples for r in plan.halving.rungs[
            1:-1]))
    return out


def cost_problems(cost: Cost, budget: Any, width: int, replicates: int) -> list[str]:
    """Why a structure cannot run at all; each a sentence."""
    problems = []
    if cost.steps_per_run > INT32_MAX:
        problems.append(f"{cost.steps_per_run:,} env steps per run overflow the int32 step "
                        f"counters (at most {INT32_MAX:,}); lower total_timesteps")
    if cost.gradient_steps > INT32_MAX:
        problems.append(f"{cost.gradient_steps:,} gradient steps per run overflow the int32 "
                        "counters; fewer epochs or minibatches, or a smaller budget")
    call = cost.call_bytes(width, replicates)
    if call > HARD_LIMIT_BYTES:
        lane = gib(cost.lane_bytes)
        problems.append(f"one vmapped call of {width} samples x {replicates} replicates needs "
                        f"about {gib(call):,.0f} GiB (each sample-replicate {lane:,.1f} GiB): "
                        "more than any machine has; smaller networks, buffers or batches")
    return problems


def gib(n: int) -> float:
    return n / (1 << 30)


def human_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def plan_costs(plan: Any) -> list[tuple[Cost, int]]:
    """(cost, widest call) of each of ``plan``'s structures, in structure order."""
    widest = [0] * len(plan.structures)
    for entry in plan.entries:
        for sb in entry.sub_batches:
            widest[sb.structure] = max(widest[sb.structure], sb.width)
    budget = plan.settings.budget
    return [(structure_cost(plan.settings.algorithm, plan.settings.env,
                            {**plan.constants, **s.values}, budget), widest[s.index])
            for s in plan.structures]


def cost_review(plan: Any, warn_gib: float) -> tuple[list[tuple[str, str]], list[str]]:
    """(problems that refuse the plan, located; warnings above ``warn_gib`` per call). A
    problem shared by several structures is reported once, naming them."""
    found: dict[str, list[int]] = {}
    warnings = []
    replicates = plan.settings.seeds_per_sample
    for structure, (cost, width) in zip(plan.structures, plan_costs(plan)):
        for problem in cost_problems(cost, plan.settings.budget, width, replicates):
            found.setdefault(problem, []).append(structure.index)
        call = cost.call_bytes(width, replicates)
        if gib(call) > warn_gib:
            warnings.append(f"structure {structure.index}: one vmapped call ({width} samples x "
                            f"{replicates} replicates) needs about {human_bytes(call)}, above "
                            f"the {warn_gib:g} GiB warning threshold (--warn-memory); see "
                            "hyperlax show")
    problems = [(_structures_text(indices, len(plan.structures)), problem)
                for problem, indices in found.items()]
    return problems, warnings[:5] + ([f"... and {len(warnings) - 5} more structures above the "
                                      "memory warning threshold"] if len(warnings) > 5 else [])


def _structures_text(indices: list[int], total: int) -> str:
    if len(indices) == total and total > 1:
        return "every structure"
    if len(indices) == 1:
        return f"structure {indices[0]}"
    shown = ", ".join(map(str, indices[:5])) + (", ..." if len(indices) > 5 else "")
    return f"structures {shown}"
