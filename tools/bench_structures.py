"""Benchmark two-level sampling (issue: structure-aware sampling).

A 64-sample PPO Pendulum sweep whose space samples rollout length, epochs, minibatches and env
count (small values, so it runs on a CPU), in grouped mode: plain Sobol vs `structures = 4`.
Reports, per manifest seed, distinct structures, compiles, wall time (fresh process, empty
compilation cache) and the best final return found.

    python tools/bench_structures.py [--seeds 0 1 2] [--structures 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = """\
[sweep]
name = "bench-structures"
recipe = "ppo_mlp_fixed_net"
env = "gymnax.pendulum"
num_samples = 64
mode = "grouped"
batch_size = 16
seed = {seed}
total_timesteps = 49_152
num_evaluations = 4
eval_episodes = 4
{structures}

[fixed]
"network.actor.layer_sizes" = [32, 32]
"network.critic.layer_sizes" = [32, 32]

[space]
num_envs = {{ dist = "categorical", values = [4, 8] }}
rollout_length = {{ dist = "categorical", values = [16, 32, 64] }}
update_epochs = {{ dist = "int_uniform", low = 1, high = 4 }}
num_minibatches = {{ dist = "categorical", values = [1, 2, 4] }}
"""


def run(workdir: Path, seed: int, structures: int | None) -> dict:
    tag = f"s{seed}-{structures or 'plain'}"
    manifest = workdir / f"{tag}.toml"
    manifest.write_text(MANIFEST.format(
        seed=seed, structures=f"structures = {structures}" if structures else ""))
    plan = workdir / f"{tag}.msgpack"
    subprocess.run([sys.executable, "-m", "hyperlax", "plan", str(manifest), "-o", str(plan)],
                   check=True, capture_output=True)
    shown = json.loads(subprocess.run([sys.executable, "-m", "hyperlax", "show", str(plan),
                                       "--format", "json"], check=True, capture_output=True,
                                      text=True).stdout)
    root = workdir / tag
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hyperlax", "exec", str(plan), "--output-root",
                    str(root), "--compile-cache", str(workdir / f"{tag}-cache"), "--quiet"],
                   check=True)
    wall = time.perf_counter() - start
    finals, compile_s = [], 0.0
    for summary in root.rglob("summary.json"):
        data = json.loads(summary.read_text())
        compile_s += data["compile_seconds"]
        finals += [s["final_return"] for s in data["samples"] if s["final_return"] is not None]
    return {"structures": shown["summary"]["structures"],
            "compiles": shown["summary"]["compiles"], "wall": wall, "compile": compile_s,
            "best": max(finals), "median": statistics.median(finals)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--structures", type=int, default=4)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; 64 samples, grouped, batch 16, 49,152 steps per sample")
    print(f"{'seed':>4} {'sampling':<14} {'structures':>10} {'compiles':>8} {'wall s':>7} "
          f"{'compile s':>9} {'best final':>10} {'median final':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for k in (None, args.structures):
                r = run(Path(tmp), seed, k)
                label = "plain Sobol" if k is None else f"structures={k}"
                print(f"{seed:>4} {label:<14} {r['structures']:>10} {r['compiles']:>8} "
                      f"{r['wall']:>7.1f} {r['compile']:>9.1f} {r['best']:>10.1f} "
                      f"{r['median']:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
