"""Where does the compile time of one PPO program go? (issue 13, item 2)

Times, for one program exec runs (``batched_program``: its init, train and evaluate parts,
summed) of the original system's workload shape (PPO's declared defaults, as ``ppo_mlp_small``
has them: 8 envs x 64 steps, 4 epochs x 4 minibatches, [64, 64] tanh, 16 samples x 8
replicates, 10 evaluations of 16 episodes), the three stages separately:

- trace   ``jax.jit(run).trace(configs, keys)``  (Python -> jaxpr)
- lower   ``.lower()``                             (jaxpr -> StableHLO)
- compile ``.compile()``                           (XLA: HLO passes, then LLVM codegen of kernels)

and, from the profiler's own trace of ``.compile()``, how XLA's compile splits into HLO passes
and codegen (with the number of kernels it emitted). Then it varies one thing at a time (the
evaluation: its episodes, or removing it; epochs x minibatches; envs; width; network size) and
reports the program sizes and compile times, and it tries compile options that can be passed
without touching the algorithms (``.compile(compiler_options=...)``), checking bit-for-bit that
the trained results do not change, and what each costs at run time. Then the persistent
compilation cache: how long a program takes to load from it instead.

``parts`` reports each of exec's parts (``train.batched.PARTS``) apart, compiled by exec's runner:
its size and compile seconds for the same shape, and ``sweep`` the compiles of a sweep whose 4
structures differ only in num_envs x rollout_length, through the runner's program cache (the
evaluation part is shared by all four).

    python tools/profile_compile.py                       # everything (about 4-5 min on 2 cores)
    python tools/profile_compile.py --sections phases     # only the stage breakdown
    python tools/profile_compile.py --sections variants options cache --env gymnax.cartpole
    python tools/profile_compile.py --sections parts sweep

Sections: phases, variants, options, cache, parts, sweep. Numbers are wall seconds on this machine; run it
alone (other processes share the cores XLA compiles on).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import os
import platform
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hyperlax.hyperparams import PPOConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.batched import batched_program, replicate_keys, stack


@dataclass(frozen=True)
class Shape:
    env: str = "gymnax.pendulum"
    samples: int = 16
    replicates: int = 8
    total_timesteps: int = 131_072
    num_evaluations: int = 10
    eval_episodes: int = 16
    num_envs: int = 8
    rollout_length: int = 64
    update_epochs: int = 4
    num_minibatches: int = 4
    layers: tuple[int, ...] = (64, 64)
    no_eval: bool = False  # evaluation replaced by a constant (measures its share)

    def budget(self) -> Budget:
        return Budget(total_timesteps=self.total_timesteps,
                      num_evaluations=self.num_evaluations, eval_episodes=self.eval_episodes)

    def inputs(self) -> tuple[Any, jax.Array]:
        config = PPOConfig(num_envs=self.num_envs, rollout_length=self.rollout_length,
                           update_epochs=self.update_epochs,
                           num_minibatches=self.num_minibatches,
                           actor_layer_sizes=list(self.layers),
                           critic_layer_sizes=list(self.layers), activation="tanh")
        # distinct scalars per lane, as a sweep has (same structure)
        configs = [replace_lr(config, 1e-4 * (1 + i)) for i in range(self.samples)]
        return stack(configs), replicate_keys(list(range(self.samples)), self.replicates)


def replace_lr(config: PPOConfig, lr: float) -> PPOConfig:
    import msgspec
    return msgspec.structs.replace(config, actor_lr=lr, critic_lr=lr)


@contextlib.contextmanager
def without_evaluation(active: bool):
    """Replace PPO's evaluation by a constant return, to measure what it costs to compile.
    (A measurement only: the results of such a program are not the real ones.)"""
    if not active:
        yield
        return
    import hyperlax.train.algos.ppo as ppo
    saved = ppo.evaluate
    ppo.evaluate = lambda env, env_params, act, key, n: jnp.zeros((), jnp.float32)
    try:
        yield
    finally:
        ppo.evaluate = saved


def count_ops(text: str) -> int:
    """Instructions in an HLO or MLIR module's text: lines that define a value."""
    return sum(1 for line in text.splitlines() if re.match(r"\s*(ROOT\s+)?%\S+ = ", line))


