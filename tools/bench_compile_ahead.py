"""Compile ahead, serial vs parallel: each run is a fresh `hyperlax exec` process with an empty
compilation cache and output root, with `--compile-workers` 0 (compile each program in the main
thread when first needed: no compile ahead), 1 (one compile thread, ahead of training) and the
default (one per core). Reports the time to exec's first line and to the first compiled program,
the compile wall time (time during which some compile ran), how much of it training hid, the
training time, the total wall time and the peak memory (ru_maxrss) of the exec process.

    python tools/bench_compile_ahead.py [--workload a|b] [--workers 0 1 2] [--steps 16384]

Workload a: the original system's PPO sweep (16 samples of `ppo_mlp_small` on pendulum, its network
search, 8 replicates each, grouped), with a shortened budget. Workload b: 64 samples of
`ppo_mlp_small`, 16 structures (`structures = 16`), 1 replicate, grouped, the same budget.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MANIFEST = """\
[sweep]
name = "ahead"
recipe = "ppo_mlp_small"
env = "gymnax.pendulum"
num_samples = {samples}
{structures}mode = "grouped"
batch_size = 16
seeds_per_sample = {replicates}
total_timesteps = {steps}
num_evaluations = 8
eval_episodes = 16
"""

WORKLOADS = {"a": dict(samples=16, structures="", replicates=8),
             "b": dict(samples=64, structures="structures = 16\n", replicates=1)}


def run(plan: Path, tmp: Path, workers: int) -> dict:
    out, cache = tmp / f"out-{workers}", tmp / f"cache-{workers}"
    command = [sys.executable, "-m", "hyperlax", "exec", str(plan), "--output-root", str(out),
               "--compile-cache", str(cache), "--compile-workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    firsts: dict[str, float] = {}

    def read() -> None:
        for line in proc.stderr:
            for name, prefix in (("first_line", "exec:"), ("first_compile", "compiled 1/")):
                if line.startswith(prefix) and name not in firsts:
                    firsts[name] = time.perf_counter() - started

    reader = threading.Thread(target=read)
    reader.start()
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"exec failed ({proc.returncode}):\n{stdout}")
    numbers = re.search(r"in ([\d.]+)s: ([\d,]+) steps/s overall, ([\d,]+) while training "
                        r"\(([\d.]+)s\)", stdout)
    compile_ = re.search(r"compile: (\d+) programs in ([\d.]+)s of wall time \((\d+)% of the "
                         r"run\); ([\d.]+)s of it hidden behind training, ([\d.]+)s waited",
                         stdout)
    if not numbers or not compile_:
        raise SystemExit(f"no summary in:\n{stdout}")
    return {"workers": workers, "wall": wall, "run": float(numbers[1]),
            "steps_per_s": numbers[2], "train_steps_per_s": numbers[3],
            "train": float(numbers[4]), "programs": int(compile_[1]),
            "compile": float(compile_[2]), "share": int(compile_[3]),
            "hidden": float(compile_[4]), "waited": float(compile_[5]),
            "peak_mib": usage.ru_maxrss / 1024, **firsts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="a")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=16_384)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        manifest = tmp / "ahead.toml"
        manifest.write_text(MANIFEST.format(steps=args.steps, **WORKLOADS[args.workload]))
        plan = tmp / "plan.msgpack"
        subprocess.run([sys.executable, "-m", "hyperlax", "plan", str(manifest), "-o", str(plan)],
                       check=True, capture_output=True)
        print(f"workload {args.workload}: {WORKLOADS[args.workload]}, {args.steps} steps/run; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        print("workers  first line  first program  programs  compile s  hidden s  waited s  "
              "train s  wall s  train steps/s  overall steps/s  peak MiB", flush=True)
        for workers in args.workers:
            r = run(plan, tmp, workers)
            print(f"{r['workers']:>7}  {r.get('first_line', float('nan')):>10.1f}  "
                  f"{r.get('first_compile', float('nan')):>13.1f}  {r['programs']:>8}  "
                  f"{r['compile']:>9.1f}  {r['hidden']:>8.1f}  {r['waited']:>8.1f}  "
                  f"{r['train']:>7.1f}  {r['wall']:>6.1f}  {r['train_steps_per_s']:>13}  "
                  f"{r['steps_per_s']:>16}  {r['peak_mib']:>8.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
