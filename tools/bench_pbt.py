"""Benchmark what population-based training costs (issue 25, item 5): the same sweep with and
without its ``[pbt]`` table, each a fresh `hyperlax exec` process with a fresh output root.

Per case and variant it reports the median wall time of the process, exec's own split (its
run seconds, training seconds, compile seconds and programs, from exec's summary lines), the
rest of the run (run - training - compile waited for: outputs, decisions, carries, claims), the
peak resident set size of the exec process (``wait4``'s ru_maxrss), how many XLA compiles ran
and how many of them missed the compilation cache (JAX's monitoring events), and where PBT's
own time goes, measured by timers around the functions that do it (``PROBES``): the decisions,
the carries written at the end of each interval and read back at the start of the next, the
entries' outputs and markers. The difference of the medians is the cost, as a percentage of
the plain sweep's wall time.

    python tools/bench_pbt.py [--cases ppo-pendulum dqn-cartpole ppo-pendulum-32]
                              [--repeats 3] [--timesteps N] [--cold] [--json FILE]

The compilation cache is shared by a case's runs and filled first by one unrecorded run of the
plain sweep, so the recorded runs compare training and PBT's machinery, not compile noise, and
a PBT run that compiled anything the plain sweep did not shows as a cache miss. ``--cold``
gives every run an empty cache instead (compile time included). Each exec runs the command
line itself (``python -m hyperlax exec``'s code, run by this script with ``--probe`` so that
the timers are in place before it starts); ``--no-probe`` runs ``python -m hyperlax exec``
unchanged, without the breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (module, function or Class.method): what PBT does between and around its intervals.
# Nested: "outputs" includes "carry_serialize", "file_write", "carry_file_write" and "marker";
# "carry_load" includes the source entries' "verify".
PROBES = {
    "decide": ("hyperlax.exec.halving.rungs", "rung_decision"),
    "wait": ("hyperlax.exec.halving.rungs", "wait_for_rung"),
    "stage_setup": ("hyperlax.exec.halving.rungs", "_intact_or_redone"),
    "carry_load": ("hyperlax.exec.halving.job", "RungJob.start"),
    "verify": ("hyperlax.storage.sweepdir", "SweepDir.verify"),
    "carry_to_device": ("hyperlax.exec.runner", "CompiledRunner._place"),
    "carry_to_host": ("hyperlax.exec.runner", "host_leaves"),
    "outputs": ("hyperlax.exec.executor", "write_entry"),
    "carry_serialize": ("hyperlax.exec.checkpoints.snapshots", "carry_bytes"),
    "marker": ("hyperlax.storage.sweepdir", "SweepDir.complete"),
    "entry": ("hyperlax.exec.executor", "attempt_entry"),
}
# PBT's own work: what the plain sweep does not do at all (the outputs of the extra entries
# are counted as the difference of "outputs" instead)
PBT_ONLY = ("decide", "wait", "stage_setup", "carry_load", "carry_to_device", "carry_to_host")

DQN_PBT = """
[pbt]
interval = 2
explore = ["learning_rate", "gamma", "tau", "epsilon_end"]
"""


@dataclass(frozen=True)
class Case:
    """A sweep: its manifest with ``[pbt]``, from a spec with its [sweep] keys replaced."""

    spec: str
    sweep: dict = field(default_factory=dict)
    pbt: str = ""   # a [pbt] table to add (the spec has none)

    def manifest(self, timesteps: int | None) -> str:
        text = (ROOT / self.spec).read_text("utf-8")
        if self.pbt:
            text = text.rstrip("\n") + "\n" + self.pbt
        keys = dict(self.sweep)
        if timesteps:
            keys["total_timesteps"] = timesteps
        return set_sweep_keys(text, keys)


CASES = {
    # the spec as it is: 8 PPO samples, one batch, 5 intervals of 2 evaluations
    "ppo-pendulum": Case("specs/pbt_pendulum.toml"),
    # a larger population: 32 samples in one batch of 32, a quarter of the budget each
    "ppo-pendulum-32": Case("specs/pbt_pendulum.toml",
                            {"num_samples": 32, "batch_size": 32, "total_timesteps": 100_000}),
    # DQN: replay buffers in the carry, 2 batches per interval (exploit across entries)
    "dqn-cartpole": Case("specs/dqn_cartpole.toml",
                         {"num_samples": 16, "total_timesteps": 20_000}, DQN_PBT),
}

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"'-]+)\s*\]\]?\s*(#.*)?$")


def _tables(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, name) of each table header."""
    return [(k, m[1]) for k, line in enumerate(lines) if (m := _HEADER.match(line))]


