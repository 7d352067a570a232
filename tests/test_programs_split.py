"""Exec's training as three compiled parts (``runtime.runner``: init, train, evaluate):

- a sub-batch's parts, run by exec's runner, give bit for bit what the entry point's
  ``BatchedProgram.run`` gives (PPO, DQN);
- ``init`` gives the same carry, bit for bit, for every structure with its spec (what lets
  exec share it), for each algorithm;
- a sweep whose structures differ only in num_envs x rollout_length compiles the evaluation
  once and ``init`` once per num_envs; the cache holds a shared part while a program that runs
  next needs it and drops it after its last use (with a fake compiler).
"""

from __future__ import annotations

import jax
import msgspec
import numpy as np
import pytest

from hyperlax.compiler import compile_manifest
from hyperlax.hyperparams import DQNConfig, PPOConfig, PQNConfig, SACConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.algos.registry import get_make_program
from hyperlax.train.configs import as_data
from hyperlax.exec.executor import run_entry
from hyperlax.exec.programs import ProgramCache
from hyperlax.exec.runner import PARTS, CompiledRunner
from hyperlax.exec.schedule import Use
from test_algos_exec import DQN
from test_compile_ahead import FakeCompiler, K
from conftest import tiny_sweep
from test_exec import tiny_plan


def assert_bitwise(result, returns, losses, finite, eval_steps, keep):
    assert np.array_equal(result.eval_steps, np.asarray(eval_steps)[0, 0])
    assert np.array_equal(result.returns, np.asarray(returns)[:keep])
    assert np.array_equal(result.finite, np.asarray(finite)[:keep])
    assert result.losses.keys() == losses.keys()
    for name, values in losses.items():
        assert np.array_equal(result.losses[name], np.asarray(values)[:keep]), name


# --- bit for bit -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_a_sub_batch_equals_the_entry_points_run(tmp_path, algorithm):
    """Exec's runner, two samples in one sub-batch, gives what ``BatchedProgram.run`` (what the
    tests and benchmarks train) gives for them (``test_entry_point``: one sample, from the files
    exec writes)."""
    if algorithm == "ppo":
        plan, _, _ = tiny_plan(tmp_path, n=2, batch=2)
    else:
        manifest = tmp_path / "dqn.toml"
        manifest.write_text(DQN.format(n=2, mode="batched", batch=2, layers="[[16]]"))
        plan, _ = compile_manifest(manifest)
    runner = CompiledRunner(plan)
    result = runner.run(0, [0, 1], 2)
    configs, keys = runner.inputs([0, 1], 2)
    assert runner.calls == 2
    ours = runner.program.run(configs, keys)
    assert_bitwise(result, ours.eval_returns, ours.losses, ours.finite, ours.eval_steps, 2)


# --- init depends on its spec only ------------------------------------------------------------

BUDGET = Budget(total_timesteps=4096, num_evaluations=2, eval_episodes=2)
# (algorithm, env, a config, what differs in a structure with the same init spec)
INIT_CASES = [
    ("ppo", "gymnax.pendulum",
     PPOConfig(num_envs=4, rollout_length=16, update_epochs=2, num_minibatches=2,
               actor_layer_sizes=[8], critic_layer_sizes=[8], activation="tanh",
               decay_learning_rates=True),
     dict(rollout_length=64, update_epochs=3, num_minibatches=8)),
    ("dqn", "gymnax.cartpole",
     DQNConfig(num_envs=4, rollout_length=4, train_epochs=1, buffer_size=128,
               replay_batch_size=16, double_q=True, q_layer_sizes=[8], activation="relu"),
     dict(rollout_length=8, train_epochs=3, replay_batch_size=32, double_q=False)),
    ("sac", "gymnax.pendulum",
     SACConfig(num_envs=2, rollout_length=4, train_epochs=1, buffer_size=128,
               replay_batch_size=16, actor_layer_sizes=[8], critic_layer_sizes=[8],
               activation="relu"),
     dict(rollout_length=8, train_epochs=2, replay_batch_size=32)),
    ("pqn", "gymnax.cartpole",
     PQNConfig(num_envs=4, rollout_length=4, update_epochs=1, num_minibatches=2,
               q_layer_sizes=[8], decay_learning_rate=True),
     dict(rollout_length=8, update_epochs=3, num_minibatches=4)),
    ("ppo", "gymnax.memory_chain",  # the GRU torso: its memory is in the carry
     PPOConfig(num_envs=4, rollout_length=16, update_epochs=2, num_minibatches=2,
               sequence_length=4, torso="gru", gru_hidden_size=8, actor_layer_sizes=[8],
               critic_layer_sizes=[8]),
     dict(rollout_length=32, sequence_length=8, update_epochs=3, num_minibatches=8)),
]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, env, config, other", INIT_CASES,
                         ids=[c[0] + ("-gru" if c[2].torso == "gru" else "")
                              if c[0] == "ppo" else c[0] for c in INIT_CASES])