def stablehlo_ops(lowered: Any) -> int:
    module = lowered.compiler_ir("stablehlo")
    count = 0

    def walk(op):
        nonlocal count
        count += 1
        for region in op.regions:
            for block in region.blocks:
                for inner in block.operations:
                    walk(inner.operation)

    for op in module.body.operations:
        walk(op.operation)
    return count


def xla_breakdown(trace_dir: str) -> dict[str, float]:
    """HLO passes / codegen seconds and kernel count from the profiler's trace of a compile."""
    try:
        from jax._src.lib import _profile_data
    except ImportError:  # private API; the breakdown is optional
        return {}
    files = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        return {}
    totals: dict[str, float] = collections.defaultdict(float)
    kernels = 0
    for plane in _profile_data.ProfileData.from_file(files[0]).planes:
        for line in plane.lines:
            for ev in line.events:
                name, sec = ev.name, ev.duration_ns / 1e9
                if name.startswith("HLO passes"):
                    totals["hlo_passes"] += sec
                elif name == "Codegen":
                    totals["codegen"] += sec
                elif name == "ThunkEmitter::EmitEntryComputation":
                    totals["emit"] += sec
                elif name == "FusionCompiler::Compile":
                    kernels += 1
                    totals["fusion_emitter_cpu"] += sec
                elif name == "TaskDispatcher::dispatch":
                    totals["codegen_cpu"] += sec
    totals["kernels"] = kernels
    return dict(totals)


def build(shape: Shape, options: dict[str, Any] | None = None, breakdown: bool = False
          ) -> dict[str, Any]:
    """Trace, lower and compile the three parts of exec's program (``batched_program``) for
    ``shape``; times and sizes are sums over the parts. ``compiled(configs, keys)`` trains with
    the compiled parts, as exec does."""
    configs, keys = shape.inputs()
    with without_evaluation(shape.no_eval):
        program = batched_program("ppo", shape.env, shape.budget())
        t0 = time.perf_counter()
        traced = program.trace(configs, keys)
        t1 = time.perf_counter()
        lowered = {part: t.lower() for part, t in traced.items()}
        t2 = time.perf_counter()
    trace_dir = tempfile.mkdtemp(prefix="hlx-prof-") if breakdown else None
    if trace_dir:
        jax.profiler.start_trace(trace_dir)
    t3 = time.perf_counter()
    parts = {part: low.compile(compiler_options=options) if options else low.compile()
             for part, low in lowered.items()}
    t4 = time.perf_counter()
    out = dict(trace=t1 - t0, lower=t2 - t1, compile=t4 - t3,
               jaxpr_eqns=sum(count_jaxpr(t.jaxpr) for t in traced.values()),
               stablehlo_ops=sum(stablehlo_ops(low) for low in lowered.values()),
               hlo_ops=sum(count_ops(c.as_text()) for c in parts.values()),
               compiled=lambda c, k: program.run(c, k, parts=parts),
               inputs=(configs, keys))
    if trace_dir:
        jax.profiler.stop_trace()
        out.update(xla_breakdown(trace_dir))
        shutil.rmtree(trace_dir, ignore_errors=True)
    return out


def count_jaxpr(closed: Any) -> int:
    """Equations of a jaxpr, counting those inside sub-jaxprs (scan bodies, pjit, ...)."""
    from jax.extend import core as jcore

    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            n += 1
            for sub in jcore.jaxprs_in_params(eqn.params):
                n += count(sub)
        return n

    try:
        return count(closed.jaxpr)
    except Exception:  # noqa: BLE001 - the count is informative only
        return -1


def row(cells: list[Any], widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))


def fmt(x: float) -> str:
    return f"{x:.2f}"


