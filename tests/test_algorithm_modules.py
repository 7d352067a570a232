"""An algorithm's knowledge lives with the algorithm: its config Struct (hyperparameters, cost
model, quick pins) and its training module, one registry line on each side, and no other module
naming it. And the metrics of a learning curve, defined once (``plan.metrics``)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from hyperlax.environments import ENVS
from hyperlax.hyperparams import CONFIGS, declarations
from hyperlax.hyperparams.footprint import Footprint
from hyperlax.plan.format import RungMetric
from hyperlax.plan.metrics import CURVE_METRICS, curve_metric, sample_metric

PACKAGE = Path(__file__).resolve().parent.parent / "hyperlax"


def test_both_registries_list_the_same_algorithms_and_each_module_trains_its_config():
    from hyperlax.train.algos.registry import MODULES

    assert set(MODULES) == set(CONFIGS)
    for algorithm, module in MODULES.items():
        assert module.CONFIG is CONFIGS[algorithm]
        assert callable(module.make_program)


def own_modules(algorithm: str) -> set[Path]:
    return {PACKAGE / "hyperparams" / f"{algorithm}.py",
            PACKAGE / "train" / "algos" / f"{algorithm}.py"}


def test_no_module_outside_an_algorithms_own_names_it():
    """A string equal to an algorithm's name (a comparison, a table key) anywhere else in the
    package means knowledge of that algorithm lives outside its modules."""
    allowed = set().union(*(own_modules(a) for a in CONFIGS))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and node.value in CONFIGS:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert not found


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_quick_pins_are_legal_and_make_whole_updates_in_the_quick_budget(algorithm):
    config_type = CONFIGS[algorithm]
    table = declarations(config_type)
    pins = config_type.quick_pins
    assert pins and all(name in table and table[name].check_value(value) is None
                        for name, value in pins.items())
    config = config_type.from_values(pins)
    assert config.cross_field_problems() == []
    # the seed front end's quick run: 40 env steps, 4 evaluations, so 10 steps per evaluation
    assert config.steps_per_update() <= 40 // 4


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_every_algorithm_counts_its_own_footprint(algorithm):
    config_type = CONFIGS[algorithm]
    env = next(e for e in ENVS.values() if e.action_space in config_type.action_spaces
               and len(e.obs_shape) == 1)
    small = config_type.from_values({})
    footprint = small.footprint(env)
    assert isinstance(footprint, Footprint) and footprint.params > 0
    # more envs per update: more env steps per gradient step, never less data
    bigger = config_type.from_values({"num_envs": small.num_envs * 4})
    assert bigger.footprint(env).data_bytes >= footprint.data_bytes


def test_the_curve_metrics_are_the_plans_metric_names():
    assert set(CURVE_METRICS) == set(get_args(RungMetric))


def test_curve_metrics_of_known_curves():
    curves = np.array([[1.0, 5.0, 3.0], [2.0, 2.0, 8.0]], dtype=np.float32)
    assert curve_metric(curves[0], "final_return") == 3.0
    assert list(curve_metric(curves, "best_return")) == [5.0, 8.0]
    assert list(curve_metric(curves, "auc")) == [3.0, 4.0]
    assert sample_metric(curves, "final_return") == 5.5     # (3 + 8) / 2
    assert sample_metric(curves, "best_return") == 6.5      # (5 + 8) / 2
    assert sample_metric(curves, "auc") == 3.5              # (3 + 4) / 2


@pytest.mark.parametrize("curves", [np.array([[1.0, np.nan]]), np.array([[1.0, np.inf]]),
                                    np.zeros((2, 0))])
def test_a_diverged_or_empty_sample_has_no_metric(curves):
    assert all(sample_metric(curves, m) is None for m in CURVE_METRICS)