def test_init_gives_the_same_carry_for_every_structure_with_its_spec(algorithm, env, config,
                                                                     other):
    program = get_make_program(algorithm)(env, BUDGET)
    same = msgspec.structs.replace(config, **other)
    assert program.init_spec(same) == program.init_spec(config)
    assert program.eval_spec(same) == program.eval_spec(config)
    assert program.init_spec(msgspec.structs.replace(config, num_envs=1)) != \
        program.init_spec(config)
    key = jax.random.PRNGKey(3)
    a = jax.jit(program.init)(as_data(config), key)
    b = jax.jit(program.init)(as_data(same), key)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))


# --- one evaluation for a sweep over rollout shapes -------------------------------------------

def rollout_sweep(tmp_path):
    """A PPO plan of 4 structures that differ only in num_envs x rollout_length."""
    text = tiny_sweep(n=8, mode="grouped", batch=2, space_extra=(
        'num_envs = { dist = "categorical", values = [2, 4] }\n'
        'rollout_length = { dist = "categorical", values = [8, 16] }\n'))
    assert "num_envs = 4\nrollout_length = 16\n" in text
    manifest = tmp_path / "shapes.toml"
    manifest.write_text(text.replace("num_envs = 4\nrollout_length = 16\n", "")
                        .replace('name = "tiny"', 'name = "shapes"\nstructures = 4'))
    plan, _ = compile_manifest(manifest)
    shapes = {(s.values["num_envs"], s.values["rollout_length"]) for s in plan.structures}
    assert len(plan.structures) == 4 and len(shapes) == 4
    return plan


@pytest.mark.slow
def test_a_sweep_over_rollout_shapes_compiles_evaluation_once_and_init_per_env_count(tmp_path):
    plan = rollout_sweep(tmp_path)
    # without compile workers every part is kept until its last use; with them, a part whose
    # next use is beyond the window is dropped like a program (see the fake compiler's test)
    runner = CompiledRunner(plan, compile_workers=0)
    try:
        for i, entry in enumerate(plan.entries):
            run_entry(runner, entry, lambda i=i: plan.entries[i + 1:])
        assert runner.programs.part_compiles == {"init": 2, "train": 4, "evaluate": 1}
        assert runner.compiles == 4
        runner.want([])
        assert runner.programs.part_keys() == []  # every part dropped after its last use
        # a structure that runs another structure's init (as the shared executable does: the
        # same function, the other structure's static values) gets its own init's carry
        sharing = [s.index for s in plan.structures if runner.init_owner(s.index) != s.index]
        assert len(sharing) == 2
        sb = next(sb for e in plan.entries for sb in e.sub_batches
                  if sb.structure == sharing[0])
        configs, keys = runner.inputs(sb.samples, sb.width)
        shared = jax.jit(runner.program.init)(runner.init_configs(configs, sb.structure), keys)
        own = jax.jit(runner.program.init)(configs, keys)
        assert all(np.array_equal(x, y)
                   for x, y in zip(jax.tree.leaves(shared), jax.tree.leaves(own)))
    finally:
        runner.close()


# --- the cache, with a fake compiler ---------------------------------------------------------

def eval_shared_by_parity(key, part):
    """Programs of even structures share one evaluation, odd ones another."""
    return (part, key.structure % 2) if part == "evaluate" else (part, key)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_shared_part_compiles_once_kept_while_needed_dropped_after_last_use(workers):
    fake = FakeCompiler(0.0)
    cache = ProgramCache(fake, PARTS, workers=workers, window=2,
                         part_key=eval_shared_by_parity)
    order = [0, 1, 2, 3, 4]
    try:
        for i, s in enumerate(order):
            cache.want(Use(K(t), [t]) for t in order[i:])
            parts, _ = cache.get(K(s), [s])
            assert parts["evaluate"] == (K(s % 2), "evaluate")  # the first user compiled it
            assert parts["train"] == (K(s), "train")
            if i == 3:  # odd structures are done: their evaluation goes at the next want
                cache.want(Use(K(t), [t]) for t in order[4:])
                assert ("evaluate", 1) not in cache.part_keys()
                assert ("evaluate", 0) in cache.part_keys()
        cache.want([])
        assert cache.part_keys() == [] and cache.keys() == []
    finally:
        cache.close()
    assert cache.part_compiles == {"init": 5, "train": 5, "evaluate": 2}
    assert sorted(k.structure for k, p in fake.calls if p == "evaluate") == [0, 1]
    assert cache.compiles == 5


@pytest.mark.parametrize("workers, evaluates", [(0, 2), (1, 3)])
def test_a_shared_part_needed_beyond_the_window_is_dropped_and_compiled_again(workers,
                                                                              evaluates):
    fake = FakeCompiler(0.0)
    cache = ProgramCache(fake, PARTS, workers=workers, window=2,
                         part_key=eval_shared_by_parity)
    order = [0, 1, 3, 2]  # at 1, the window is {1, 3}: nothing in it needs the even evaluation
    try:
        for i, s in enumerate(order):
            cache.want(Use(K(t), [t]) for t in order[i:])
            cache.get(K(s), [s])
    finally:
        cache.close()
    assert cache.part_compiles["evaluate"] == evaluates