def section_phases(base: Shape, envs: list[str]) -> None:
    print("\n## Stages of one PPO program "
          f"({base.samples} samples x {base.replicates} replicates, {base.num_envs} envs x "
          f"{base.rollout_length} steps, {base.update_epochs}x{base.num_minibatches} epochs x "
          f"minibatches, {list(base.layers)} tanh, {base.num_evaluations} evaluations of "
          f"{base.eval_episodes} episodes)")
    w = [18, 6, 6, 8, 8, 10, 9, 10, 8, 9, 10]
    print(row(["env", "trace", "lower", "compile", "  HLO", "codegen", "kernels",
               "jaxpr", "shlo", "hlo_opt", "total"], w))
    print(row(["", "s", "s", "s", "passes s", "wall s", "", "eqns", "ops", "instrs", "s"], w))
    for env in envs:
        r = build(replace(base, env=env), breakdown=True)
        print(row([env, fmt(r["trace"]), fmt(r["lower"]), fmt(r["compile"]),
                   fmt(r.get("hlo_passes", float("nan"))), fmt(r.get("codegen", float("nan"))),
                   int(r.get("kernels", -1)), r["jaxpr_eqns"], r["stablehlo_ops"], r["hlo_ops"],
                   fmt(r["trace"] + r["lower"] + r["compile"])], w))
        if "codegen_cpu" in r:
            print(f"   codegen is {r['codegen_cpu']:.1f} CPU-s over the codegen threads "
                  f"({r.get('fusion_emitter_cpu', 0):.1f} CPU-s of it in the fusion emitters), "
                  f"~{1000 * r['codegen_cpu'] / max(r['kernels'], 1):.0f} ms per kernel; "
                  f"thunk emission {r.get('emit', 0):.2f} s")


def section_variants(base: Shape) -> None:
    print(f"\n## One change at a time ({base.env}; baseline first)")
    variants = [
        ("baseline", base),
        ("eval_episodes 1", replace(base, eval_episodes=1)),
        ("eval_episodes 64", replace(base, eval_episodes=64)),
        ("no evaluation*", replace(base, no_eval=True)),
        ("epochs x mb 1x1", replace(base, update_epochs=1, num_minibatches=1)),
        ("epochs x mb 8x8", replace(base, update_epochs=8, num_minibatches=8)),
        ("num_envs 64", replace(base, num_envs=64)),
        ("width 1x1", replace(base, samples=1, replicates=1)),
        ("width 64x8", replace(base, samples=64)),
        ("layers [256,256]", replace(base, layers=(256, 256))),
        ("layers [64,64,64]", replace(base, layers=(64, 64, 64))),
        ("timesteps x1/8", replace(base, total_timesteps=base.total_timesteps // 8)),
    ]
    w = [20, 6, 6, 8, 8, 8, 9, 8]
    print(row(["variant", "trace", "lower", "compile", "jaxpr", "shlo", "hlo_opt", "kernels"], w))
    for name, shape in variants:
        r = build(shape, breakdown=True)
        print(row([name, fmt(r["trace"]), fmt(r["lower"]), fmt(r["compile"]), r["jaxpr_eqns"],
                   r["stablehlo_ops"], r["hlo_ops"], int(r.get("kernels", -1))], w))
    print("  * evaluation replaced by a constant: measures the evaluation's share only")


OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("backend_opt_level 0", {"xla_backend_optimization_level": 0}),
    ("backend_opt_level 1", {"xla_backend_optimization_level": 1}),
    ("llvm_disable_expensive", {"xla_llvm_disable_expensive_passes": True}),
    ("codegen_split_count 2", {"xla_cpu_parallel_codegen_split_count": 2}),
    ("no fusion emitters", {"xla_cpu_use_fusion_emitters": False}),
]


def section_options(base: Shape, repeats: int) -> None:
    # A short budget, so the bit-for-bit check and the run time are cheap; compile time
    # hardly depends on the budget (loops are not unrolled; see the variants).
    shape = replace(base, total_timesteps=base.num_envs * base.rollout_length * 4,
                    num_evaluations=2)
    print(f"\n## Compile options, no algorithm change ({shape.env}, "
          f"{shape.total_timesteps} steps/run, {shape.samples}x{shape.replicates} lanes)")
    w = [24, 8, 8, 9, 10]
    print(row(["options", "compile", "run", "run vs", "bitwise"], w))
    print(row(["", "s", "s", "default", "same"], w))
    reference = None
    base_run = None
    for name, opts in OPTIONS:
        try:
            r = build(shape, options=opts or None)
        except Exception as exc:  # noqa: BLE001 - an option this jaxlib refuses
            print(row([name, "refused", "", "", ""], w), f"({type(exc).__name__}: {exc})"[:80])
            continue
        configs, keys = r["inputs"]
        out = jax.block_until_ready(r["compiled"](configs, keys))  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = jax.block_until_ready(r["compiled"](configs, keys))
            times.append(time.perf_counter() - t)
        run_s = min(times)
        leaves = [np.asarray(x) for x in jax.tree.leaves(out)]
        if reference is None:
            reference, base_run = leaves, run_s
        same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(reference, leaves))
        print(row([name, fmt(r["compile"]), fmt(run_s), f"{run_s / base_run:.2f}x",
                   "yes" if same else "NO"], w))


