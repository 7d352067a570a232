"""Several local devices in one process: a sub-batch's sample axis split across them.

``hyperlax exec --devices all|N`` runs each sub-batch as one program over a one-axis mesh
(``batch``) of N local devices. The plan's width is rounded up to a multiple of N (the extra
lanes repeat the first sample, like the plan's own padding, and are dropped), and each device
trains ``width / N`` lanes.

The program is ``jit(shard_map(vmap(vmap(train))))``: every device runs exactly the unsharded
vmapped program on its own slice, and the body has no cross-device communication at all (the
lanes are independent). That matters on jax's CPU backend: a batched LAPACK QR (orthogonal
initialization) inside a program that the SPMD partitioner splits by itself has been seen to
deadlock with 2 forced host devices. No algorithm runs a QR in its program any more (see
``networks.scaled_normal``: it deadlocked unsharded too), and with shard_map the partitioner
has nothing to insert either; ``collectives`` lets tests check the compiled program for it.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hyperlax.exec.schedule import padded_width

__all__ = ["Sharded", "collectives", "padded_width", "resolve_devices"]

AXIS = "batch"

try:  # jax >= 0.7
    from jax import shard_map as _shard_map

    def _local(fn: Callable, mesh: Mesh, spec: PartitionSpec) -> Callable:
        return _shard_map(fn, mesh=mesh, in_specs=(spec, spec), out_specs=spec,
                          check_vma=False)
except ImportError:  # older jax
    from jax.experimental.shard_map import shard_map as _shard_map

    def _local(fn: Callable, mesh: Mesh, spec: PartitionSpec) -> Callable:
        return _shard_map(fn, mesh=mesh, in_specs=(spec, spec), out_specs=spec,
                          check_rep=False)


def resolve_devices(spec: str | int | None) -> list[Any]:
    """The local devices ``--devices`` asks for: ``all``, or the first N. Raises ValueError
    with a message for the user when N is not available."""
    available = jax.local_devices()
    if spec is None:
        return available[:1]
    if spec == "all":
        return available
    n = int(spec)
    if n < 1 or n > len(available):
        kinds = sorted({d.platform for d in available})
        raise ValueError(f"{n} devices asked for, {len(available)} available "
                         f"({', '.join(kinds)})")
    return available[:n]


class Sharded:
    """Places a sub-batch's inputs on the mesh and wraps the vmapped train function."""

    def __init__(self, devices: list[Any]):
        self.devices = list(devices)
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))

    def wrap(self, batched: Callable, donate: bool = False) -> Callable:
        """jit of ``batched(a, b)`` (vmapped over the leading axis of its inputs and outputs),
        one slice per device; ``donate``: its second argument's buffers are donated."""
        spec = PartitionSpec(AXIS)
        return jax.jit(_local(batched, self.mesh, spec),
                       in_shardings=(self.sharding, self.sharding),
                       out_shardings=self.sharding, donate_argnums=(1,) if donate else ())

    def place(self, tree: Any) -> Any:
        return jax.device_put(tree, self.sharding)


_COLLECTIVES = re.compile(r"\b(all-gather|all-reduce|all-to-all|collective-permute|"
                          r"reduce-scatter|collective-broadcast)(-start)?\b")


def collectives(compiled_text: str) -> list[str]:
    """Cross-device communication ops in a compiled program's HLO text."""
    return sorted({m.group(1) for m in _COLLECTIVES.finditer(compiled_text)})
