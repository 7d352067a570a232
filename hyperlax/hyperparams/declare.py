"""How a hyperparameter is declared: one field of an algorithm's config Struct.

The field's type carries its bounds (msgspec ``Meta``, so the JSON Schemas in schemas/ carry them
too), its default is the field default, and its *role* is stated by use:

- ``scalar``: data. A leaf of the pytree the runtime vmaps over: anything that changes no array
  shape and no loop length, integers included when they are only compared with traced counters
  (warm-up steps, target-update periods). Samples that differ only in scalars share one program.
- ``structural``: changes shapes or loop lengths (numbers of envs, rollout length, epochs, layer
  sizes) or which code is traced (activation, flags). Each distinct combination compiles once.

``declarations(Config)`` reads the Struct back (``msgspec.inspect``) into ``HyperParam`` rows, the
JAX-free view the compiler validates and groups with. The runtime registers the same Struct as a
pytree (``hyperlax.train.configs``). Nothing here imports JAX.
"""

from __future__ import annotations

import functools
import math
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Role = Literal["scalar", "structural"]
ParamType = Literal["float", "int", "bool", "str", "int_list"]

ACTIVATION_NAMES = ("tanh", "relu", "gelu", "silu", "elu", "leaky_relu")
Activation = Literal["tanh", "relu", "gelu", "silu", "elu", "leaky_relu"]
# A network's own activation, or "same": the shared ``network.activation``. The shared name
# stays the one most manifests set; a per-network value overrides it for that network only.
SAME = "same"
NetworkActivation = Literal["same", "tanh", "relu", "gelu", "silu", "elu", "leaky_relu"]
Torso = Literal["mlp", "cnn"]
# PPO's torsos: also a GRU, whose hidden state the rollout carries (hyperlax.train.recurrent)
RecurrentTorso = Literal["mlp", "cnn", "gru"]
Width = Annotated[int, Meta(ge=1, le=65_536)]


def scalar(base: Any, doc: str, since: str | None = None, **bounds: Any) -> Any:
    """The annotated type of a scalar (data) hyperparameter: ``actor_lr: scalar(float, ...)``.
    ``since``: see ``HyperParam.since``."""
    return Annotated[base, Meta(description=doc, extra=_extra("scalar", since), **bounds)]


def structural(base: Any, doc: str, image_only: tuple[str, ...] = (), since: str | None = None,
               **bounds: Any) -> Any:
    """The annotated type of a structural hyperparameter (one compile per distinct value).
    ``image_only``: values that need image observations (an env whose ``obs_shape`` is height x
    width x channels); the compiler refuses them for any other env. ``since``: see
    ``HyperParam.since``."""
    extra = _extra("structural", since)
    if image_only:
        extra["image_only"] = tuple(image_only)
    return Annotated[base, Meta(description=doc, extra=extra, **bounds)]


def _extra(role: str, since: str | None) -> dict[str, Any]:
    return {"role": role} if since is None else {"role": role, "since": since}


def layer_sizes(doc: str) -> Any:
    return structural(list[Width], doc, min_length=1)


def activation(doc: str = "hidden-layer activation of every network whose own "
                          "activation is 'same'") -> Any:
    return structural(Activation, doc)


def network_activation(network: str) -> Any:
    """A per-network activation; "same" (its default) follows ``network.activation``."""
    return structural(NetworkActivation, f"hidden-layer activation of the {network}; 'same': "
                                         "network.activation")


def layer_norm(network: str) -> Any:
    return structural(bool, f"layer normalization after each hidden layer of the {network} "
                            "(before its activation)")


_TORSO_DOC = ("input stage of the {networks}: 'mlp' (the flat observation goes straight into "
              "the hidden layers) or 'cnn' (image observations only: the observation reshaped "
              "to height x width x channels, one 3x3 convolution with 16 channels and relu, as "
              "in MinAtar's networks, flattened into the hidden layers)")
_GRU_DOC = (", or 'gru' (a GRU cell of network.gru_hidden_size units on the flat observation, "
            "its output into the hidden layers; the hidden state is carried from step to step "
            "and reset to zeros at every episode end)")


def torso(networks: str, gru: bool = False) -> Any:
    """``gru``: the algorithm can carry a recurrent hidden state (PPO), so "gru" is a choice."""
    if gru:
        return structural(RecurrentTorso, _TORSO_DOC.format(networks=networks) + _GRU_DOC,
                          image_only=("cnn",))
    return structural(Torso, _TORSO_DOC.format(networks=networks), image_only=("cnn",))


def resolve_activation(own: str, shared: str) -> str:
    """The activation a network uses: its own, or the shared one when its own is "same"."""
    return shared if own == SAME else own


def network_field(name: str, default: Any) -> Any:
    """A field whose manifest name is dotted (``network.actor.layer_sizes``)."""
    if isinstance(default, list):
        return msgspec.field(default_factory=lambda: list(default), name=name)
    return msgspec.field(default=default, name=name)


