"""Benchmark the compiler's speed: `hyperlax --help` and `hyperlax plan` of a 10,000-sample
manifest, as whole processes (what a user waits for). Prints medians of several runs.

    python tools/bench_plan.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = """\
[sweep]
name = "bench-10k"
recipe = "ppo_mlp_small"
env = "gymnax.pendulum"
num_samples = 10000
mode = "grouped"
batch_size = 64
"""


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    hyperlax = [sys.executable, "-m", "hyperlax"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "sweep.toml").write_text(MANIFEST)
        rows = {
            "python -c pass (interpreter start)": [sys.executable, "-c", "pass"],
            "hyperlax --help": hyperlax + ["--help"],
            "hyperlax plan (10,000 samples, ppo_mlp_small space)": hyperlax + ["plan", "sweep.toml"],
        }
        for label, cmd in rows.items():
            timed(cmd, cwd)  # warm the file cache
            times = [timed(cmd, cwd) for _ in range(args.runs)]
            print(f"{label:<48} median {statistics.median(times):.3f} s "
                  f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs)")
        # in-process: the compiler alone, without interpreter start and imports
        from hyperlax.compiler import compile_manifest
        from hyperlax.plan.format import encode_plan
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            plan, _ = compile_manifest(cwd / "sweep.toml")
            encode_plan(plan)
            times.append(time.perf_counter() - start)
        print(f"{'compile + encode in process (10,000 samples)':<48} median "
              f"{statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