def section_cache(base: Shape) -> None:
    print(f"\n## Persistent compilation cache ({base.env})")
    directory = tempfile.mkdtemp(prefix="hlx-cache-")
    from hyperlax.exec.executor import enable_compile_cache
    saved = {k: getattr(jax.config, k) for k in (
        "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes")}
    try:
        enable_compile_cache(__import__("pathlib").Path(directory))
        jax.clear_caches()
        cold = build(base)
        files = len(os.listdir(directory))
        jax.clear_caches()
        warm = build(replace(base))  # same structure, a fresh trace: a cache hit
        # a different structure's program (another width) is a miss
        w = [34, 6, 6, 8, 6]
        print(row(["", "trace", "lower", "compile", "files"], w))
        print(row(["cold (empty cache, writes entry)", fmt(cold["trace"]), fmt(cold["lower"]),
                   fmt(cold["compile"]), files], w))
        print(row(["warm (same structure, new process*)", fmt(warm["trace"]),
                   fmt(warm["lower"]), fmt(warm["compile"]), len(os.listdir(directory))], w))
        print("  * in-process after jax.clear_caches(); a new process also pays JAX's import "
              "and the trace + lower, which the cache does not skip")
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)
        shutil.rmtree(directory, ignore_errors=True)


PLAN = """\
[sweep]
name = "profile"
recipe = "ppo_mlp_fixed_net"
env = "{env}"
num_samples = {samples}
batch_size = {batch}
seeds_per_sample = {replicates}
mode = "grouped"
seed = 0
total_timesteps = {steps}
num_evaluations = {evals}
eval_episodes = {episodes}
{structures}
[fixed]
update_epochs = {epochs}
num_minibatches = {minibatches}
normalize_observations = true
"network.actor.layer_sizes" = {layers}
"network.critic.layer_sizes" = {layers}
"network.activation" = "tanh"
{fixed}
[space]
actor_lr = {{ dist = "log_uniform", low = 1e-4, high = 1e-3 }}
{space}"""


def exec_runner(shape: Shape, sweep: bool = False) -> Any:
    """exec's runner (no compile workers: parts compile in this thread, one at a time) for a
    plan of ``shape``; with ``sweep``, 4 structures: num_envs {4, 8} x rollout_length {32, 64}
    (one batch of ``shape.samples`` samples each), everything else as ``shape``."""
    from hyperlax.compiler import compile_manifest
    from hyperlax.exec.runner import CompiledRunner

    if sweep:
        fixed, structures = "", "structures = 4"
        space = ('num_envs = { dist = "categorical", values = [4, 8] }\n'
                 'rollout_length = { dist = "categorical", values = [32, 64] }\n')
    else:
        fixed = f"num_envs = {shape.num_envs}\nrollout_length = {shape.rollout_length}\n"
        structures, space = "", ""
    text = PLAN.format(env=shape.env, samples=shape.samples * (4 if sweep else 1),
                       batch=shape.samples, replicates=shape.replicates,
                       steps=shape.total_timesteps, evals=shape.num_evaluations,
                       episodes=shape.eval_episodes, epochs=shape.update_epochs,
                       minibatches=shape.num_minibatches, layers=list(shape.layers),
                       structures=structures, fixed=fixed, space=space)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "profile.toml")
        with open(manifest, "w") as f:
            f.write(text)
        plan, _ = compile_manifest(__import__("pathlib").Path(manifest))
    return CompiledRunner(plan)