class HyperParam(msgspec.Struct, frozen=True, kw_only=True):
    """One declared hyperparameter as the compiler sees it (read from a config Struct)."""

    name: str                 # as written in manifests, recipes and plans
    attribute: str            # the Struct attribute (differs for dotted names)
    type: ParamType
    role: Role
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False    # True: the bound itself is excluded, e.g. a rate must be > 0
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    image_only: tuple[str, ...] = ()  # values that need image observations (see structural)
    doc: str = ""
    # The hyperlax version that added it, for one added after 0.1. Its default must be the
    # value that reproduces what hyperlax did before it existed: a plan leaves it out while it
    # has that value (``compiler.lower``), so adding it changes no plan, no plan id and no
    # results id, and a plan without it (any plan written before it) trains with its default.
    # Hyperparameters of 0.1 are always written (the plans of 0.1 have them), but a plan
    # written before one of them existed lacks it too and is read the same way.
    since: str | None = None

    def omitted(self, value: Any) -> bool:
        """Whether a plan leaves this hyperparameter out when it has ``value``."""
        return self.since is not None and value == self.default and \
            type(value) is type(self.default)

    def bounds_text(self) -> str:
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def check_value(self, value: Any) -> str | None:
        """Why ``value`` is not a legal value of this hyperparameter, or None."""
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
            return None if isinstance(value, bool) else \
                f"expected true or false, got {_describe(value)}"
        if self.type == "str":
            if not isinstance(value, str):
                return f"expected a string, got {_describe(value)}"
            if self.choices is not None and value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
            return None
        if not isinstance(value, list) or not value:  # int_list: layer sizes
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


def env_value_problem(param: HyperParam, value: Any, obs_shape: tuple[int, ...]) -> str | None:
    """Why ``value`` of ``param`` cannot be used in an env with observations of
    ``obs_shape``, or None."""
    if value in param.image_only and len(obs_shape) != 3:
        return (f"{value!r} needs image observations (height x width x channels), but this "
                f"env's observations have shape {tuple(obs_shape)}")
    return None


def value_problems(values: dict[str, Any], table: dict[str, HyperParam],
                   prefix: str) -> list[tuple[str, str]]:
    """(``prefix.name``, why) for each value of ``values`` that is not legal for its declared
    hyperparameter; names not in ``table`` are left to the caller."""
    return [(f"{prefix}.{name}", problem) for name, value in values.items()
            if name in table and (problem := table[name].check_value(value))]


@functools.cache
def declarations(config: type[msgspec.Struct]) -> dict[str, HyperParam]:
    """Every hyperparameter declared by ``config``, sorted by manifest name."""
    info = msgspec.inspect.type_info(config)
    hints = typing.get_type_hints(config, include_extras=True)
    params = [_param(field, hints[field.name]) for field in info.fields]
    return {p.name: p for p in sorted(params, key=lambda p: p.name)}


def _param(field: msgspec.inspect.Field, hint: Any) -> HyperParam:
    t = field.type
    meta = t if isinstance(t, msgspec.inspect.Metadata) else None
    if meta is not None:
        t = meta.type
    extra = (meta.extra or {}) if meta is not None else {}
    role = extra.get("role")
    if role not in ("scalar", "structural"):
        raise TypeError(f"{field.name}: declare it with scalar(...) or structural(...)")
    default = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    common = dict(name=field.encode_name, attribute=field.name, role=role, default=default,
                  image_only=tuple(extra.get("image_only", ())), since=extra.get("since"),
                  doc=meta.extra_json_schema.get("description", "") if meta.extra_json_schema
                  else "")
    if isinstance(t, msgspec.inspect.FloatType):
        return HyperParam(type="float", **common, **_bounds(t))
    if isinstance(t, msgspec.inspect.IntType):
        return HyperParam(type="int", **common, **_bounds(t))
    if isinstance(t, msgspec.inspect.BoolType):
        return HyperParam(type="bool", **common)
    if isinstance(t, msgspec.inspect.LiteralType):
        # msgspec sorts a Literal's values; messages list them in the declared order
        declared = typing.get_args(typing.get_args(hint)[0])
        return HyperParam(type="str", choices=tuple(declared), **common)
    if isinstance(t, msgspec.inspect.ListType) and isinstance(t.item_type,
                                                               msgspec.inspect.IntType):
        return HyperParam(type="int_list", **common, **_bounds(t.item_type))
    raise TypeError(f"{field.name}: unsupported hyperparameter type {t}")


def _bounds(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.gt is not None:
        out.update(low=t.gt, low_open=True)
    elif t.ge is not None:
        out.update(low=t.ge)
    if t.lt is not None:
        out.update(high=t.lt, high_open=True)
    elif t.le is not None:
        out.update(high=t.le)
    return out


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if kind != "table" else "a table"
