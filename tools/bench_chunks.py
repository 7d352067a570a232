"""What running training as evaluation chunks from the host costs: exec's chunked run of one
sub-batch (``CompiledRunner.run``: init, then per evaluation chunk a train call and an evaluate
call, with progress read between chunks) against the same training as one monolithic call
(``jit(batched_train)``), and against chunks that train and evaluate in one call (exec before
the evaluation was its own compiled part: what splitting it costs), on the same inputs,
compiled once each, timed alternately; medians.

    python tools/bench_chunks.py [--evals 10 100] [--width 1] [--replicates 8] [--repeats 7]

The default workload is one structure of the original system's PPO sweep (pendulum, 8 envs x 64
steps, 4 epochs x 4 minibatches, 64x64 networks), 16,384 env steps per run (at least one update
per chunk: 100 evaluations train 51,200), 8 replicates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = """\
[sweep]
name = "chunks"
recipe = "ppo_mlp_fixed_net"
env = "gymnax.pendulum"
num_samples = {width}
batch_size = {width}
seeds_per_sample = {replicates}
total_timesteps = {steps}
num_evaluations = {evals}
eval_episodes = 16

[fixed]
num_envs = 8
rollout_length = 64
update_epochs = 4
num_minibatches = 4
"network.actor.layer_sizes" = [64, 64]
"network.critic.layer_sizes" = [64, 64]

[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-3 }}
"""


def measure(evals: int, width: int, replicates: int, steps: int, repeats: int) -> dict:
    import jax
    import numpy as np

    from hyperlax.compiler import compile_manifest
    from hyperlax.train.algos import chunk, get_make_program
    from hyperlax.train.batched import batched_train
    from hyperlax.exec.runner import CompiledRunner

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "chunks.toml"
        manifest.write_text(MANIFEST.format(width=width, replicates=replicates, steps=steps,
                                            evals=evals))
        plan, _ = compile_manifest(manifest)
    samples = list(range(width))
    runner = CompiledRunner(plan)
    configs, keys = runner.inputs(samples, width)
    s = plan.settings
    mono = jax.jit(batched_train(s.algorithm, s.env, s.budget)).lower(configs, keys).compile()
    runner.run(0, samples, width)  # compiles
    program = get_make_program(s.algorithm)(s.env, s.budget)
    one_chunk = chunk(program)

    def lanes(fn):
        return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, 0))

    def chunks(config, carry):
        return jax.lax.scan(lambda c, _: one_chunk(config, c), carry, None, runner.group)

    init = jax.jit(lanes(program.init)).lower(configs, keys).compile()
    carry_shape = jax.eval_shape(lanes(program.init), configs, keys)
    step = jax.jit(lanes(chunks), donate_argnums=(1,)).lower(configs, carry_shape).compile()

    def monolithic() -> float:
        start = time.perf_counter()
        out = jax.device_get(mono(configs, keys))
        seconds = time.perf_counter() - start
        assert np.asarray(out.eval_returns).shape[-1] == evals
        return seconds

    def chunked() -> float:
        start = time.perf_counter()
        runner.run(0, samples, width)
        return time.perf_counter() - start

    def unsplit() -> float:  # as runner.run, with one call per chunk
        start = time.perf_counter()
        carry, outs = init(configs, keys), []
        for _ in range(runner.calls):
            carry, metrics = step(configs, carry)
            if outs:
                np.asarray(outs[-1].eval_returns)  # progress: waits for the previous chunk
            outs.append(metrics)
        jax.device_get(outs)
        return time.perf_counter() - start

    monolithic()
    unsplit()
    times: dict[str, list[float]] = {"monolithic": [], "chunked": [], "unsplit": []}
    runs = {"monolithic": monolithic, "chunked": chunked, "unsplit": unsplit}
    names = list(runs)
    for r in range(repeats):  # each round in another order: no variant always follows another
        for name in names[r % 3:] + names[:r % 3]:
            times[name].append(runs[name]())
    mono_s, chunk_s, unsplit_s = (statistics.median(times[k])
                                  for k in ("monolithic", "chunked", "unsplit"))
    env_steps = runner.budget.steps_trained(plan.sample_config(0).steps_per_update())
    env_steps *= width * replicates
    return {"evals": evals, "calls": runner.calls, "monolithic_s": mono_s,
            "chunked_s": chunk_s, "cost_pct": 100 * (chunk_s / mono_s - 1),
            "unsplit_s": unsplit_s,
            # the machine's speed drifts: the median of each round's ratio, not of the times
            "split_pct": 100 * (statistics.median(
                c / u for c, u in zip(times["chunked"], times["unsplit"])) - 1),
            "ms_per_call": 1000 * chunk_s / runner.calls,
            "steps_per_s_mono": env_steps / mono_s, "steps_per_s_chunked": env_steps / chunk_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16_384)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'evals':>6} {'steps':>7} {'calls':>6} {'ms/call':>8} {'mono s':>8} {'chunked s':>10} "
          f"{'cost %':>7} {'unsplit s':>10} {'split %':>8} {'steps/s mono':>13} "
          f"{'steps/s chunked':>16}")
    for evals in args.evals:
        steps = max(args.steps, evals * 512)  # at least one update (512 steps) per chunk
        r = measure(evals, args.width, args.replicates, steps, args.repeats)
        print(f"{r['evals']:>6} {steps:>7} {r['calls']:>6} {r['ms_per_call']:>8.1f} "
              f"{r['monolithic_s']:>8.3f} {r['chunked_s']:>10.3f} {r['cost_pct']:>7.2f} "
              f"{r['unsplit_s']:>10.3f} {r['split_pct']:>8.2f} "
              f"{r['steps_per_s_mono']:>13,.0f} {r['steps_per_s_chunked']:>16,.0f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
