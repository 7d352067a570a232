"""Population-based training's step between two intervals: exploit and explore, as a pure
function of the plan and the interval's results. JAX-free: exec decides with it, and a decision
read back is checked against it.

A member's values are those of every sampled scalar hyperparameter (``tracked``). In each
population (a structure's samples; ``compiler.pbt``), the members are ranked by the plan's
metric over the interval's evaluations (means over replicates; diverged members last, ties by
sample index: ``decide.ranking``). Each member of the bottom quantile (``Pbt.quantile``) takes
the training carry of a member of the top quantile, drawn uniformly (exploit), and that
member's values (its whole configuration, as Ray Tune's PBT clones a trial's config), each of
the ``explore`` names then either drawn anew from its distribution
(``resample_probability``) or multiplied by one of ``perturbation_factors`` and brought back
into the distribution: clipped to its bounds, rounded to its integers or grid points, and for a
categorical, moved to a neighbouring value instead (explore, as Ray Tune's PBT does). The other
members go on unchanged. A replay (``Pbt.schedule``) exploits and explores nothing: every
sample trains interval k with the schedule's row k.

Every random draw is a sha256 of the plan's seed, the interval, the member and what is drawn,
read as a number in [0, 1): the same on every machine and every version of every library, and
independent of the order members are visited in. Nothing here depends on what ran where.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from hyperlax.manifest.distributions import (Categorical, Distribution, IntLogUniform,
                                             IntUniform, Quantized)
from hyperlax.plan.format import Plan, populations


def draw(seed: int, interval: int, sample: int, what: str) -> float:
    """A number in [0, 1), determined by its arguments alone."""
    digest = hashlib.sha256(f"hyperlax-pbt/{seed}/{interval}/{sample}/{what}"
                            .encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def tracked(plan: Plan) -> list[str]:
    """The names whose values a member carries from interval to interval: every sampled scalar
    hyperparameter (an exploiting member takes them all from the member it copies), and the
    explore names (scheduled in a replay)."""
    assert plan.pbt is not None
    scalar = {row.name for row in plan.hyperparams if row.role == "scalar"}
    return sorted({n for n in plan.sampled if n in scalar} | set(plan.pbt.explore))


def initial_values(plan: Plan) -> dict[int, dict[str, Any]]:
    """Each sample's values during the first interval: the plan's (a replay's first row)."""
    pbt = plan.pbt
    assert pbt is not None
    names = tracked(plan)
    first = pbt.schedule[0] if pbt.schedule is not None else {}
    out = {}
    for sample in plan.samples:
        values = {**plan.sample_values(sample.index), **first}
        out[sample.index] = {n: values[n] for n in names}
    return out


def step(plan: Plan, interval: int, order: list[int], current: dict[int, dict[str, Any]]
         ) -> tuple[dict[int, int], dict[int, dict[str, Any]]]:
    """(exploit: loser -> the member whose carry it takes, every member's explored values for
    the next interval) after ``interval``, from ``order`` (every sample, best first) and
    ``current`` (each sample's explored values during the interval)."""
    pbt = plan.pbt
    assert pbt is not None
    if pbt.schedule is not None:  # a replay: the schedule's next row, for everyone
        row = pbt.schedule[interval + 1]
        return {}, {i: {**current[i], **row} for i in sorted(current)}
    seed = plan.settings.seed
    rank = {sample: k for k, sample in enumerate(order)}
    exploit: dict[int, int] = {}
    following = {i: dict(v) for i, v in current.items()}
    for members in populations(plan.samples).values():
        ranked = sorted(members, key=rank.__getitem__)
        count = pbt.quantile(len(ranked))
        top, bottom = ranked[:count], ranked[len(ranked) - count:]
        for loser in sorted(bottom):
            winner = top[min(int(draw(seed, interval, loser, "exploit") * count), count - 1)]
            exploit[loser] = winner
            following[loser] = {**current[winner], **{
                name: explore(plan, name, current[winner][name],
                              lambda what: draw(seed, interval, loser, f"{name}/{what}"))
                for name in pbt.explore}}
    return dict(sorted(exploit.items())), dict(sorted(following.items()))


def _distribution(plan: Plan, name: str) -> tuple[Distribution, str]:
    row = next(r for r in plan.hyperparams if r.name == name)
    return msgspec.convert(row.distribution, Distribution), row.type


def explore(plan: Plan, name: str, value: Any, draw_of: Any) -> Any:
    """``value`` of hyperparameter ``name`` explored: resampled, or perturbed and brought back
    into its distribution. ``draw_of(what)``: this member's draws."""
    pbt = plan.pbt
    assert pbt is not None
    dist, kind = _distribution(plan, name)
    if draw_of("resample") < pbt.resample_probability:
        return _typed(dist.ppf(draw_of("value")), kind)
    if isinstance(dist, Categorical):
        # a categorical has no scale to multiply: move to a neighbouring value (Ray's rule)
        values = dist.values
        k = values.index(value) if value in values else 0
        k += -1 if draw_of("shift") < 0.5 else 1
        return values[min(max(k, 0), len(values) - 1)]
    factors = pbt.perturbation_factors
    factor = factors[min(int(draw_of("factor") * len(factors)), len(factors) - 1)]
    return _typed(_into(dist, value * factor), kind)


def _into(dist: Distribution, value: float) -> Any:
    """``value`` brought into ``dist``'s support: clipped to its bounds and, for integer and
    grid distributions, moved to the nearest point (through ``ppf``, so that the value is
    exactly one that sampling could give)."""
    low, high = dist.low, dist.high
    value = min(max(value, low), high)
    if isinstance(dist, (IntUniform, Quantized)):
        step = 1 if isinstance(dist, IntUniform) else dist.step
        n = (high - low + 1) if isinstance(dist, IntUniform) else dist.points()
        k = min(max(round((value - low) / step), 0), n - 1)
        return dist.ppf((k + 0.5) / n)
    if isinstance(dist, IntLogUniform):
        return int(min(max(round(value), low), high))
    return value


def _typed(value: Any, kind: str) -> Any:
    if kind == "float":
        return float(value)
    if kind == "int" and not isinstance(value, bool):
        return int(value)
    return value

