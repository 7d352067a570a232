"""The one batched entry point: ``batched_program`` builds an algorithm's training vmapped over
samples x replicates, with the plan's key rule and exec's chunking by evaluations, exactly as
``hyperlax exec`` runs it. Exec's runner (``exec.runner``) builds it, and the tests, the
benchmarks and ``tools/`` train through it, so what is tested is what runs.

    program = batched_program("ppo", "gymnax.pendulum", budget)
    metrics = program.run(stack(configs), replicate_keys(seeds, replicates))

``run`` gives ``TrainMetrics`` with leading axes [samples, replicates] and a trailing
[num_evaluations] axis, on the host: what exec writes for those samples when they are one
sub-batch of that width (bit for bit on the same machine: ``tests/test_entry_point.py``).

The pieces, which exec compiles and calls itself (compiled ahead, sharded, with progress, stops
and checkpoints between calls): ``init(configs, keys)`` gives the [samples, replicates] carry;
each ``train(configs, carry)`` call runs the updates of ``group`` evaluation chunks of every
lane and returns the carry and what they hand on (``algos.Trained``, with a trailing [group]
axis); ``evaluator(spec)(policies, eval_keys)`` evaluates those ``group`` policies of every
lane. ``init`` and then ``calls`` (``num_evaluations / group``) train and evaluate calls are a
run; ``metrics`` joins a call's two. ``group`` is exec's (``plan.format.chunk_group``): one
evaluation per call, unless that makes more than ``MAX_CALLS_PER_RUN`` calls. The evaluation is
a function of the spec only, not of the configs, so one compiled evaluation serves every
structure with that spec (``algos``: the evaluation's spec).

Key rule: replicate ``r`` of a sample with seed ``s`` trains with
``fold_in(PRNGKey(s), r)``, whatever batch the sample is in and whichever lane it has.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hyperlax.hyperparams.budget import Budget
from hyperlax.plan.format import chunk_group
from hyperlax.train.algos.common import Trained, TrainMetrics, metrics
from hyperlax.train.algos.registry import get_make_program
from hyperlax.train.configs import lane, stack

__all__ = ["BatchedProgram", "Trained", "TrainMetrics", "batched_program", "lane", "metrics",
           "replicate_keys", "sample_keys", "stack"]

PARTS = ("init", "train", "evaluate")


class BatchedProgram:
    """An algorithm's pieces vmapped over samples x replicates, and ``run``, which calls them as
    exec does (see the module docstring)."""

    def __init__(self, init: Callable, train: Callable, evaluator: Callable,
                 eval_spec: Callable, init_spec: Callable, group: int, calls: int):
        self.init = init            # (configs, keys) -> carry
        self.train = train          # (configs, carry) -> (carry, Trained, trailing [group] axis)
        self.evaluator = evaluator  # spec -> (policies, eval_keys) -> returns [.., .., group]
        self.eval_spec = eval_spec  # config -> spec
        self.init_spec = init_spec  # config -> spec
        self.group = group          # evaluation chunks per train call
        self.calls = calls          # train (and evaluate) calls per run
        self._jitted: dict[Any, Callable] = {}

    def jitted(self, part: str, spec: Any = None) -> Callable:
        """``jit`` of a part, as exec compiles it: ``train`` donates its carry; ``evaluate`` is
        the evaluator of ``spec``. Kept, so calls with the same shapes reuse one executable."""
        key = (part, spec) if part == "evaluate" else part
        if key not in self._jitted:
            if part == "init":
                self._jitted[key] = jax.jit(self.init)
            elif part == "train":
                self._jitted[key] = jax.jit(self.train, donate_argnums=(1,))
            else:
                self._jitted[key] = jax.jit(self.evaluator(spec))
        return self._jitted[key]

    def trace(self, configs: Any, keys: jax.Array) -> dict[str, jax.stages.Traced]:
        """The three parts traced for these inputs: ``train`` against ``init``'s output,
        ``evaluate`` against ``train``'s."""
        init, train = self.jitted("init"), self.jitted("train")
        evaluate = self.jitted("evaluate", self.eval_spec(lane(configs, 0)))
        carry = jax.eval_shape(init, configs, keys)
        _, trained = jax.eval_shape(train, configs, carry)
        return {"init": init.trace(configs, keys), "train": train.trace(configs, carry),
                "evaluate": evaluate.trace(trained.policy, trained.eval_key)}

    def lower(self, configs: Any, keys: jax.Array) -> dict[str, jax.stages.Lowered]:
        """The three parts lowered for these inputs (for their program text, or to compile with
        options)."""
        return {part: traced.lower() for part, traced in self.trace(configs, keys).items()}

    def run(self, configs: Any, keys: jax.Array,
            compiler_options: dict[str, Any] | None = None,
            parts: dict[str, Callable] | None = None) -> TrainMetrics:
        """Train stacked ``configs`` (one structure; ``stack``) with [samples, replicates]
        ``keys`` (``replicate_keys``) as exec trains one sub-batch: ``init``, then ``calls``
        train and evaluate calls with the carry kept on the device. The metrics of every call,
        joined along the evaluation axis, on the host. ``compiler_options``: XLA options for
        compiling the parts (tests that only check training runs); exec passes none. ``parts``:
        the parts compiled already (from ``lower``, by name), for tools that time compiles."""
        if parts is None and compiler_options is not None:
            parts = {part: lowered.compile(compiler_options=compiler_options)
                     for part, lowered in self.lower(configs, keys).items()}
        if parts is None:
            init, train = self.jitted("init"), self.jitted("train")
            evaluate = self.jitted("evaluate", self.eval_spec(lane(configs, 0)))
        else:
            init, train, evaluate = (parts[part] for part in PARTS)
        carry = init(configs, keys)
        outs = []
        for _ in range(self.calls):
            carry, trained = train(configs, carry)
            outs.append(metrics(trained, evaluate(trained.policy, trained.eval_key)))
        return jax.tree.map(lambda *calls: np.concatenate(calls, axis=-1),
                            *jax.device_get(outs))


