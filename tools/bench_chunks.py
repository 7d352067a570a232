"""What running training as evaluation chunks from the host costs: exec's chunked run of one
sub-batch (``CompiledRunner.run``: init, then per evaluation chunk a train call and an evaluate
call, with progress read between chunks) against the entry point's run of the same program
(``batched_program(...).run``: the same calls, no host work between them) and against the same
training in one train call and one evaluate call per run (``batched_program(..., group=
num_evaluations)``: what calling from the host per chunk costs), on the same inputs, compiled
once each, timed alternately; medians.

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
from typing import Callable

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
    import numpy as np

    from hyperlax.compiler import compile_manifest
    from hyperlax.exec.runner import CompiledRunner
    from hyperlax.train.batched import batched_program

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "chunks.toml"
        manifest.write_text(MANIFEST.format(width=width, replicates=replicates, steps=steps,
                                            evals=evals))
        plan, _ = compile_manifest(manifest)
    samples = list(range(width))
    runner = CompiledRunner(plan)
    configs, keys = runner.inputs(samples, width)
    s = plan.settings
    entry = batched_program(s.algorithm, s.env, s.budget)
    whole = batched_program(s.algorithm, s.env, s.budget, group=s.num_evaluations)

    def timed(fn) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return run

    runs = {"chunked": timed(lambda: runner.run(0, samples, width)),
            "entry": timed(lambda: entry.run(configs, keys)),
            "one_call": timed(lambda: whole.run(configs, keys))}
    for run in runs.values():  # compiles
        run()
    assert np.asarray(whole.run(configs, keys).eval_returns).shape[-1] == evals
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):  # each round in another order: no variant always follows another
        for name in names[r % 3:] + names[:r % 3]:
            times[name].append(runs[name]())
    chunk_s, entry_s, one_s = (statistics.median(times[k]) for k in names)
    env_steps = runner.budget.steps_trained(plan.sample_config(0).steps_per_update())
    env_steps *= width * replicates
    return {"evals": evals, "calls": runner.calls, "one_call_s": one_s,
            "chunked_s": chunk_s, "cost_pct": 100 * (chunk_s / one_s - 1),
            "entry_s": entry_s,
            # the machine's speed drifts: the median of each round's ratio, not of the times
            "host_pct": 100 * (statistics.median(
                c / e for c, e in zip(times["chunked"], times["entry"])) - 1),
            "ms_per_call": 1000 * chunk_s / runner.calls,
            "steps_per_s_one": env_steps / one_s, "steps_per_s_chunked": env_steps / chunk_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16_384)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'evals':>6} {'steps':>7} {'calls':>6} {'ms/call':>8} {'1 call s':>8} "
          f"{'chunked s':>10} {'cost %':>7} {'entry s':>10} {'host %':>8} {'steps/s 1 call':>14} "
          f"{'steps/s chunked':>16}")
    for evals in args.evals:
        steps = max(args.steps, evals * 512)  # at least one update (512 steps) per chunk
        r = measure(evals, args.width, args.replicates, steps, args.repeats)
        print(f"{r['evals']:>6} {steps:>7} {r['calls']:>6} {r['ms_per_call']:>8.1f} "
              f"{r['one_call_s']:>8.3f} {r['chunked_s']:>10.3f} {r['cost_pct']:>7.2f} "
              f"{r['entry_s']:>10.3f} {r['host_pct']:>8.2f} "
              f"{r['steps_per_s_one']:>14,.0f} {r['steps_per_s_chunked']:>16,.0f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
