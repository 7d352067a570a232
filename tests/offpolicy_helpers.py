"""Helpers shared by the DQN and SAC tests: every call goes through ``train.batched``, the one
batched entry point the executor uses, with the plan's key rule."""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

import jax
import numpy as np

from hyperlax.train.batched import batched_program, lane, replicate_keys, stack

REPLICATES = 2


def exec_train(algorithm: str, env: str, budget) -> callable:
    """``run(configs, keys)``: exec's program, compiled once per input shape."""
    return batched_program(algorithm, env, budget).run


def keys_for(*seeds: int) -> jax.Array:
    """One row of replicate keys per sample, derived from the sample's own seed."""
    return replicate_keys(list(seeds), REPLICATES)


def configs(*samples) -> object:
    return stack(list(samples))


def to_numpy(metrics):
    return jax.tree.map(np.asarray, metrics)


def row(metrics, i):
    return lane(metrics, i)


class BatchRuns(NamedTuple):
    """A small program's metrics for sample A (seed 7) alone, A first beside B and C (seeds
    7, 8, 9), and A second between D and E (seeds 3, 7, 4): the batch-independence runs."""

    alone: Any
    beside_b_c: Any
    between_d_e: Any


def batch_runs(train: Callable, a, b, c, d, e) -> BatchRuns:
    return BatchRuns(alone=to_numpy(train(configs(a), keys_for(7))),
                     beside_b_c=to_numpy(train(configs(a, b, c), keys_for(7, 8, 9))),
                     between_d_e=to_numpy(train(configs(d, a, e), keys_for(3, 7, 4))))


def assert_batch_mates_do_not_change_a_sample(runs: BatchRuns, loss_names: Iterable[str]):
    """A's metrics beside any batch mates are its metrics alone (to float rounding), and
    bit-identical between two sets of batch mates of the same batch size."""
    a_alone, a_bc, a_de = row(runs.alone, 0), row(runs.beside_b_c, 0), row(runs.between_d_e, 1)
    for got in (a_bc, a_de):
        for name in loss_names:
            np.testing.assert_allclose(got.losses[name], a_alone.losses[name],
                                       rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.eval_returns, a_alone.eval_returns, rtol=1e-5)
        np.testing.assert_array_equal(got.finite, a_alone.finite)
    jax.tree.map(np.testing.assert_array_equal, a_bc, a_de)
