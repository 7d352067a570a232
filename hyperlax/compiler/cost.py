"""What a structure costs to run, estimated without JAX: memory of one compiled call and the work
of one run. ``plan`` refuses what cannot run at all (counters that overflow, calls whose memory
is beyond any machine) and warns above a threshold; ``show`` prints the estimates so a reviewer
sees an expensive manifest before it runs.

The estimates count float32 arrays the training program keeps alive: parameters with their Adam
moments, gradients and target copies; the rollout (PPO) or the replay buffer (DQN, SAC) and its
sampled batches; environment states; and the activations of one gradient step. They are meant to
be right within a small factor, which is what a go/no-go review needs; XLA's own figure for the
compiled program is what ``exec`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hyperlax.environments import ENVS, EnvInfo
from hyperlax.hyperparams import CONFIGS
from hyperlax.hyperparams.config import CNN_FEATURES, CNN_KERNEL, NetworkShape, cnn_output_size

INT32_MAX = 2**31 - 1
FLOAT = 4                     # bytes per float32
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


@dataclass(frozen=True)
class NetworkSize:
    params: int
    activations: int          # floats one example's forward pass keeps per layer, summed


def _network(shape: NetworkShape, env: EnvInfo, outputs: int, extra_inputs: int = 0,
             value_head: bool = False) -> NetworkSize:
    """The size of a network as ``runtime.networks.MLP`` builds it: the optional
    convolutional torso on image observations, the hidden layers (with LayerNorm's scale and
    bias), the head of ``outputs`` and, for a dueling Q-network, a value head beside it."""
    params, activations, inputs = 0, 0, env.obs_size + extra_inputs
    if shape.cnn and len(env.obs_shape) == 3:
        channels = env.obs_shape[2]
        params += CNN_KERNEL[0] * CNN_KERNEL[1] * channels * CNN_FEATURES + CNN_FEATURES
        inputs = cnn_output_size(tuple(env.obs_shape)) + extra_inputs
        activations += inputs
    widths = [inputs, *shape.layer_sizes]
    params += sum(a * b + b for a, b in zip(widths, widths[1:]))
    if shape.layer_norm:
        params += 2 * sum(shape.layer_sizes)
    params += (widths[-1] + 1) * (outputs + (1 if value_head else 0))
    return NetworkSize(params, activations + sum(shape.layer_sizes))


def _config(algorithm: str, values: dict[str, Any]) -> Any:
    return CONFIGS[algorithm].from_values(values)


def structure_cost(algorithm: str, env_id: str, values: dict[str, Any], budget: Any) -> Cost:
    """The cost of one sample-replicate of a structure; ``values`` holds every hyperparameter's
    value (constants and the structure's structural values)."""
    env: EnvInfo = ENVS[env_id]
    config = _config(algorithm, values)
    obs, act = env.obs_size, env.action_size
    per_update = values["num_envs"] * values["rollout_length"]
    per_eval = max(budget.total_timesteps // per_update // budget.num_evaluations, 1)
    updates = per_eval * budget.num_evaluations
    env_state = values["num_envs"] * (obs + 8) * FLOAT   # gymnax states: a few floats more
    eval_state = budget.eval_episodes * (obs + 8) * FLOAT
    if algorithm == "ppo":
        actor = _network(config.network("actor"), env, act)
        critic = _network(config.network("critic"), env, 1)
        params = actor.params + critic.params
        rollout = per_update * (obs + act + 6) * FLOAT * 3     # rollout, shuffled copy, batches
        minibatch = per_update // values["num_minibatches"]
        activations = minibatch * (actor.activations + critic.activations) * FLOAT * 3
        data = rollout + activations
        grad_steps = updates * values["update_epochs"] * values["num_minibatches"]
        copies = 4                                             # params, 2 Adam moments, grads
    else:
        if algorithm == "dqn":
            q = _dqn_network(config, env)
            params, activations = q.params, q.activations
            copies = 5                                         # + target network
            item = 2 * obs + 3
        else:
            actor, critic = _sac_networks(config, env)
            params = actor.params + 2 * critic.params
            activations = actor.activations + 2 * critic.activations
            copies = 5
            item = 2 * obs + act + 2
        batch = values["replay_batch_size"]
        data = (values["buffer_size"] + 2 * batch + per_update) * item * FLOAT
        data += batch * activations * FLOAT * 3
        grad_steps = updates * values["train_epochs"]
    lane = params * copies * FLOAT + data + env_state + eval_state
    return Cost(params=params, lane_bytes=lane, steps_per_run=updates * per_update,
                gradient_steps=grad_steps)


def _dqn_network(config: Any, env: EnvInfo) -> NetworkSize:
    return _network(config.network("q"), env, env.action_size, value_head=config.dueling)


def _sac_networks(config: Any, env: EnvInfo) -> tuple[NetworkSize, NetworkSize]:
    """The actor (mean and log std heads) and one of the twin critics (on obs and action)."""
    return (_network(config.network("actor"), env, 2 * env.action_size),
            _network(config.network("critic"), env, 1, extra_inputs=env.action_size))


def carry_bytes(algorithm: str, env_id: str, values: dict[str, Any]) -> int:
    """Bytes of one sample-replicate's training carry: what a checkpoint stores per lane
    (parameters and their Adam moments, target networks, the replay buffer, environment states
    and observations, keys and counters; not the transient rollout or activations). An
    estimate, from the same counts as ``structure_cost``."""
    env: EnvInfo = ENVS[env_id]
    config = _config(algorithm, values)
    obs, act = env.obs_size, env.action_size
    envs = values["num_envs"] * (2 * obs + 8) * FLOAT   # env states and the last observations
    if algorithm == "ppo":
        actor = _network(config.network("actor"), env, act).params
        critic = _network(config.network("critic"), env, 1).params
        learner, buffer = (actor + critic) * 3 + 2 * obs, 0     # + observation statistics
    elif algorithm == "dqn":
        learner = _dqn_network(config, env).params * 4          # + target network
        buffer = values["buffer_size"] * (2 * obs + 3) * FLOAT
    else:
        actor, critic = _sac_networks(config, env)
        learner = actor.params * 3 + 2 * critic.params * 4     # twin critics and targets
        buffer = values["buffer_size"] * (2 * obs + act + 2) * FLOAT
    return learner * FLOAT + buffer + envs + 64


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
