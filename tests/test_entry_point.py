"""The one batched entry point (``train.batched.batched_program``) trains what ``hyperlax exec``
trains: for PPO, DQN and SAC, and with evaluations chunked several to a call (more than
``MAX_CALLS_PER_RUN`` evaluation points), its ``run`` on one sample's config and keys gives,
bit for bit, the curves exec writes for that sample's entry. Chunking changes no number: SAC
trained two evaluations a call equals SAC trained one a call, bit for bit."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import MAX_CALLS_PER_RUN, encode_plan
from hyperlax.train.batched import batched_program, replicate_keys, stack
from conftest import tiny_sweep
from test_algos_exec import DQN, SAC

# just more evaluation points than calls per run: exec runs them two to a call, 51 calls
CHUNKED = MAX_CALLS_PER_RUN + 2


def sequential(template: str, n: int = 2, **fields) -> str:
    return template.format(n=n, mode="sequential", batch=1, **fields)


def chunked_sac() -> str:
    """One SAC sample, one evaluation episode per point (the cheapest chunked run)."""
    text = sequential(SAC, n=1)
    old = "total_timesteps = 128\nnum_evaluations = 2\neval_episodes = 2\n"
    assert old in text
    return text.replace(old, f"total_timesteps = {8 * CHUNKED}\nnum_evaluations = {CHUNKED}\n"
                             "eval_episodes = 1\n")


CASES = {
    "ppo": lambda: tiny_sweep(n=2, mode="sequential", batch=1),
    "dqn": lambda: sequential(DQN, layers="[[16]]"),
    "sac": lambda: sequential(SAC),
    "sac-chunked": chunked_sac,
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_entry_point_gives_what_exec_writes_bit_for_bit(tmp_path, case):
    manifest = tmp_path / "sweep.toml"
    manifest.write_text(CASES[case]())
    plan, _ = compile_manifest(manifest)
    s = plan.settings
    program = batched_program(s.algorithm, s.env, s.budget)
    if case == "sac-chunked":
        assert program.group == 2 and program.calls == CHUNKED // 2
    plan_file = tmp_path / "plan.msgpack"
    plan_file.write_bytes(encode_plan(plan))
    result = CliRunner().invoke(main, ["exec", str(plan_file), "--output-root",
                                       str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    for entry in plan.entries:
        (sub_batch,) = entry.sub_batches
        (i,) = sub_batch.samples
        assert sub_batch.width == 1
        sample = plan.samples[i]
        ours = program.run(stack([plan.sample_config(i)]),
                           replicate_keys([sample.seed], s.seeds_per_sample))
        with np.load(tmp_path.joinpath("out", *entry.path.split("/"), "curves.npz")) as npz:
            assert npz["sample"].tolist() == [i]
            assert np.array_equal(npz["eval_steps"], ours.eval_steps[0, 0])
            assert np.array_equal(npz["returns"], ours.eval_returns)
            assert np.array_equal(npz["finite"], ours.finite)
            assert ours.losses and {f"loss_{k}" for k in ours.losses} <= set(npz.files)
            for name, values in ours.losses.items():
                assert np.array_equal(npz[f"loss_{name}"], values), name
        assert ours.eval_returns.shape == (1, s.seeds_per_sample, s.num_evaluations)
        if case == "sac-chunked":  # two evaluations a call train what one a call trains
            alone = batched_program(s.algorithm, s.env, s.budget, group=1).run(
                stack([plan.sample_config(i)]), replicate_keys([sample.seed],
                                                               s.seeds_per_sample))
            assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ours),
                                                            jax.tree.leaves(alone)))
