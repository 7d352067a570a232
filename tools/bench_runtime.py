"""Runtime benchmark: wall time and aggregate env steps per second of PPO pendulum sweeps with
small per-sample work, in batched, grouped and sequential modes and as one process per sample
(what a trial-per-process tuner does). Every run is a fresh `hyperlax exec` process with an
empty compilation cache, so compile time is included and reported separately.

    python tools/bench_runtime.py [--samples 16 64] [--repeats 3] [--recipe ppo|dqn|sac]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFESTS = {
    "ppo": """\
[sweep]
name = "bench"
recipe = "ppo_mlp_fixed_net"
env = "gymnax.pendulum"
num_samples = {n}
mode = "{mode}"
batch_size = 16
total_timesteps = 20_480
num_evaluations = 4
eval_episodes = 4

[fixed]
num_envs = 4
rollout_length = 32
update_epochs = 2
num_minibatches = 2
"network.actor.layer_sizes" = [32, 32]
"network.critic.layer_sizes" = [32, 32]

[space]
"network.activation" = {{ dist = "categorical", values = ["tanh", "relu"] }}
""",
    "dqn": """\
[sweep]
name = "bench"
recipe = "dqn_mlp_small"
env = "gymnax.cartpole"
num_samples = {n}
mode = "{mode}"
batch_size = 16
total_timesteps = 10_240
num_evaluations = 4
eval_episodes = 4

[fixed]
num_envs = 4
rollout_length = 4
warmup_steps = 512
buffer_size = 4096
replay_batch_size = 32
target_update_period = 100
"network.q.layer_sizes" = [32, 32]

[space]
"network.activation" = {{ dist = "categorical", values = ["tanh", "relu"] }}
""",
    "sac": """\
[sweep]
name = "bench"
recipe = "sac_mlp_small"
env = "gymnax.pendulum"
num_samples = {n}
mode = "{mode}"
batch_size = 16
total_timesteps = 4_096
num_evaluations = 4
eval_episodes = 4

[fixed]
num_envs = 4
rollout_length = 4
warmup_steps = 512
buffer_size = 4096
replay_batch_size = 64
"network.actor.layer_sizes" = [32, 32]
"network.critic.layer_sizes" = [32, 32]

[space]
"network.activation" = {{ dist = "categorical", values = ["tanh", "relu"] }}
""",
}

ONE_SAMPLE = """
import sys
from pathlib import Path
from hyperlax.plan.read import read_plan
from hyperlax.exec.executor import enable_compile_cache
from hyperlax.exec.local_exec import execute
plan, pid = read_plan(Path(sys.argv[1]))
enable_compile_cache(Path(sys.argv[3]))
execute(plan, pid, Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), entries=[int(sys.argv[4])])
"""


def plan(workdir: Path, recipe: str, n: int, mode: str) -> Path:
    manifest = workdir / f"{mode}.toml"
    manifest.write_text(MANIFESTS[recipe].format(n=n, mode=mode))
    out = workdir / f"{mode}.msgpack"
    subprocess.run([sys.executable, "-m", "hyperlax", "plan", str(manifest), "-o", str(out)],
                   check=True, capture_output=True)
    return out


def collect(root: Path) -> tuple[int, float, float]:
    """(env steps trained, compile seconds, train seconds) from the summaries."""
    steps = compile_s = train_s = 0
    for summary in root.rglob("summary.json"):
        data = json.loads(summary.read_text())
        steps += sum(s["steps"] * len(s["replicates"]) for s in data["samples"])
        compile_s += data["compile_seconds"]
        train_s += data["train_seconds"]
    return steps, compile_s, train_s


def run_mode(workdir: Path, plan_file: Path, label: str, per_process: bool) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root, cache = Path(tmp) / "out", Path(tmp) / "cache"
        start = time.perf_counter()
        if per_process:
            from hyperlax.plan.read import read_plan
            entries = len(read_plan(plan_file)[0].entries)
            for i in range(entries):
                subprocess.run([sys.executable, "-c", ONE_SAMPLE, str(plan_file), str(root),
                                str(Path(tmp) / f"cache{i}"), str(i)], check=True)
        else:
            subprocess.run([sys.executable, "-m", "hyperlax", "exec", str(plan_file),
                            "--output-root", str(root), "--compile-cache", str(cache),
                            "--quiet"], check=True)
        wall = time.perf_counter() - start
        steps, compile_s, train_s = collect(root)
    return {"mode": label, "wall": wall, "steps": steps, "compile": compile_s, "train": train_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", choices=sorted(MANIFESTS), default="ppo")
    parser.add_argument("--process-per-sample-max", type=int, default=16,
                        help="skip one-process-per-sample above this many samples")
    parser.add_argument("--process-repeats", type=int, default=1,
                        help="repeats of the (slow) one-process-per-sample case")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; recipe {args.recipe}; medians of "
          f"{args.repeats} runs")
    print(f"{'samples':>7} {'mode':<20} {'wall s':>8} {'compile s':>10} {'train s':>8} "
          f"{'steps/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in args.samples:
            cases = [("batched", "batched", False), ("grouped", "grouped", False),
                     ("sequential", "sequential", False)]
            if n <= args.process_per_sample_max:
                cases.append(("process per sample", "sequential", True))
            for label, mode, per_process in cases:
                plan_file = plan(workdir, args.recipe, n, mode)
                repeats = args.process_repeats if per_process else args.repeats
                runs = [run_mode(workdir, plan_file, label, per_process)
                        for _ in range(repeats)]
                wall = statistics.median(r["wall"] for r in runs)
                compile_s = statistics.median(r["compile"] for r in runs)
                train_s = statistics.median(r["train"] for r in runs)
                steps = runs[0]["steps"]
                print(f"{n:>7} {label:<20} {wall:>8.1f} {compile_s:>10.1f} {train_s:>8.1f} "
                      f"{steps / wall:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
