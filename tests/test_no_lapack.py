"""Regression guard: no training program may contain a LAPACK decomposition.

A batched QR (orthogonal initialization) inside the vmapped program deadlocked XLA:CPU: a
16-sample PPO sweep hung in block_until_ready in 8 of 9 runs. Lowering is cheap, so check the
program text of every algorithm instead of hoping a run happens to hang."""

from __future__ import annotations

import pytest

from hyperlax.hyperparams import CONFIGS
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.batched import batched_program, replicate_keys, stack

# a continuous env where the algorithm acts in one (PPO's Gaussian head is the larger program)
ENVS = {"continuous": "gymnax.pendulum", "discrete": "gymnax.cartpole"}
SMALL = {"ppo": dict(num_minibatches=2), "pqn": dict(num_minibatches=2),
         "dqn": dict(buffer_size=64, replay_batch_size=8, warmup_steps=8),
         "sac": dict(buffer_size=64, replay_batch_size=8, warmup_steps=8)}
DECOMPOSITIONS = ("geqrf", "orgqr", "householder", "lapack", "gesdd", "syevd", "potrf")


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_training_program_has_no_lapack_custom_call(algorithm):
    config = CONFIGS[algorithm](num_envs=2, rollout_length=4, **SMALL.get(algorithm, {}))
    space = "continuous" if "continuous" in CONFIGS[algorithm].action_spaces else "discrete"
    program = batched_program(algorithm, ENVS[space],
                              Budget(total_timesteps=16, num_evaluations=1, eval_episodes=1))
    lowered = program.lower(stack([config, config]), replicate_keys([0, 1], 1))
    text = "\n".join(part.as_text() for part in lowered.values())
    found = [name for name in DECOMPOSITIONS if name in text.lower()]
    assert not found, f"{algorithm}'s program contains {found}"
