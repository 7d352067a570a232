"""Search-space distributions. Each maps a unit-cube coordinate u in [0, 1) to a value by its
inverse CDF, so Sobol points and random points go through the same code.

Exact rules (documented in docs/manifests.md, pinned by tests):
- uniform(low, high):         low + u * (high - low)
- log_uniform(low, high):     exp(log(low) + u * (log(high) - log(low)))
- int_uniform(low, high):     low + min(floor(u * n), n - 1) with n = high - low + 1, in integer
                              arithmetic: each of the n integers gets an equal share of [0, 1)
- int_log_uniform(low, high): floor(exp(log(low) + u * (log(high + 1) - log(low)))), clamped to
                              [low, high]: integer k gets the share log((k+1)/k) / log((high+1)/low)
- categorical(values, weights): the first i with u < (w_0 + ... + w_i) / sum(w); equal weights
                              when omitted
- normal(mean, std, low, high): the normal distribution truncated to [low, high]:
                              mean + std * Phi^-1(Phi(a) + u * (Phi(b) - Phi(a))) with
                              a = (low - mean) / std, b = (high - mean) / std, Phi the standard
                              normal CDF (Python's statistics.NormalDist), clamped to [low, high]
- log_normal(mean, std, low, high): exp of normal(mean, std, log(low), log(high)): a log-normal
                              whose logarithm has that mean and std, truncated to [low, high]
- quantized(low, high, step): the grid low, low + step, ..., low + (n - 1) * step with
                              n = floor((high - low) / step) + 1, each point an equal share:
                              low + min(floor(u * n), n - 1) * step (integer arithmetic when
                              low, high and step are integers; floats are rounded to 12
                              significant digits so 0.1-steps give 0.3, not 0.30000000000000004)
"""

from __future__ import annotations

import bisect
import math
import statistics
from typing import Any, Union

import msgspec


class _Dist(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="dist"):
    pass


class Uniform(_Dist, tag="uniform"):
    low: float
    high: float

    def problems(self) -> list[tuple[str, str]]:
        return _range_problems(self.low, self.high, allow_equal=False)

    def ppf(self, u: float) -> float:
        return self.low + u * (self.high - self.low)


class LogUniform(_Dist, tag="log_uniform"):
    low: float
    high: float

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not self.low > 0:
            found.append(("low", "must be > 0 for log_uniform"))
        if not self.high > 0:
            found.append(("high", "must be > 0 for log_uniform"))
        return found or _range_problems(self.low, self.high, allow_equal=False)

    def ppf(self, u: float) -> float:
        log_low = math.log(self.low)
        return math.exp(log_low + u * (math.log(self.high) - log_low))


class IntUniform(_Dist, tag="int_uniform"):
    low: int
    high: int

    def problems(self) -> list[tuple[str, str]]:
        return _range_problems(self.low, self.high, allow_equal=True)

    def ppf(self, u: float) -> int:
        n = self.high - self.low + 1
        return self.low + min(int(math.floor(u * n)), n - 1)


class IntLogUniform(_Dist, tag="int_log_uniform"):
    low: int
    high: int

    def problems(self) -> list[tuple[str, str]]:
        if not self.low > 0:
            return [("low", "must be > 0 for int_log_uniform")]
        return _range_problems(self.low, self.high, allow_equal=True)

    def ppf(self, u: float) -> int:
        log_low = math.log(self.low)
        x = math.exp(log_low + u * (math.log(self.high + 1) - log_low))
        return max(self.low, min(int(math.floor(x)), self.high))


Value = Union[float, int, bool, str, list[int]]


class Categorical(_Dist, tag="categorical"):
    values: list[Any]
    weights: list[float] | None = None

    def problems(self) -> list[tuple[str, str]]:
        if not self.values:
            return [("values", "must list at least one value")]
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                return [("weights", f"has {len(self.weights)} entries but values has "
                                    f"{len(self.values)}; give one weight per value")]
            for i, w in enumerate(self.weights):
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not (
                        math.isfinite(w) and w > 0):
                    return [(f"weights[{i}]", f"must be a positive number, got {w!r}")]
            try:
                total = math.fsum(self.weights)
            except OverflowError:
                total = math.inf
            if not math.isfinite(total):
                return [("weights", "sum to more than the largest float; only their ratios "
                                    "matter, so scale them down (e.g. [1, 2, 3])")]
        for i, v in enumerate(self.values):
            if v in self.values[:i]:
                return [(f"values[{i}]", f"repeats {v!r}; use weights to make a value likelier")]
        return []

    def ppf(self, u: float) -> Any:
        n = len(self.values)
        if self.weights is None:
            return self.values[min(int(math.floor(u * n)), n - 1)]
        total = math.fsum(self.weights)
        cumulative, running = [], 0.0
        for w in self.weights:
            running += w
            cumulative.append(running / total)
        return self.values[min(bisect.bisect_right(cumulative, u), n - 1)]


