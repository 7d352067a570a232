"""Running one sub-batch: its compiled program, its inputs, and its evaluation chunks.

A sub-batch runs ``batched_program``'s ``init`` once and then its ``chunk`` once per evaluation
point (``schedule.chunk_group`` points per call when there are very many), each a separate call
from the host with the carry kept on the device (and donated to the next call). Between two
chunks the host reports progress (steps, the latest evaluation returns) and looks for a stop
(``stopping.check``). The next chunk is dispatched before the previous one's metrics are read,
so the device never waits for the host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import numpy as np

from hyperlax import stopping
from hyperlax.planfile import Plan
from hyperlax.runtime.batched import batched_program, replicate_keys, stack
from hyperlax.runtime.outputs import SubBatchResult, pause_point
from hyperlax.runtime.programs import ProgramCache
from hyperlax.runtime.schedule import ProgramKey, chunk_group, padded_width
from hyperlax.runtime.sharding import Sharded

PARTS = ("init", "chunk")


@dataclass
class CompiledRunner:
    """One compiled program per (structure, width, device count): every call of the same shape
    reuses it. With ``devices`` (more than one local device), each sub-batch's sample axis is
    split across them and widths are rounded up to a multiple of their number. With
    ``compile_workers`` >= 1, programs compile ahead in that many threads (``want``)."""

    plan: Plan
    devices: list[Any] | None = None
    compile_workers: int = 0
    listener: Any = None      # progress: .chunk(steps, latest returns), .compiled(n, seconds)
    entry: int = -1           # the entry being run, for the test-only pause hook

    def __post_init__(self) -> None:
        s = self.plan.settings
        self.budget = s.budget
        self.group = chunk_group(self.budget.num_evaluations)
        self.calls = self.budget.num_evaluations // self.group
        self.program = batched_program(s.algorithm, s.env, self.budget, self.group)
        many = self.devices is not None and len(self.devices) > 1
        self.sharded = Sharded(self.devices) if many else None
        self.num_devices = len(self.devices) if many else 1
        self.programs = ProgramCache(self._compile_part, PARTS, workers=self.compile_workers,
                                     listener=self)

    @property
    def compiles(self) -> int:
        return self.programs.compiles

    @property
    def compile_seconds(self) -> float:
        return self.programs.compile_seconds()

    def key(self, structure: int, width: int) -> ProgramKey:
        return ProgramKey(structure, padded_width(width, self.num_devices), self.num_devices)

    def want(self, upcoming: Any) -> None:
        """The sub-batches (``schedule.Use``) that run next, the current one first."""
        self.programs.want(upcoming)

    def inputs(self, samples: list[int], width: int) -> tuple[Any, jax.Array]:
        """The stacked configs (scalars vmapped, structure static) and [width, replicates] keys,
        placed on the devices. Padding lanes repeat the first sample; their results are dropped
        by the caller."""
        lanes = samples + [samples[0]] * (width - len(samples))
        configs = stack([self.plan.sample_config(i) for i in lanes])
        keys = replicate_keys([self.plan.samples[i].seed for i in lanes],
                              self.plan.settings.seeds_per_sample)
        if self.sharded:
            return self.sharded.place((configs, keys))
        return configs, keys

    def _jit(self, fn: Callable, donate: bool = False) -> Any:
        # A fresh function per compile: jax's trace caches are keyed on it, so nothing of a
        # dropped program stays alive in them.
        def fresh(a: Any, b: Any) -> Any:
            return fn(a, b)

        if self.sharded:
            return self.sharded.wrap(fresh, donate=donate)
        return jax.jit(fresh, donate_argnums=(1,) if donate else ())

    def _compile_part(self, key: ProgramKey, part: str, samples: list[int], entry: int) -> Any:
        """Trace, lower and compile one part of program ``key``, from ``samples``' inputs (only
        their shapes and structure matter)."""
        configs, keys = self.inputs(samples, key.width)
        if part == "init":
            pause_point("compile", entry)
            return self._jit(self.program.init).lower(configs, keys).compile()
        carry = jax.eval_shape(self._jit(self.program.init), configs, keys)
        return self._jit(self.program.chunk, donate=True).lower(configs, carry).compile()

    def compiled(self, done: int, seconds: float) -> None:
        if self.listener is not None:
            self.listener.compiled(done, seconds)

    def run(self, structure: int, samples: list[int], width: int) -> SubBatchResult:
        key = self.key(structure, width)
        parts, compile_seconds = self.programs.get(key, samples, self.entry)
        configs, keys = self.inputs(samples, key.width)
        keep, replicates = len(samples), self.plan.settings.seeds_per_sample
        steps_per_run = self.budget.steps_trained(
            self.plan.sample_config(samples[0]).steps_per_update())
        steps_per_call = steps_per_run // self.calls * keep * replicates
        pause_point("train", self.entry)
        start = time.perf_counter()
        carry = parts["init"](configs, keys)
        outs: list[Any] = []
        for _ in range(self.calls):
            pause_point("chunk", self.entry)
            carry, metrics = parts["chunk"](configs, carry)  # dispatched; runs on the device
            if outs:
                self._report(outs[-1], samples, steps_per_call)  # waits for the previous one
            stopping.check()  # between chunks
            outs.append(metrics)
        self._report(outs[-1], samples, steps_per_call)
        stopping.check()  # a stuck training call: the stop's watcher ends the process
        host = jax.device_get(outs)
        seconds = time.perf_counter() - start

        def joined(leaves: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([np.asarray(x) for x in leaves], axis=-1)

        return SubBatchResult(
            samples=samples,
            eval_steps=joined([m.eval_steps for m in host])[0, 0],
            returns=joined([m.eval_returns for m in host])[:keep],
            losses={k: joined([m.losses[k] for m in host])[:keep] for k in host[0].losses},
            finite=joined([m.finite for m in host])[:keep],
            steps_per_run=steps_per_run,
            train_seconds=seconds,
            compile_seconds=compile_seconds,
        )

    def _report(self, metrics: Any, samples: list[int], steps: int) -> None:
        latest = np.asarray(metrics.eval_returns)[:len(samples), :, -1].mean(axis=1)
        if self.listener is not None:
            self.listener.chunk(steps, dict(zip(samples, latest.tolist())))

    def close(self) -> None:
        self.programs.close()
