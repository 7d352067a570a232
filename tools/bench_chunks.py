"""What running training as evaluation chunks from the host costs: exec's chunked run of one
sub-batch (``CompiledRunner.run``: init, then one call per evaluation chunk, with progress read
between calls) against the same training as one monolithic call (``jit(batched_train)``), on the
same inputs, compiled once each, timed alternately; medians.

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
recipe = "ppo_mlp_no_network_search"
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
    from hyperlax.runtime.batched import batched_train
    from hyperlax.runtime.executor import CompiledRunner

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

    monolithic()
    times: dict[str, list[float]] = {"monolithic": [], "chunked": []}
    for _ in range(repeats):
        times["monolithic"].append(monolithic())
        times["chunked"].append(chunked())
    mono_s, chunk_s = (statistics.median(times[k]) for k in ("monolithic", "chunked"))
    env_steps = runner.budget.steps_trained(plan.sample_config(0).steps_per_update())
    env_steps *= width * replicates
    return {"evals": evals, "calls": runner.calls, "monolithic_s": mono_s,
            "chunked_s": chunk_s, "cost_pct": 100 * (chunk_s / mono_s - 1),
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
          f"{'cost %':>7} {'steps/s mono':>13} {'steps/s chunked':>16}")
    for evals in args.evals:
        steps = max(args.steps, evals * 512)  # at least one update (512 steps) per chunk
        r = measure(evals, args.width, args.replicates, steps, args.repeats)
        print(f"{r['evals']:>6} {steps:>7} {r['calls']:>6} {r['ms_per_call']:>8.1f} "
              f"{r['monolithic_s']:>8.3f} {r['chunked_s']:>10.3f} {r['cost_pct']:>7.2f} "
              f"{r['steps_per_s_mono']:>13,.0f} {r['steps_per_s_chunked']:>16,.0f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
