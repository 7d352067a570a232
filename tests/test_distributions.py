"""Inverse-CDF rules of the search-space distributions (property tests)."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import assume, given
from hypothesis import strategies as st

from hyperlax.manifest.distributions import (Categorical, IntLogUniform, IntUniform, LogUniform,
                                         Uniform)

unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-8, max_value=1e6)


@given(finite, finite, unit, unit)
def test_uniform_in_bounds_and_monotone(a, b, u, v):
    assume(a < b)
    d = Uniform(low=a, high=b)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert a <= x <= b and a <= y <= b and x <= y


@given(positive, positive, unit, unit)
def test_log_uniform_in_bounds_and_monotone(a, b, u, v):
    assume(a < b)
    d = LogUniform(low=a, high=b)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert a * (1 - 1e-12) <= x <= b * (1 + 1e-12) and x <= y


@given(st.integers(-1000, 1000), st.integers(0, 1000), unit, unit)
def test_int_uniform_integral_in_bounds_monotone(low, span, u, v):
    d = IntUniform(low=low, high=low + span)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert type(x) is int and low <= x <= low + span and x <= y


@given(st.integers(1, 10_000), st.integers(0, 10_000), unit, unit)
def test_int_log_uniform_integral_in_bounds_monotone(low, span, u, v):
    d = IntLogUniform(low=low, high=low + span)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert type(x) is int and low <= x <= low + span and x <= y


@given(st.integers(1, 50))
def test_int_uniform_gives_each_integer_an_equal_share(n):
    d = IntUniform(low=0, high=n - 1)
    # the midpoint of each of n equal cells maps to that cell's integer
    assert [d.ppf((k + 0.5) / n) for k in range(n)] == list(range(n))


def test_int_uniform_is_exact_at_cell_edges():
    d = IntUniform(low=2, high=8)  # 7 values, cells of width 1/7
    assert d.ppf(0.0) == 2 and d.ppf(math.nextafter(1.0, 0.0)) == 8
    assert d.ppf(3 / 7) == 5


@given(st.lists(st.integers(), min_size=1, max_size=20, unique=True))
def test_every_categorical_value_is_reachable(values):
    d = Categorical(values=values)
    n = len(values)
    assert [d.ppf((k + 0.5) / n) for k in range(n)] == values


@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=10), unit, unit)
def test_weighted_categorical_monotone_and_reachable(weights, u, v):
    values = list(range(len(weights)))
    d = Categorical(values=values, weights=weights)
    assert d.ppf(min(u, v)) <= d.ppf(max(u, v))
    total, running = sum(weights), 0.0
    for k, w in enumerate(weights):
        mid = (running + w / 2) / total
        running += w
        assert d.ppf(mid) == k


def test_weighted_categorical_frequencies_follow_weights():
    d = Categorical(values=["a", "b"], weights=[1.0, 3.0])
    counts = Counter(d.ppf((k + 0.5) / 1000) for k in range(1000))
    assert counts == {"a": 250, "b": 750}


def test_int_log_uniform_favours_small_values():
    d = IntLogUniform(low=1, high=1000)
    draws = [d.ppf((k + 0.5) / 1000) for k in range(1000)]
    assert sum(x < 32 for x in draws) > 450  # log-uniform: half the mass below sqrt(1001)


# --- normal, log_normal, quantized (the original system's distributions) ---------------------

from hyperlax.manifest.distributions import LogNormal, Normal, Quantized  # noqa: E402


@given(unit, unit)
def test_truncated_normal_in_bounds_and_monotone(u, v):
    d = Normal(mean=0.5, std=0.2, low=0.1, high=0.99)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert 0.1 <= x <= y <= 0.99


def test_normal_quantiles_are_exact():
    d = Normal(mean=0.0, std=1.0, low=-50.0, high=50.0)  # truncation far out: plain normal
    assert d.ppf(0.5) == 0.0
    assert abs(d.ppf(0.975) - 1.959963984540054) < 1e-9
    # truncated to [0, inf): the median of the half-normal is Phi^-1(0.75)
    half = Normal(mean=0.0, std=1.0, low=0.0, high=50.0)
    assert abs(half.ppf(0.5) - 0.6744897501960817) < 1e-9


@given(unit, unit)
def test_log_normal_in_bounds_and_monotone(u, v):
    d = LogNormal(mean=math.log(3e-4), std=1.0, low=1e-5, high=1e-2)
    x, y = d.ppf(min(u, v)), d.ppf(max(u, v))
    assert 1e-5 <= x <= y <= 1e-2
    assert abs(LogNormal(mean=0.0, std=1.0, low=1e-9, high=1e9).ppf(0.5) - 1.0) < 1e-12


def test_quantized_grid_points_get_equal_shares():
    d = Quantized(low=0.1, high=0.5, step=0.1)
    assert d.points() == 5
    counts = Counter(d.ppf((i + 0.5) / 1000) for i in range(1000))
    assert counts == {0.1: 200, 0.2: 200, 0.3: 200, 0.4: 200, 0.5: 200}
    ints = Quantized(low=16, high=256, step=16)
    assert [ints.ppf(u) for u in (0.0, 0.999999)] == [16, 256]
    assert all(type(ints.ppf(u / 7)) is int for u in range(7))


@given(st.integers(-100, 100), st.integers(0, 100), st.integers(1, 7), unit)
def test_quantized_integers_on_the_grid(low, span, step, u):
    d = Quantized(low=low, high=low + span, step=step)
    x = d.ppf(u)
    assert low <= x <= low + span and (x - low) % step == 0
