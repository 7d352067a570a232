"""Regression guard: no training program may contain a LAPACK decomposition.

A batched QR (orthogonal initialization) inside the vmapped program deadlocked XLA:CPU: a
16-sample PPO sweep hung in block_until_ready in 8 of 9 runs. Lowering is cheap, so check the
program text of every algorithm instead of hoping a run happens to hang."""

from __future__ import annotations

import jax
import pytest

from hyperlax.runtime.algos import TrainSettings, get_make_train
from hyperlax.spec.params import ALGORITHMS

ENVS = {"ppo": "gymnax.pendulum", "dqn": "gymnax.cartpole", "sac": "gymnax.pendulum"}
DECOMPOSITIONS = ("geqrf", "orgqr", "householder", "lapack", "gesdd", "syevd", "potrf")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_training_program_has_no_lapack_custom_call(algorithm):
    table = ALGORITHMS[algorithm]
    structure = {n: p.default for n, p in table.items() if p.role == "structural"}
    structure.update({"num_envs": 2, "rollout_length": 4})
    if algorithm == "ppo":
        structure["num_minibatches"] = 2
    else:
        structure.update({"buffer_size": 64, "replay_batch_size": 8, "warmup_steps": 8})
    train = get_make_train(algorithm)(ENVS[algorithm], structure, TrainSettings(16, 1, 1))
    hp = {n: jax.numpy.full((2,), p.default, jax.numpy.float32)
          for n, p in table.items() if p.role == "scalar"}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)[:, None]
    batched = jax.jit(jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, 0)))
    text = batched.lower(hp, keys).as_text().lower()
    found = [name for name in DECOMPOSITIONS if name in text]
    assert not found, f"{algorithm}'s program contains {found}"
