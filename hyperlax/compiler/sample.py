"""Unit-cube points and the values they map to.

Axes are the sampled hyperparameters sorted by name, so the order of keys in the TOML changes
nothing. ``qmc_sobol`` is scipy's scrambled Sobol sequence; ``random`` is numpy's PCG64
Generator; both are seeded from the manifest seed alone.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np

from hyperlax.manifest.distributions import Distribution, grid_points


def unit_points(method: str, num_samples: int, dims: int, seed: int | list[int]) -> np.ndarray:
    """An array [num_samples, dims] of points in [0, 1)."""
    if dims == 0:
        return np.zeros((num_samples, 0))
    if method == "qmc_sobol":
        from scipy.stats import qmc  # imported here: scipy.stats takes ~0.3 s to import

        sobol = qmc.Sobol(d=dims, scramble=True, rng=np.random.default_rng(seed))
        with warnings.catch_warnings():
            # scipy warns when n is not a power of two; the compiler reports that itself.
            warnings.simplefilter("ignore", UserWarning)
            return sobol.random(num_samples)
    return np.random.default_rng(seed).random((num_samples, dims))


def structured_points(method: str, num_samples: int, space: dict[str, Distribution],
                      structural: set[str], num_structures: int,
                      seed: int) -> tuple[np.ndarray, int]:
    """Two-level sampling: (points [num_samples, dims], number of distinct structures).

    ``num_structures`` points are drawn over the sampled structural axes only; points that map
    to the same structural values collapse into one. ``num_samples`` is split across the
    distinct structures as evenly as possible (earlier structures get the remainder), in
    contiguous blocks of one sequence over the scalar axes: the whole sweep's scalar points
    are exactly a plain ``num_samples``-point sequence, and each structure's block of a Sobol
    sequence is itself balanced when its size is a power of two. Samples are ordered by
    structure, so batched slices stay homogeneous too.
    """
    names = list(space)
    struct_axes = [j for j, n in enumerate(names) if n in structural]
    scalar_axes = [j for j, n in enumerate(names) if n not in structural]
    struct_space = {names[j]: space[names[j]] for j in struct_axes}
    drawn = unit_points(method, num_structures, len(struct_axes), [seed, 1])
    distinct: list[np.ndarray] = []
    seen: set[str] = set()
    for point in drawn:
        key = repr(list(values_at(point, struct_space).values()))
        if key not in seen:
            seen.add(key)
            distinct.append(point)
    scalar = unit_points(method, num_samples, len(scalar_axes), [seed, 2])
    points = np.empty((num_samples, len(names)))
    base, extra = divmod(num_samples, len(distinct))
    start = 0
    for j, struct_point in enumerate(distinct):
        size = base + (1 if j < extra else 0)
        points[start:start + size, struct_axes] = struct_point
        points[start:start + size, scalar_axes] = scalar[start:start + size]
        start += size
    return points, len(distinct)


def saltelli_points(base: int, dims: int, seed: int) -> np.ndarray:
    """Saltelli's design for Sobol sensitivity indices: matrices A and B of ``base`` points each
    (the two halves of one scrambled Sobol sequence in 2 x ``dims`` dimensions), then for each
    axis i the matrix AB_i, A with column i taken from B. Rows: A, B, AB_0, ..., AB_{d-1}:
    ``base * (dims + 2)`` points, the evaluations ``scipy.stats.sobol_indices`` takes."""
    both = unit_points("qmc_sobol", base, 2 * dims, [seed, 3])
    a, b = both[:, :dims], both[:, dims:]
    blocks = [a, b]
    for i in range(dims):
        ab = a.copy()
        ab[:, i] = b[:, i]
        blocks.append(ab)
    return np.concatenate(blocks)


def grid_unit_points(space: dict[str, Distribution]) -> np.ndarray:
    """Every point of the grid over ``space`` (axes in name order, the last varying fastest),
    each coordinate the middle of its value's share of [0, 1), so the inverse CDF maps it back
    to exactly that value."""
    counts = [grid_points(d) for d in space.values()]
    if not counts:
        return np.zeros((1, 0))
    mesh = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) / n for n in counts], indexing="ij"),
                    axis=-1)
    return mesh.reshape(-1, len(counts))


def sobol_balance_warning(method: str, num_samples: int) -> str | None:
    if method != "qmc_sobol" or num_samples & (num_samples - 1) == 0:
        return None
    lower, upper = 2 ** int(math.log2(num_samples)), 2 ** math.ceil(math.log2(num_samples))
    return (f"num_samples = {num_samples} is not a power of two: Sobol points are best balanced "
            f"at powers of two (e.g. {lower} or {upper})")


def values_at(point: np.ndarray, space: dict[str, Distribution]) -> dict[str, Any]:
    return {name: dist.ppf(float(u)) for (name, dist), u in zip(space.items(), point)}


def sample_seed(manifest_seed: int, index: int) -> int:
    """The training seed of sample ``index``: depends on the manifest seed and the index only,
    never on batching, so a sample trains the same in any batch and any mode. A sha256 of the
    pair, not a numpy generator, so the rule can never change under a library upgrade."""
    digest = hashlib.sha256(f"hyperlax-sample-seed:{manifest_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF
