"""Algorithm configs as JAX pytrees, as rejax's algorithm structs are: scalar hyperparameters are
leaves (data, vmapped over samples), structural ones are static (part of the tree's structure,
so two configs of different structures are different programs to ``jit``).

The Structs themselves are declared JAX-free in ``hyperlax.hyperparams``; registering them
here, when the runtime is imported, keeps the compiler free of JAX.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hyperlax.hyperparams import CONFIGS, AlgorithmConfig, declarations

_DTYPES = {"float": jnp.float32, "int": jnp.int32, "bool": jnp.bool_}


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _register(cls: type[AlgorithmConfig]) -> None:
    params = declarations(cls).values()
    leaves = tuple(p.attribute for p in params if p.role == "scalar")
    static = tuple(p.attribute for p in params if p.role == "structural")

    def flatten(config: Any) -> tuple[tuple, tuple]:
        return (tuple(getattr(config, a) for a in leaves),
                tuple(_freeze(getattr(config, a)) for a in static))

    def unflatten(aux: tuple, children: tuple) -> Any:
        # Struct __init__ does not validate, so leaves may be tracers, arrays or None
        return cls(**dict(zip(leaves, children)), **dict(zip(static, aux)))

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)


for _cls in CONFIGS.values():
    _register(_cls)


def as_data(config: AlgorithmConfig) -> AlgorithmConfig:
    """``config`` with every scalar a 0-d array of its declared dtype (float32, int32, bool)."""
    dtypes = {p.attribute: _DTYPES[p.type] for p in declarations(type(config)).values()
              if p.role == "scalar"}
    return _replace_leaves(config, lambda name, v: jnp.asarray(v, dtypes[name]))


def stack(configs: list[AlgorithmConfig]) -> AlgorithmConfig:
    """One config whose scalars have a leading axis, one lane per config (the vmapped axis).
    Every config must have the same structure (static values)."""
    data = [as_data(c) for c in configs]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *data)


def lane(config: AlgorithmConfig, i: int) -> AlgorithmConfig:
    """Lane ``i`` of a stacked config."""
    return jax.tree.map(lambda x: x[i], config)


def _replace_leaves(config: AlgorithmConfig, fn: Any) -> AlgorithmConfig:
    names = [p.attribute for p in declarations(type(config)).values() if p.role == "scalar"]
    children, treedef = jax.tree_util.tree_flatten(config)
    return jax.tree_util.tree_unflatten(
        treedef, [fn(name, np.asarray(v)) for name, v in zip(names, children)])