def without_pbt(text: str) -> str:
    """The manifest ``text`` with its ``[pbt]`` table removed: the same sweep, without PBT.
    Checked: the result parses to the same TOML without "pbt"."""
    lines = text.splitlines(keepends=True)
    headers = _tables(lines)
    starts = [k for k, name in headers if name == "pbt"]
    if len(starts) != 1:
        raise ValueError("the manifest has no [pbt] table")
    start = starts[0]
    end = next((k for k, _ in headers if k > start), len(lines))
    while end > start + 1 and lines[end - 1].lstrip().startswith("#"):
        end -= 1   # comments right above the next table are that table's
    out = "".join(lines[:start] + lines[end:])
    expected = tomllib.loads(text)
    del expected["pbt"]
    if tomllib.loads(out) != expected:
        raise ValueError("removing [pbt] changed the rest of the manifest")
    return out


def set_sweep_keys(text: str, keys: dict) -> str:
    """The manifest ``text`` with these ``[sweep]`` keys set (replaced, or added at the end of
    the table). Values are ints or strings. Checked against the parsed result."""
    lines = text.splitlines(keepends=True)
    headers = _tables(lines)
    start = next(k for k, name in headers if name == "sweep")
    end = next((k for k, _ in headers if k > start), len(lines))
    for name, value in keys.items():
        literal = json.dumps(value) if isinstance(value, str) else str(value)
        line = f"{name} = {literal}\n"
        found = [k for k in range(start + 1, end) if re.match(rf"^\s*{name}\s*=", lines[k])]
        if found:
            lines[found[0]] = line
        else:
            while end > start + 1 and not lines[end - 1].strip():
                end -= 1   # after the table's last key, not after its trailing blank lines
            lines.insert(end, line)
            end += 1
    out = "".join(lines)
    sweep = tomllib.loads(out)["sweep"]
    if any(sweep.get(n) != v for n, v in keys.items()):
        raise ValueError(f"could not set {keys} in [sweep]")
    return out


# --- the exec process, with timers (run as: bench_pbt.py --probe OUT.json exec ...) ---------

def probed_exec(out: Path, argv: list[str]) -> None:
    """Run the command line ``hyperlax <argv>`` in this process with the timers of ``PROBES``
    and JAX's compile events counted; write them to ``out`` as it ends."""
    import atexit
    import functools
    import importlib
    import runpy

    totals = {name: [0, 0.0] for name in PROBES}
    events: dict[str, list] = {}
    # the probes running now in this thread, innermost last: a compile is theirs (the compile
    # workers' threads run none)
    local = threading.local()
    for name, (module, attr) in PROBES.items():
        owner_name, _, leaf = attr.rpartition(".")
        owner = importlib.import_module(module)
        if owner_name:
            owner = getattr(owner, owner_name)
        original = getattr(owner, leaf)

        @functools.wraps(original)
        def timed(*args, _original=original, _name=name, **kwargs):
            began = time.perf_counter()
            active = local.__dict__.setdefault("active", [])
            active.append(_name)
            try:
                return _original(*args, **kwargs)
            finally:
                active.pop()
                totals[_name][0] += 1
                totals[_name][1] += time.perf_counter() - began

        setattr(owner, leaf, timed)

    import jax.monitoring

    def event(name: str, **kwargs) -> None:
        events.setdefault(name, [0, 0.0])[0] += 1

    compiled: list[str] = []   # the name of every function XLA compiled (or loaded)

    def duration(name: str, seconds: float, **kwargs) -> None:
        events.setdefault(name, [0, 0.0])[0] += 1
        events[name][1] += seconds
        if name == BACKEND_COMPILE:
            active = local.__dict__.get("active")
            where = f" in {active[-1]}" if active else ""
            compiled.append(f"{kwargs.get('fun_name', '?')}{where}")

    jax.monitoring.register_event_listener(event)
    jax.monitoring.register_event_duration_secs_listener(duration)
    atexit.register(lambda: out.write_text(json.dumps({"probes": totals, "events": events,
                                                            "compiled": compiled})))
    sys.argv = ["hyperlax", *argv]
    runpy.run_module("hyperlax", run_name="__main__", alter_sys=True)


