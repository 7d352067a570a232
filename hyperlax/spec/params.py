"""Every hyperparameter of every algorithm, declared once and without JAX.

A declaration says what values are legal (type, bounds, choices), what the default is, and
whether the hyperparameter is *scalar* (a float leaf of the pytree the runtime vmaps over) or
*structural* (it changes array shapes or loop lengths, so each distinct value needs its own
compiled function). The compiler uses declarations to validate manifests and to group samples;
the runtime uses them to split a sample's values into the vmapped pytree and the static part.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgspec

ParamType = Literal["float", "int", "bool", "str", "int_list"]
Role = Literal["scalar", "structural"]


class HyperParam(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    type: ParamType
    role: Role
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the bound itself is excluded, e.g. a rate must be > 0
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    doc: str = ""

    def bounds_text(self) -> str:
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def check_value(self, value: Any) -> str | None:
        """Return why ``value`` is not a legal value of this hyperparameter, or None."""
        if self.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"expected a number, got {_describe(value)}"
            if not math.isfinite(value):
                return f"must be finite, got {value}"
            return self._check_bounds(value)
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {_describe(value)}"
            return self._check_bounds(value)
        if self.type == "bool":
            if not isinstance(value, bool):
                return f"expected true or false, got {_describe(value)}"
            return None
        if self.type == "str":
            if not isinstance(value, str):
                return f"expected a string, got {_describe(value)}"
            if self.choices is not None and value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
            return None
        # int_list: layer sizes
        if not isinstance(value, list) or not value:
            return f"expected a non-empty list of integers such as [64, 64], got {_describe(value)}"
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                return f"expected a list of integers such as [64, 64], got {_describe(value)}"
            problem = self._check_bounds(item)
            if problem:
                return f"every element {problem[0].lower()}{problem[1:]}"
        return None

    def _check_bounds(self, value: float) -> str | None:
        if self.low is not None:
            if self.low_open and not value > self.low:
                return f"must be > {_fmt(self.low)}, got {_fmt(value)}"
            if not self.low_open and not value >= self.low:
                return f"must be >= {_fmt(self.low)}, got {_fmt(value)}"
        if self.high is not None:
            if self.high_open and not value < self.high:
                return f"must be < {_fmt(self.high)}, got {_fmt(value)}"
            if not self.high_open and not value <= self.high:
                return f"must be <= {_fmt(self.high)}, got {_fmt(value)}"
        return None


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if kind != "table" else "a table"


# --- constructors that keep the tables below readable -------------------------------------

def rate(name: str, default: float, doc: str) -> HyperParam:
    return HyperParam(name=name, type="float", role="scalar", default=default, low=0.0,
                      low_open=True, doc=doc)


def unit(name: str, default: float, doc: str, *, low_open: bool = False) -> HyperParam:
    return HyperParam(name=name, type="float", role="scalar", default=default, low=0.0,
                      high=1.0, low_open=low_open, doc=doc)


def nonneg(name: str, default: float, doc: str) -> HyperParam:
    return HyperParam(name=name, type="float", role="scalar", default=default, low=0.0, doc=doc)


def count(name: str, default: int, doc: str, *, low: int = 1, high: int = 10_000_000) -> HyperParam:
    return HyperParam(name=name, type="int", role="structural", default=default, low=low,
                      high=high, doc=doc)


def flag(name: str, default: bool, doc: str) -> HyperParam:
    return HyperParam(name=name, type="bool", role="structural", default=default, doc=doc)


def layers(name: str, default: list[int], doc: str) -> HyperParam:
    return HyperParam(name=name, type="int_list", role="structural", default=default, low=1,
                      high=65_536, doc=doc)


ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu", "leaky_relu")


def activation(default: str) -> HyperParam:
    return HyperParam(name="network.activation", type="str", role="structural", default=default,
                      choices=ACTIVATIONS, doc="hidden-layer activation of every network")


def _table(*params: HyperParam) -> dict[str, HyperParam]:
    return {p.name: p for p in sorted(params, key=lambda p: p.name)}


PPO = _table(
    rate("actor_lr", 3e-4, "Adam learning rate of the actor"),
    rate("critic_lr", 3e-4, "Adam learning rate of the critic"),
    unit("gamma", 0.99, "discount factor", low_open=True),
    unit("gae_lambda", 0.95, "GAE lambda"),
    rate("clip_eps", 0.2, "PPO clipping range of the probability ratio"),
    nonneg("ent_coef", 0.0, "entropy bonus coefficient"),
    nonneg("vf_coef", 0.5, "value-loss coefficient"),
    rate("max_grad_norm", 0.5, "global gradient-norm clip"),
    count("num_envs", 8, "parallel environments per sample", high=65_536),
    count("rollout_length", 64, "environment steps per env between updates", high=1_000_000),
    count("update_epochs", 4, "passes over each rollout", high=1_000),
    count("num_minibatches", 4, "minibatches per epoch", high=1_000_000),
    flag("normalize_observations", True, "running mean/std observation normalization"),
    layers("network.actor.layer_sizes", [64, 64], "hidden layer widths of the actor MLP"),
    layers("network.critic.layer_sizes", [64, 64], "hidden layer widths of the critic MLP"),
    activation("tanh"),
)

DQN = _table(
    rate("learning_rate", 5e-4, "Adam learning rate of the Q-network"),
    unit("gamma", 0.99, "discount factor", low_open=True),
    unit("tau", 1.0, "target update coefficient (1.0: hard copy)", low_open=True),
    unit("epsilon_start", 1.0, "exploration epsilon at the start of training"),
    unit("epsilon_end", 0.05, "exploration epsilon at the end of the decay"),
    unit("epsilon_decay_fraction", 0.5, "fraction of training over which epsilon decays",
         low_open=True),
    rate("max_grad_norm", 10.0, "global gradient-norm clip"),
    rate("huber_delta", 1.0, "Huber loss delta"),
    count("buffer_size", 10_000, "replay buffer capacity (transitions)", high=10_000_000),
    count("replay_batch_size", 64, "transitions per gradient step", high=65_536),
    count("num_envs", 4, "parallel environments per sample", high=65_536),
    count("rollout_length", 4, "environment steps per env between training phases",
          high=1_000_000),
    count("train_epochs", 4, "gradient steps per training phase", high=10_000),
    count("warmup_steps", 1_000, "environment steps before learning starts", low=0,
          high=10_000_000),
    count("target_update_period", 250, "gradient steps between target-network updates",
          high=1_000_000),
    flag("double_q", True, "double Q-learning targets"),
    layers("network.q.layer_sizes", [64, 64], "hidden layer widths of the Q-network"),
    activation("relu"),
)

SAC = _table(
    rate("actor_lr", 3e-4, "Adam learning rate of the actor"),
    rate("q_lr", 3e-4, "Adam learning rate of the twin Q critics"),
    rate("alpha_lr", 3e-4, "Adam learning rate of the entropy temperature"),
    unit("gamma", 0.99, "discount factor", low_open=True),
    unit("tau", 0.005, "soft target update coefficient", low_open=True),
    nonneg("target_entropy_scale", 1.0, "target entropy = -scale x action dimension"),
    rate("init_alpha", 1.0, "initial entropy temperature"),
    rate("max_grad_norm", 10.0, "global gradient-norm clip"),
    count("buffer_size", 50_000, "replay buffer capacity (transitions)", high=10_000_000),
    count("replay_batch_size", 256, "transitions per gradient step", high=65_536),
    count("num_envs", 1, "parallel environments per sample", high=65_536),
    count("rollout_length", 1, "environment steps per env between training phases",
          high=1_000_000),
    count("train_epochs", 1, "gradient steps per training phase", high=10_000),
    count("warmup_steps", 1_000, "environment steps before learning starts", low=0,
          high=10_000_000),
    layers("network.actor.layer_sizes", [256, 256], "hidden layer widths of the actor MLP"),
    layers("network.critic.layer_sizes", [256, 256], "hidden layer widths of each Q critic"),
    activation("relu"),
)

ALGORITHMS: dict[str, dict[str, HyperParam]] = {"ppo": PPO, "dqn": DQN, "sac": SAC}

# Which action spaces each algorithm can act in.
ALGORITHM_ACTIONS: dict[str, tuple[str, ...]] = {
    "ppo": ("discrete", "continuous"),
    "dqn": ("discrete",),
    "sac": ("continuous",),
}


def cross_field_problems(algorithm: str, values: dict[str, Any]) -> list[str]:
    """Rules that involve several hyperparameters of one sample; each problem is a sentence."""
    problems: list[str] = []
    if algorithm == "ppo":
        batch = values["num_envs"] * values["rollout_length"]
        if batch % values["num_minibatches"]:
            problems.append(
                f"num_envs x rollout_length = {values['num_envs']} x {values['rollout_length']}"
                f" = {batch} is not divisible by num_minibatches = {values['num_minibatches']}")
    else:
        if values["replay_batch_size"] > values["buffer_size"]:
            problems.append(
                f"replay_batch_size = {values['replay_batch_size']} exceeds buffer_size = "
                f"{values['buffer_size']}")
    return problems


def steps_per_update(algorithm: str, values: dict[str, Any]) -> int:
    """Environment steps one training iteration consumes (all algorithms: envs x rollout)."""
    return values["num_envs"] * values["rollout_length"]
