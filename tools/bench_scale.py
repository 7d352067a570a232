"""Scaling-out benchmark, two measurements on this machine:

1. ray: entries per minute of `exec --ray` on a local Ray cluster with 1 and with 2 CPUs (one
   task per CPU, so 1 or 2 worker processes). Each cluster first runs the plan once into a
   scratch directory (worker start, jax import, compiles), then the timed run repeats it
   into a fresh one, so the number is steady-state throughput, not start-up.
2. sharding: one PPO sub-batch trained unsharded vs split over 2 forced CPU devices
   (`exec --devices 2`), in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=2;
   compile excluded (each program runs once before timing), median of repeats.

    python tools/bench_scale.py [--entries 8] [--width 8] [--steps 131072] [--repeats 3]
                                [--only ray|sharding]

Ray writes to a temporary directory here (not ~/.ray or /tmp/ray) and uses 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MANIFEST = """\
[sweep]
name = "bench-scale"
recipe = "ppo_mlp_fixed_net"
env = "gymnax.cartpole"
num_samples = {n}
mode = "batched"
batch_size = {batch}
seed = 3
total_timesteps = {steps}
num_evaluations = 2
eval_episodes = 4

[fixed]
num_envs = 8
rollout_length = 32
update_epochs = 2
num_minibatches = 2
"network.actor.layer_sizes" = [32, 32]
"network.critic.layer_sizes" = [32, 32]

[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-2 }}
critic_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-2 }}
"""


def make_plan(directory: Path, n: int, batch: int, steps: int) -> tuple:
    from hyperlax.compiler import compile_manifest
    from hyperlax.plan.format import encode_plan, plan_id

    manifest = directory / "bench.toml"
    manifest.write_text(MANIFEST.format(n=n, batch=batch, steps=steps))
    plan, _ = compile_manifest(manifest)
    return plan, plan_id(plan), encode_plan(plan)


def bench_ray(entries: int, steps: int, tmp: Path, cache: Path) -> dict:
    """Entries per minute with 1 and 2 local Ray workers. Each cluster size runs in its own
    process (a Ray driver holds one cluster)."""
    out = {}
    for cpus in (1, 2):
        script = textwrap.dedent(f"""\
            import json, sys, time
            from pathlib import Path
            sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
            import ray
            from bench_scale import make_plan
            from hyperlax.exec.ray_exec import execute_ray
            tmp = Path({str(tmp)!r}) / "ray{cpus}"
            tmp.mkdir()
            plan, pid, data = make_plan(tmp, {entries} * 2, 2, {steps})
            ray.init(address="local", num_cpus={cpus}, include_dashboard=False,
                     _temp_dir=str(tmp / "ray"), log_to_driver=False, logging_level=40)
            cache = Path({str(cache)!r})
            execute_ray(plan, pid, data, tmp / "warm", address="", compile_cache=cache)
            report = execute_ray(plan, pid, data, tmp / "timed", address="",
                                 compile_cache=cache)
            ray.shutdown()
            print(json.dumps({{"entries": report.ran, "seconds": report.seconds}}))
        """)
        env = {**os.environ, "HOME": str(tmp / "home"), "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        (tmp / "home").mkdir(exist_ok=True)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["entries_per_minute"] = round(60 * result["entries"] / result["seconds"], 1)
        out[f"{cpus}_workers"] = result
        print(f"ray, {cpus} worker(s): {result['entries']} entries in "
              f"{result['seconds']:.1f}s = {result['entries_per_minute']} entries/min",
              flush=True)
    out["speedup"] = round(out["2_workers"]["entries_per_minute"]
                           / out["1_workers"]["entries_per_minute"], 2)
    return out


SHARDING = """\
import json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, {tools!r})
import jax
from bench_scale import make_plan
from hyperlax.exec.executor import enable_compile_cache
from hyperlax.exec.runner import CompiledRunner
enable_compile_cache(Path({cache!r}))
plan, _, _ = make_plan(Path({tmp!r}), {width}, {width}, {steps})
samples = list(range({width}))
out = {{}}
for name, devices in (("unsharded", None), ("sharded_2", jax.devices()[:2])):
    runner = CompiledRunner(plan, devices=devices)
    runner.run(0, samples, {width})  # compile
    times = [runner.run(0, samples, {width}).train_seconds for _ in range({repeats})]
    out[name] = round(statistics.median(times), 3)
print(json.dumps(out))
"""


def bench_sharding(width: int, steps: int, repeats: int, tmp: Path, cache: Path) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    script = SHARDING.format(tools=str(Path(__file__).resolve().parent), cache=str(cache),
                             tmp=str(tmp), width=width, steps=steps, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["speedup"] = round(result["unsharded"] / result["sharded_2"], 2)
    print(f"sharding, one batch of {width} PPO samples: unsharded {result['unsharded']}s, "
          f"2 devices {result['sharded_2']}s ({result['speedup']}x)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=8, help="entries of the Ray plan")
    parser.add_argument("--width", type=int, default=8, help="samples in the sharded batch")
    parser.add_argument("--steps", type=int, default=131_072,
                        help="env steps per sample (2 samples per Ray entry)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["ray", "sharding"])
    args = parser.parse_args()
    results = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="hyperlax-bench-scale-") as name:
        tmp = Path(name)
        cache = tmp / "jax-cache"
        if args.only in (None, "sharding"):
            (tmp / "sharding").mkdir()
            results["sharding"] = bench_sharding(args.width, args.steps, args.repeats,
                                                 tmp / "sharding", cache)
        if args.only in (None, "ray"):
            results["ray"] = bench_ray(args.entries, args.steps, tmp, cache)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f}s)", file=sys.stderr)
