"""Execute a plan's entries: the loop, skipping, compile cache, outputs and markers.

The executor never samples, groups or slices: it runs exactly the sub-batches the plan lists,
each as one call of ``jit(vmap(vmap(train)))`` over (padded) samples x replicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import jax
import jax.numpy as jnp
import numpy as np

from hyperlax.planfile import Entry, Plan
from hyperlax.runtime.algos import TrainSettings, get_make_train, num_updates
from hyperlax.runtime.outputs import EntryResult, SubBatchResult, pause_point, write_entry
from hyperlax.spec.params import steps_per_update
from hyperlax.store import SweepDir, storage_error


def enable_compile_cache(directory: Path) -> None:
    """Persist compiled XLA programs on disk, so a resumed or repeated exec skips compiles."""
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@dataclass
class CompiledRunner:
    """One compiled program per (structure, width): every call of the same shape reuses it."""

    plan: Plan
    compiles: int = 0
    compile_seconds: float = 0.0
    entry: int = -1           # the entry being run, for the test-only pause hook
    _cache: dict[tuple[int, int], Callable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.plan.settings
        self.settings = TrainSettings(s.total_timesteps, s.num_evaluations, s.eval_episodes)
        self.scalar_names = [r.name for r in self.plan.hyperparams if r.role == "scalar"]
        self.make_train = get_make_train(s.algorithm)

    def inputs(self, samples: list[int], width: int) -> tuple[dict[str, jax.Array], jax.Array]:
        """The vmapped pytree of scalar hyperparameters and the [width, replicates] keys.
        Padding lanes repeat the first sample; their results are dropped by the caller."""
        lanes = samples + [samples[0]] * (width - len(samples))
        values = [self.plan.sample_values(i) for i in lanes]
        hp = {n: jnp.asarray([v[n] for v in values], dtype=jnp.float32)
              for n in self.scalar_names}
        replicates = self.plan.settings.seeds_per_sample
        keys = jnp.stack([
            jnp.stack([jax.random.fold_in(jax.random.PRNGKey(self.plan.samples[i].seed), r)
                       for r in range(replicates)])
            for i in lanes])
        return hp, keys

    def compiled(self, structure: int, hp: dict, keys: jax.Array) -> tuple[Callable, float]:
        width = keys.shape[0]
        key = (structure, width)
        if key in self._cache:
            return self._cache[key], 0.0
        values = self.plan.structures[structure].values
        train = self.make_train(self.plan.settings.env, values, self.settings)
        batched = jax.jit(jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, 0)))
        pause_point("compile", self.entry)
        start = time.perf_counter()
        executable = batched.lower(hp, keys).compile()
        seconds = time.perf_counter() - start
        self.compiles += 1
        self.compile_seconds += seconds
        self._cache[key] = executable
        return executable, seconds

    def run(self, structure: int, samples: list[int], width: int) -> SubBatchResult:
        hp, keys = self.inputs(samples, width)
        executable, compile_seconds = self.compiled(structure, hp, keys)
        start = time.perf_counter()
        metrics = jax.block_until_ready(executable(hp, keys))
        seconds = time.perf_counter() - start
        keep = len(samples)
        values = self.plan.structures[structure].values
        per_update = steps_per_update(self.plan.settings.algorithm, values)
        _, updates = num_updates(self.settings, per_update)
        return SubBatchResult(
            samples=samples,
            eval_steps=np.asarray(metrics.eval_steps)[0, 0],
            returns=np.asarray(metrics.eval_returns)[:keep],
            losses={k: np.asarray(v)[:keep] for k, v in metrics.losses.items()},
            finite=np.asarray(metrics.finite)[:keep],
            steps_per_run=updates * per_update,
            train_seconds=seconds,
            compile_seconds=compile_seconds,
        )


@dataclass
class ExecReport:
    total: int
    skipped: int
    ran: int
    compiles: int
    compile_seconds: float
    env_steps: int
    seconds: float


def execute(plan: Plan, plan_id: str, plan_bytes: bytes, root: Path, *,
            progress: Any = None, entries: list[int] | None = None,
            redo: Collection[str] = ()) -> ExecReport:
    """Run every incomplete entry of ``plan`` (or of ``entries``) into ``root``, in plan order;
    entries whose path is in ``redo`` run again even though marked complete (the CLI passes
    the corrupt ones when asked to). A failed write raises StorageError: the entry being
    written stays unmarked, and entries completed before it keep their markers."""
    sweep = SweepDir(root)
    try:
        sweep.claim(plan_bytes, plan_id)
    except OSError as exc:
        raise storage_error(root, exc, "cannot set up the sweep directory",
                            "free disk space or fix permissions, or pass another "
                            "--output-root") from None
    runner = CompiledRunner(plan)
    selected = [plan.entries[i] for i in entries] if entries is not None else plan.entries
    todo = [e for e in selected if e.path in redo or sweep.state(e.path) != "done"]
    skipped = len(selected) - len(todo)
    if progress:
        progress.start(total=len(selected), skipped=skipped,
                       steps_total=sum(_entry_steps(plan, e) for e in todo))
    started = time.perf_counter()
    env_steps = 0
    for entry in todo:
        pause_point("entry-start", entry.index)
        runner.entry = entry.index
        result = run_entry(runner, entry)
        try:
            write_entry(sweep, plan, plan_id, entry, result)
        except OSError as exc:
            raise storage_error(sweep.entry_dir(entry.path), exc, "cannot write this entry's "
                                "outputs; it is not marked complete",
                                "free disk space or fix permissions, then run the same command "
                                "again: complete entries are kept and this one is redone"
                                ) from None
        steps = sum(sb.steps_per_run * len(sb.samples) for sb in result.sub_batches)
        env_steps += steps * plan.settings.seeds_per_sample
        if progress:
            progress.entry_done(entry, result, steps * plan.settings.seeds_per_sample)
    seconds = time.perf_counter() - started
    if progress:
        progress.finish()
    return ExecReport(total=len(selected), skipped=skipped, ran=len(todo),
                      compiles=runner.compiles, compile_seconds=runner.compile_seconds,
                      env_steps=env_steps, seconds=seconds)


def run_entry(runner: CompiledRunner, entry: Entry) -> EntryResult:
    start = time.perf_counter()
    subs = [runner.run(sb.structure, sb.samples, sb.width) for sb in entry.sub_batches]
    return EntryResult(sub_batches=subs, seconds=time.perf_counter() - start)


def _entry_steps(plan: Plan, entry: Entry) -> int:
    s = plan.settings
    settings = TrainSettings(s.total_timesteps, s.num_evaluations, s.eval_episodes)
    total = 0
    for sb in entry.sub_batches:
        per_update = steps_per_update(s.algorithm, plan.structures[sb.structure].values)
        total += num_updates(settings, per_update)[1] * per_update * len(sb.samples)
    return total * s.seeds_per_sample