def batched_program(algorithm: str, env_id: str, budget: Budget,
                    group: int | None = None) -> BatchedProgram:
    """The entry point (see the module docstring): ``algorithm``'s program on ``env_id`` for
    ``budget``, in exec's chunks of ``chunk_group(budget.num_evaluations)`` evaluations per
    call. ``group`` (a divisor of ``num_evaluations``) other than exec's is only for measuring
    what the chunking costs (``tools/bench_chunks.py``)."""
    evaluations = budget.num_evaluations
    group = chunk_group(evaluations) if group is None else group
    if evaluations % group:
        raise ValueError(f"group {group} does not divide num_evaluations {evaluations}")
    program = get_make_program(algorithm)(env_id, budget)

    def trains(config, carry):
        return jax.lax.scan(lambda c, _: program.train(config, c), carry, None, group)

    def evaluator(spec) -> Callable:
        def evaluations(policies, eval_keys):  # one lane's ``group`` policies, in order
            return jax.lax.scan(lambda _, pk: (None, program.evaluate(spec, *pk)), None,
                                (policies, eval_keys))[1]

        return jax.vmap(jax.vmap(evaluations))

    return BatchedProgram(init=_lanes(program.init), train=_lanes(trains), evaluator=evaluator,
                          eval_spec=program.eval_spec, init_spec=program.init_spec,
                          group=group, calls=evaluations // group)


def _lanes(fn: Callable) -> Callable:
    """``fn(config, x)`` over [samples, replicates]: one config per sample."""
    return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, 0))


def sample_keys(seed: int, replicates: int) -> jax.Array:
    """The [replicates] keys of one sample."""
    base = jax.random.PRNGKey(seed)
    return jnp.stack([jax.random.fold_in(base, r) for r in range(replicates)])


def replicate_keys(seeds: list[int], replicates: int) -> jax.Array:
    """The [samples, replicates] keys of samples with these training seeds."""
    return jnp.stack([sample_keys(s, replicates) for s in seeds])