# --- the benchmark ------------------------------------------------------------------------

SUMMARY = re.compile(r"env steps in ([\d.]+)s: [\d,]+ steps/s overall(?:, [\d,]+ while training "
                     r"\(([\d.]+)s\))?")
COMPILE = re.compile(r"compile: (\d+) programs? in ([\d.]+)s of wall time \(\d+% of the run\); "
                     r"([\d.]+)s of it hidden behind training, ([\d.]+)s waited")
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def run_exec(plan: Path, root: Path, cache: Path, probe: bool) -> dict:
    """One fresh exec process: its wall time, exec's summary numbers, its peak RSS, probes."""
    args = ["exec", str(plan), "--output-root", str(root), "--compile-cache", str(cache)]
    probes = root.with_suffix(".probes.json")
    command = [sys.executable, __file__, "--probe", str(probes), *args] if probe else \
        [sys.executable, "-m", "hyperlax", *args]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"exec failed:\n{output[-4000:]}")
    summary, compile_ = SUMMARY.search(output), COMPILE.search(output)
    if not summary or not compile_:
        raise SystemExit(f"no summary in:\n{output[-4000:]}")
    row = {"wall": wall, "run": float(summary[1]), "train": float(summary[2] or 0.0),
           "programs": int(compile_[1]), "compile": float(compile_[2]),
           "compile_waited": float(compile_[4]), "peak_mib": usage.ru_maxrss / 1024}
    row["other"] = row["run"] - row["train"] - row["compile_waited"]
    if probe:
        data = json.loads(probes.read_text())
        row["probes"] = {n: t for n, (c, t) in data["probes"].items()}
        row["calls"] = {n: c for n, (c, t) in data["probes"].items()}
        events = data["events"]
        row["xla_compiles"] = events.get(BACKEND_COMPILE, [0])[0]
        row["compiled"] = sorted(data["compiled"])
        requests = events.get("/jax/compilation_cache/compile_requests_use_cache", [0])[0]
        row["cache_misses"] = requests - events.get("/jax/compilation_cache/cache_hits", [0])[0]
    return row


def plan_file(work: Path, name: str, text: str) -> Path:
    from hyperlax.compiler import compile_manifest
    from hyperlax.plan.format import encode_plan

    manifest = work / f"{name}.toml"
    manifest.write_text(text)
    plan, _ = compile_manifest(manifest)
    path = work / f"{name}.msgpack"
    path.write_bytes(encode_plan(plan))
    return path


def bench_case(name: str, case: Case, work: Path, repeats: int, timesteps: int | None,
               cold: bool, probe: bool) -> dict:
    text = case.manifest(timesteps)
    plans = {"plain": plan_file(work, f"{name}-plain", without_pbt(text)),
             "pbt": plan_file(work, f"{name}-pbt", text)}
    cache = work / f"{name}-cache"
    if not cold:  # fill the cache with the plain sweep's programs; not recorded
        run_exec(plans["plain"], work / f"{name}-warmup", cache, probe=False)
    runs: dict[str, list[dict]] = {"plain": [], "pbt": []}
    for k in range(repeats):
        # ABBA: alternate which goes first, so a drift of the machine's speed falls on both
        for variant in (("plain", "pbt") if k % 2 == 0 else ("pbt", "plain")):
            run_cache = work / f"{name}-cache-{variant}-{k}" if cold else cache
            row = run_exec(plans[variant], work / f"{name}-{variant}-{k}", run_cache, probe)
            runs[variant].append(row)
            print(f"  {name} {variant} #{k}: wall {row['wall']:.1f}s, train {row['train']:.1f}s, "
                  f"other {row['other']:.2f}s, peak {row['peak_mib']:.0f} MiB", file=sys.stderr,
                  flush=True)
    return {"case": name, "manifest": text, "runs": runs,
            "plain": summarize(runs["plain"]), "pbt": summarize(runs["pbt"])}