_STANDARD = statistics.NormalDist()
_EDGE = 1e-12  # u is kept in [_EDGE, 1 - _EDGE]: Phi^-1 of 0 or 1 is infinite


def _truncated_normal(mean: float, std: float, low: float, high: float, u: float) -> float:
    lo = _STANDARD.cdf((low - mean) / std)
    hi = _STANDARD.cdf((high - mean) / std)
    p = min(max(lo + u * (hi - lo), _EDGE), 1.0 - _EDGE)
    return min(max(mean + std * _STANDARD.inv_cdf(p), low), high)


def _normal_problems(d: Any, positive: bool) -> list[tuple[str, str]]:
    for name in ("mean", "std", "low", "high"):
        v = getattr(d, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return [(name, f"must be a finite number, got {v!r}")]
    if not d.std > 0:
        return [("std", f"must be > 0, got {d.std}")]
    if positive and not d.low > 0:
        return [("low", "must be > 0 for log_normal")]
    return _range_problems(d.low, d.high, allow_equal=False)


class Normal(_Dist, tag="normal"):
    mean: float
    std: float
    low: float
    high: float

    def problems(self) -> list[tuple[str, str]]:
        return _normal_problems(self, positive=False)

    def ppf(self, u: float) -> float:
        return _truncated_normal(self.mean, self.std, self.low, self.high, u)


class LogNormal(_Dist, tag="log_normal"):
    mean: float   # of log(x)
    std: float    # of log(x)
    low: float
    high: float

    def problems(self) -> list[tuple[str, str]]:
        return _normal_problems(self, positive=True)

    def ppf(self, u: float) -> float:
        x = math.exp(_truncated_normal(self.mean, self.std, math.log(self.low),
                                       math.log(self.high), u))
        return min(max(x, self.low), self.high)


class Quantized(_Dist, tag="quantized"):
    low: float | int
    high: float | int
    step: float | int

    def problems(self) -> list[tuple[str, str]]:
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            if isinstance(v, float) and not math.isfinite(v):
                return [(name, f"must be finite, got {v}")]
        if not self.step > 0:
            return [("step", f"must be > 0, got {self.step}")]
        if self.points() > 1_000_000:
            return [("step", f"makes {self.points():,} grid points; at most 1,000,000")]
        return _range_problems(self.low, self.high, allow_equal=True)

    def integral(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step))

    def points(self) -> int:
        if self.integral():
            return (self.high - self.low) // self.step + 1
        return int(math.floor((self.high - self.low) / self.step * (1 + 1e-12))) + 1

    def ppf(self, u: float) -> float | int:
        n = self.points()
        k = min(int(math.floor(u * n)), n - 1)
        if self.integral():
            return self.low + k * self.step
        return float(f"{self.low + k * self.step:.12g}")


Distribution = Union[Uniform, LogUniform, IntUniform, IntLogUniform, Categorical, Normal,
                     LogNormal, Quantized]
DIST_NAMES = ("uniform", "log_uniform", "int_uniform", "int_log_uniform", "categorical",
              "normal", "log_normal", "quantized")


def is_log_scale(dist: Distribution) -> bool:
    return isinstance(dist, (LogUniform, IntLogUniform, LogNormal))


def _range_problems(low: float, high: float, *, allow_equal: bool) -> list[tuple[str, str]]:
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, float) and not math.isfinite(v):
            return [(name, f"must be finite, got {v}")]
    if high < low or (high == low and not allow_equal):
        relation = "<=" if allow_equal else "<"
        return [("", f"empty range: needs low {relation} high, got low = {low}, high = {high}")]
    return []


def to_builtins(dist: Distribution) -> dict[str, Any]:
    return msgspec.to_builtins(dist)


def grid_points(dist: Distribution) -> int | None:
    """How many values ``sampling = "grid"`` enumerates for ``dist``: every value of a
    categorical, a quantized grid or an int_uniform range; None for a continuous one."""
    if isinstance(dist, Categorical):
        return len(dist.values)
    if isinstance(dist, Quantized):
        return dist.points()
    if isinstance(dist, IntUniform):
        return dist.high - dist.low + 1
    return None


def grid_size(space: dict[str, Distribution]) -> int:
    """Points of the grid over ``space``: the product of each axis's count."""
    return math.prod(grid_points(d) or 0 for d in space.values())