def structure_samples(runner: Any) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for sample in runner.plan.samples:
        out.setdefault(sample.structure, []).append(sample.index)
    return out


def section_parts(base: Shape) -> None:
    from hyperlax.exec.runner import PARTS

    print(f"\n## exec's parts of one program ({base.env}, {base.samples}x{base.replicates} "
          f"lanes; compile = trace + lower + XLA, one part at a time)")
    runner = exec_runner(base)
    samples = structure_samples(runner)[0]
    key = runner.key(0, len(samples))
    w = [10, 9, 8, 9]
    print(row(["part", "compile", "kernels", "hlo_opt"], w))
    totals = [0.0, 0, 0]
    for part in PARTS:
        trace_dir = tempfile.mkdtemp(prefix="hlx-prof-")
        jax.profiler.start_trace(trace_dir)
        t = time.perf_counter()
        compiled = runner.compile_part(key, part, samples, 0)
        seconds = time.perf_counter() - t
        jax.profiler.stop_trace()
        kernels = int(xla_breakdown(trace_dir).get("kernels", -1))
        shutil.rmtree(trace_dir, ignore_errors=True)
        hlo = count_ops(compiled.as_text())
        totals = [totals[0] + seconds, totals[1] + kernels, totals[2] + hlo]
        print(row([part, fmt(seconds), kernels, hlo], w))
    print(row(["all", fmt(totals[0]), totals[1], totals[2]], w))


def section_sweep(base: Shape) -> None:
    print(f"\n## A sweep over rollout shapes ({base.env}; 4 structures: num_envs {{4, 8}} x "
          f"rollout_length {{32, 64}}; {base.samples}x{base.replicates} lanes; exec's cache, "
          "compiling in this thread)")
    runner = exec_runner(base, sweep=True)
    by_structure = structure_samples(runner)
    assert len(by_structure) == 4, "the sweep should have 4 structures"
    w = [10, 9, 15, 9]
    print(row(["structure", "num_envs", "rollout_length", "compile"], w))
    total = 0.0
    for structure, samples in sorted(by_structure.items()):
        values = runner.plan.structures[structure].values
        t = time.perf_counter()
        runner.programs.get(runner.key(structure, len(samples)), samples, 0)
        seconds = time.perf_counter() - t
        total += seconds
        print(row([structure, values["num_envs"], values["rollout_length"], fmt(seconds)], w))
    counts = dict(getattr(runner.programs, "part_compiles", {}))
    print(f"  total {total:.2f} s for {runner.compiles} programs; parts compiled: "
          f"{counts or 'n/a'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["phases", "variants", "options",
                                                           "cache", "parts", "sweep"],
                        choices=["phases", "variants", "options", "cache", "parts", "sweep"])
    parser.add_argument("--env", default="gymnax.pendulum",
                        help="env of the variants/options/cache sections")
    parser.add_argument("--phase-envs", nargs="+",
                        default=["gymnax.pendulum", "gymnax.cartpole"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per option")
    args = parser.parse_args()
    base = Shape(env=args.env, samples=args.samples, replicates=args.replicates)
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, backend {jax.default_backend()}")
    if "phases" in args.sections:
        section_phases(base, args.phase_envs)
    if "variants" in args.sections:
        section_variants(base)
    if "options" in args.sections:
        section_options(base, args.repeats)
    if "cache" in args.sections:
        section_cache(base)
    if "parts" in args.sections:
        section_parts(base)
    if "sweep" in args.sections:
        section_sweep(base)


if __name__ == "__main__":
    main()