def summarize(rows: list[dict]) -> dict:
    """Medians over the repeats (peak memory: the largest); compile counts must agree."""
    out = {key: statistics.median(r[key] for r in rows)
           for key in ("wall", "run", "train", "compile", "compile_waited", "other")}
    out["peak_mib"] = max(r["peak_mib"] for r in rows)
    for key in ("programs", "xla_compiles", "cache_misses"):
        if key in rows[0]:
            out[key] = sorted({r[key] for r in rows})
    if "compiled" in rows[0]:
        out["compiled"] = rows[0]["compiled"]
    if "probes" in rows[0]:
        out["probes"] = {n: statistics.median(r["probes"][n] for r in rows) for n in PROBES}
        out["calls"] = rows[0]["calls"]
    return out


def report(results: list[dict]) -> None:
    print("\n| case | variant | wall s | exec run s | train s | compile s | other s | programs "
          "| XLA compiles (cache misses) | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        for variant in ("plain", "pbt"):
            s = res[variant]
            xla = (f"{'/'.join(map(str, s['xla_compiles']))} "
                   f"({'/'.join(map(str, s['cache_misses']))})" if "xla_compiles" in s else "-")
            print(f"| {res['case']} | {variant} | {s['wall']:.1f} | {s['run']:.1f} | "
                  f"{s['train']:.1f} | {s['compile']:.1f} | {s['other']:.2f} | "
                  f"{'/'.join(map(str, s['programs']))} | {xla} | {s['peak_mib']:.0f} |")
    print("\n| case | wall: pbt - plain | of plain's wall | other: pbt - plain | PBT's own work "
          "(timed) | of plain's wall | intervals |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        plain, pbt = res["plain"], res["pbt"]
        diff = pbt["wall"] - plain["wall"]
        line = (f"| {res['case']} | {diff:+.2f} s | {100 * diff / plain['wall']:+.1f} % | "
                f"{pbt['other'] - plain['other']:+.2f} s | ")
        if "probes" in pbt:
            own = own_work(plain, pbt)
            line += (f"{own:.2f} s | {100 * own / plain['wall']:.2f} % | "
                     f"{pbt['calls']['entry']} entries, {pbt['calls']['decide']} decisions |")
        else:
            line += "- | - | - |"
        print(line)
    for res in results:
        if "compiled" in res["pbt"]:
            extra = Counter(res["pbt"]["compiled"]) - Counter(res["plain"]["compiled"])
            print(f"\n{res['case']}: XLA compiled in the pbt run and not in the plain one: "
                  + (", ".join(f"{n} x{c}" for n, c in sorted(extra.items())) or "nothing"))
        if "probes" not in res["pbt"]:
            continue
        print(f"\n{res['case']}: seconds in each timed function (median of the runs; calls in "
              "the pbt run)")
        print("| function | plain s | pbt s | pbt calls |")
        print("| --- | --- | --- | --- |")
        for name in PROBES:
            print(f"| {name} | {res['plain']['probes'][name]:.3f} | "
                  f"{res['pbt']['probes'][name]:.3f} | {res['pbt']['calls'][name]} |")


def own_work(plain: dict, pbt: dict) -> float:
    """PBT's own time: what only it does, plus the outputs of its extra entries."""
    return (sum(pbt["probes"][n] for n in PBT_ONLY)
            + pbt["probes"]["outputs"] - plain["probes"]["outputs"])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        probed_exec(Path(argv[1]), argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["ppo-pendulum"], choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=None,
                        help="every case's total_timesteps instead of its own")
    parser.add_argument("--cold", action="store_true", help="an empty compilation cache per run")
    parser.add_argument("--no-probe", action="store_true",
                        help="plain `python -m hyperlax exec`, without the timers")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-pbt-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          file=sys.stderr, flush=True)
    results = [bench_case(name, CASES[name], work, args.repeats, args.timesteps, args.cold,
                          not args.no_probe) for name in args.cases]
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          file=sys.stderr, flush=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwork directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
