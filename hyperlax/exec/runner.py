"""Running one sub-batch: its compiled program, its inputs, and its evaluation chunks.

A sub-batch runs ``batched_program``'s ``init`` once and then, once per evaluation point
(``schedule.chunk_group`` points per call when there are very many), its ``train`` and its
``evaluate``, each a separate call from the host with the carry kept on the device (and donated
to the next call); the evaluation takes the policy and key that ``train`` returned, still on the
device. Between two chunks the host reports progress (steps, the latest evaluation returns) and
looks for a stop (``stopping.check``). The next chunk is dispatched before the previous one's
metrics are read, so the device never waits for the host. ``BatchedProgram.run`` (what the
tests and benchmarks train) is this loop without the host's work between the calls.

The three parts are compiled separately (``programs.ProgramCache``), each keyed by what it
depends on (``part_key``): ``train`` is the program's own; ``evaluate`` is keyed by the
evaluation's spec (the policy network: ``algos``), width and devices, so structures that differ
in their rollout shape, epochs, env count or buffers share one compiled evaluation; ``init`` is
keyed by its spec (the networks, env count, buffers), width and devices, so structures that
differ in their rollout length, epochs or minibatches share one. A shared ``init`` was compiled
for the first structure with its spec (plan order), and every structure with that spec runs it
with its own scalars under that structure's static values (``init_configs``), which ``init``
does not read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import jax
import numpy as np

from hyperlax.exec import stopping
from hyperlax.plan.format import Plan
from hyperlax.train.batched import PARTS, batched_program, metrics, replicate_keys, stack
from hyperlax.exec.checkpoints.snapshots import Snapshot, host_leaves, join_metrics, metrics_arrays
from hyperlax.train.configs import as_data
from hyperlax.exec.outputs import SubBatchResult
from hyperlax.exec.programs import ProgramCache
from hyperlax.exec.schedule import ProgramKey, padded_lanes, padded_width
from hyperlax.exec.sharding import Sharded


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

    def __post_init__(self) -> None:
        s = self.plan.settings
        self.budget = s.budget
        # the one entry point: what the tests and benchmarks train is what this runs
        self.program = batched_program(s.algorithm, s.env, self.budget)
        self.group, self.calls = self.program.group, self.program.calls
        many = self.devices is not None and len(self.devices) > 1
        self.sharded = Sharded(self.devices) if many else None
        self.num_devices = len(self.devices) if many else 1
        self.programs = ProgramCache(self.compile_part, PARTS, workers=self.compile_workers,
                                     listener=self, part_key=self.part_key)
        self._first_sample: dict[int, int] = {}
        for sample in self.plan.samples:
            self._first_sample.setdefault(sample.structure, sample.index)
        self._specs: dict[tuple[str, int], Hashable] = {}
        self._init_owner: dict[int, int] = {}
        self._carry_shapes: dict[ProgramKey, Any] = {}  # init's abstract output per program

    @property
    def compiles(self) -> int:
        return self.programs.compiles

    @property
    def compile_seconds(self) -> float:
        return self.programs.compile_seconds()

    def key(self, structure: int, width: int) -> ProgramKey:
        return ProgramKey(structure, padded_width(width, self.num_devices), self.num_devices)

    def spec(self, part: str, structure: int) -> Hashable:
        """A structure's ``init`` or ``evaluate`` spec (``algos``), from its first sample."""
        if (part, structure) not in self._specs:
            config = self.plan.sample_config(self._first_sample[structure])
            of = self.program.init_spec if part == "init" else self.program.eval_spec
            self._specs[part, structure] = of(config)
        return self._specs[part, structure]

    def part_key(self, key: ProgramKey, part: str) -> Hashable:
        """What a compiled part depends on (besides the plan's env and budget, fixed here)."""
        if part == "train":
            return part, key
        return part, self.spec(part, key.structure), key.width, key.devices

    def init_owner(self, structure: int) -> int:
        """The first structure (plan order) whose ``init`` spec is this structure's."""
        if structure not in self._init_owner:
            spec = self.spec("init", structure)
            self._init_owner[structure] = next(
                s for s in sorted(self._first_sample) if self.spec("init", s) == spec)
        return self._init_owner[structure]

    def init_configs(self, configs: Any, structure: int) -> Any:
        """``configs`` (of ``structure``) as the shared ``init`` takes them: the same scalars,
        with the static values of the structure it was compiled for."""
        owner = self.init_owner(structure)
        if owner == structure:
            return configs
        like = as_data(self.plan.sample_config(self._first_sample[owner]))
        return jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(configs))

    def want(self, upcoming: Any) -> None:
        """The sub-batches (``schedule.Use``) that run next, the current one first."""
        self.programs.want(upcoming)

    def inputs(self, samples: list[int], width: int,
               explored: dict[int, dict[str, Any]] | None = None) -> tuple[Any, jax.Array]:
        """The stacked configs (scalars vmapped, structure static) and [width, replicates] keys,
        placed on the devices. Padding lanes repeat the first sample; their results are dropped
        by the caller. ``explored``: PBT's values of each sample in this interval (scalars
        only: the same program runs them)."""
        lanes = padded_lanes(samples, width)
        configs = stack([self.plan.sample_config(i, explored and explored[i]) for i in lanes])
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

    def compile_part(self, key: ProgramKey, part: str, samples: list[int]) -> Any:
        """Trace, lower and compile one part of program ``key``, from ``samples``' inputs (only
        their shapes and structure matter)."""
        configs, keys = self.inputs(samples, key.width)
        if part == "init":
            init = self._jit(self.program.init)
            return init.lower(self.init_configs(configs, key.structure), keys).compile()
        carry = self._carry_shape(key)
        train = self._jit(self.program.train, donate=True)
        if part == "train":
            return train.lower(configs, carry).compile()
        _, trained = jax.eval_shape(train, configs, carry)
        evaluate = self._jit(self.program.evaluator(self.spec("evaluate", key.structure)))
        return evaluate.lower(trained.policy, trained.eval_key).compile()

    def compiled(self, done: int, seconds: float, again: int = 0) -> None:
        if self.listener is not None:
            self.listener.compiled(done, seconds, again)

    def _carry_shape(self, key: ProgramKey) -> Any:
        """``init``'s abstract output for program ``key`` (shapes, dtypes, shardings): what
        ``train`` and ``evaluate`` compile against and a checkpoint must match. Traced once
        per program; the parts' compile threads and the checkpoints share it."""
        if key not in self._carry_shapes:
            configs, keys = self.inputs([self._first_sample[key.structure]], key.width)
            self._carry_shapes[key] = jax.eval_shape(self._jit(self.program.init), configs,
                                                     keys)
        return self._carry_shapes[key]

    def carry_like(self, structure: int, width: int) -> list[Any]:
        """The shapes and dtypes of the carry program ``(structure, width)`` takes, leaf by
        leaf (what a checkpoint must match)."""
        return jax.tree.leaves(self._carry_shape(self.key(structure, width)))

    def _place(self, structure: int, width: int, leaves: list[np.ndarray]) -> Any:
        """A host carry (its leaves) back on the devices, as the program's tree."""
        shape = self._carry_shape(self.key(structure, width))
        tree = jax.tree.unflatten(jax.tree.structure(shape), leaves)
        return self.sharded.place(tree) if self.sharded else jax.device_put(tree)

    def run(self, structure: int, samples: list[int], width: int, *,
            start: Snapshot | None = None, end_calls: int | None = None,
            save: Callable[[Snapshot], None] | None = None,
            due: Callable[[int], bool] = lambda calls: False,
            keep_carry: bool = False,
            training: Callable[[], None] | None = None,
            explored: dict[int, dict[str, Any]] | None = None) -> SubBatchResult:
        """Train the sub-batch from ``init`` (or from ``start``, a snapshot of an earlier run:
        a checkpoint, or the end of the rung before) up to ``end_calls`` calls (default: the
        whole budget). After each call for which ``due(calls done)`` holds, ``save`` gets a
        snapshot (the carry copied to the host, the metrics so far). ``keep_carry``: the
        result holds the final carry too (a rung's end). ``training()`` is called once its
        program is compiled, right before the first training call. ``explored``: PBT's values
        of each sample in this interval, over the plan's."""
        key = self.key(structure, width)
        end = self.calls if end_calls is None else end_calls
        first = 0 if start is None else start.calls
        keep, replicates = len(samples), self.plan.settings.seeds_per_sample
        steps_per_run = self.budget.steps_trained(
            self.plan.sample_config(samples[0]).steps_per_update())
        steps_per_call = steps_per_run // self.calls * keep * replicates
        before = None if start is None else start.metrics
        seconds, compile_seconds = 0.0 if start is None else start.train_seconds, 0.0
        carry_leaves = None if start is None else start.carry
        host: list[Any] = []
        if first < end:  # a snapshot at the end needs no program at all
            parts, compile_seconds = self.programs.get(key, samples)
            configs, keys = self.inputs(samples, key.width, explored)
            if training is not None:
                training()
            started = time.perf_counter()
            if start is None:
                carry = parts["init"](self.init_configs(configs, structure), keys)
            else:
                carry = self._place(structure, width, start.carry)
            outs: list[Any] = []
            for calls in range(first + 1, end + 1):
                carry, trained = parts["train"](configs, carry)  # dispatched; runs on the device
                returns = parts["evaluate"](trained.policy, trained.eval_key)  # after it, there
                if outs:
                    self._report(outs[-1], samples, steps_per_call)  # waits for the previous one
                stopping.check()  # between chunks
                outs.append(metrics(trained, returns))
                if save is not None and due(calls):
                    # the carry is donated to the next call: copied to the host before it
                    save(Snapshot(calls=calls, carry=host_leaves(carry),
                                  metrics=join_metrics(before,
                                                       metrics_arrays(jax.device_get(outs))),
                                  train_seconds=seconds + time.perf_counter() - started))
            self._report(outs[-1], samples, steps_per_call)
            stopping.check()  # a stuck training call: the stop's watcher ends the process
            host = jax.device_get(outs)
            carry_leaves = host_leaves(carry) if keep_carry else None
            seconds += time.perf_counter() - started
        joined = join_metrics(before, metrics_arrays(host) if host else None)
        return SubBatchResult(
            samples=samples,
            eval_steps=joined["eval_steps"][0, 0],
            returns=joined["eval_returns"][:keep],
            losses={k[len("loss/"):]: v[:keep] for k, v in joined.items()
                    if k.startswith("loss/")},
            finite=joined["finite"][:keep],
            steps_per_run=steps_per_run // self.calls * end,
            train_seconds=seconds,
            compile_seconds=compile_seconds,
            final_carry=carry_leaves if keep_carry else None,
            steps_now=steps_per_run // self.calls * (end - first),
            train_seconds_now=seconds - (0.0 if start is None else start.train_seconds),
        )

    def _report(self, metrics: Any, samples: list[int], steps: int) -> None:
        latest = np.asarray(metrics.eval_returns)[:len(samples), :, -1].mean(axis=1)
        if self.listener is not None:
            self.listener.chunk(steps, dict(zip(samples, latest.tolist())))

    def close(self) -> None:
        self.programs.close()
