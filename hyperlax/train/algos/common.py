"""What every training algorithm shares: the contract its module exposes and the pieces it
builds its program from. Every algorithm module exposes the same contract:

    CONFIG: the config Struct it trains (``hyperlax.hyperparams``; ``registry`` keys the
        module by its ``algorithm``)
    make_program(env_id: str, budget: Budget) -> Program
        init(config, key: jax.Array) -> carry
        train(config, carry) -> (carry, Trained): one evaluation chunk's updates
        evaluate(spec, policy, key) -> mean return of the evaluation episodes
        eval_spec(config) -> hashable: the structural values the evaluation depends on
        init_spec(config) -> hashable: the structural values ``init`` depends on

Training is ``budget.num_evaluations`` evaluation chunks (updates, then an evaluation of the
policy they leave): ``init``, then per chunk ``train`` and ``evaluate``. Exec runs them from the
host (progress and stops between calls), with the carry kept on the device, through
``hyperlax.train.batched``, as do the tests and the benchmarks.

The evaluation is a separate piece because it depends on much less than training: on the env,
the budget's episodes and the policy network's structure (``eval_spec``), not on the rollout
shape, epochs or buffers. Exec compiles it once per spec, shared by every structure that has
that spec. ``evaluate`` sees only the spec, the policy (``Trained.policy``: parameters and
whatever else acting needs) and the key that ``train`` split off for it: exactly what the
evaluation at the end of a chunk used before it was a piece of its own, so results are the same.
Training builds the policy network from the same spec (``eval_spec(config)``), so a network
option reaches the evaluation, and its key, only through the spec.

Likewise ``init`` depends on the networks, the env count and the buffers (``init_spec``), not
on the rollout length, epochs or minibatches, and exec compiles it once per init spec: it runs
a structure's ``init`` as the first structure with that spec (the same scalars, that
structure's static values). So ``init`` must give the same carry for any two configs with equal
``init_spec`` and equal scalars, bit for bit: it may build objects from other structural values
(PPO's optimizers hold a learning-rate schedule of the update count) only where its result does
not depend on them (the schedule at step 0 is the rate itself). ``tests/test_programs_split.py``
checks this for each algorithm.

``make_program`` does the Python setup that depends on the environment and the budget only;
``program`` assembles the ``Program`` from an algorithm's ``build(config)`` (one structure's
``init`` and chunk of training), its evaluation and its specs. PPO and SAC evaluate an actor:
their policy and spec are ``ActorPolicy`` and ``ActorSpec`` (``actor_spec``).
``train`` takes the algorithm's config Struct (``hyperlax.hyperparams``), registered as a pytree
(``hyperlax.train.configs``): its structural fields are static Python values, so ``train`` may
build networks and loops from them while it is traced; its scalar fields are 0-d arrays
(float32 or int32), and ``train`` must never branch in Python on them. ``key`` is the
sample-replicate's PRNG key, the only source of its randomness, network initialization
included. ``hyperlax.train.batched`` wraps the pieces as ``vmap(vmap(...))`` over samples and
replicates; that is the only way they are called (``batched_program``).

The algorithm modules import this module and ``registry`` imports them: the dependency points
one way.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, NamedTuple

import jax
import jax.numpy as jnp

from hyperlax.hyperparams import declarations
from hyperlax.hyperparams.config import NetworkShape
from hyperlax.train.obs_norm import ObsNorm


class TrainMetrics(NamedTuple):
    """What one sample-replicate's training reports, one value per evaluation point."""

    eval_steps: jax.Array    # int32 [num_evaluations]: env steps consumed at each point
    eval_returns: jax.Array  # float32 [num_evaluations]: mean return of the eval episodes
    losses: dict             # name -> float32 [num_evaluations], mean over the chunk's updates
    finite: jax.Array        # bool [num_evaluations]: parameters and losses all finite


class Trained(NamedTuple):
    """What one chunk's training hands on: to its evaluation (``policy``, ``eval_key``) and,
    with the evaluation's return, to the host (the rest, as in ``TrainMetrics``)."""

    policy: Any              # what ``evaluate`` acts with (an algorithm's own pytree)
    eval_key: jax.Array      # the key of this chunk's evaluation
    eval_steps: jax.Array    # int32: env steps consumed so far
    losses: dict             # name -> float32, mean over the chunk's updates
    finite: jax.Array        # bool: parameters and losses all finite


class Program(NamedTuple):
    """An algorithm's training as its pure pieces (see the module docstring)."""

    init: Callable       # (config, key) -> carry
    train: Callable      # (config, carry) -> (carry, Trained)
    evaluate: Callable   # (spec, policy, key) -> float32 mean return
    eval_spec: Callable  # config -> hashable spec (static values only)
    init_spec: Callable  # config -> hashable spec (static values only)


def program(build: Callable, evaluate: Callable, eval_spec: Callable,
            not_in_init: Collection[str]) -> Program:
    """The ``Program`` of an algorithm whose ``build(config)`` gives one structure's
    ``(init(key) -> carry, train_chunk(carry) -> (carry, Trained))``; ``init_spec`` is the
    structure but ``not_in_init`` (``structure_except``), the structural fields ``init`` does
    not read."""
    return Program(init=lambda config, key: build(config)[0](key),
                   train=lambda config, carry: build(config)[1](carry),
                   evaluate=evaluate, eval_spec=eval_spec,
                   init_spec=lambda config: structure_except(config, not_in_init))


# --- the evaluation of an actor's policy (PPO, SAC) ---------------------------------------------

class ActorPolicy(NamedTuple):
    """What an actor's evaluation acts with (``Trained.policy`` of PPO and SAC)."""

    actor_params: Any
    norm: ObsNorm  # frozen at the chunk's end (unused unless normalize_observations)


class ActorSpec(NamedTuple):
    """The structural values an actor's evaluation depends on (``eval_spec`` of PPO and SAC).
    A plain tuple as far as equality and hashing go: the program cache keys parts by it, within
    one plan, so one algorithm's."""

    actor: NetworkShape
    normalize: bool


def actor_spec(config: Any) -> ActorSpec:
    """``eval_spec`` of an algorithm whose evaluation acts with its ``"actor"`` network."""
    return ActorSpec(config.network("actor"), bool(config.normalize_observations))


def metrics(trained: Trained, eval_return: jax.Array) -> TrainMetrics:
    return TrainMetrics(eval_steps=trained.eval_steps, eval_returns=eval_return,
                        losses=trained.losses, finite=trained.finite)


def structure_except(config: Any, names: Collection[str]) -> tuple:
    """``config``'s structural values but ``names``, as (attribute, value) pairs: an
    ``init_spec`` that lists what does *not* matter, so a structural field added later is in the
    spec (not shared) until someone checks that ``init`` ignores it."""
    return tuple((p.attribute, _frozen(getattr(config, p.attribute)))
                 for p in declarations(type(config)).values()
                 if p.role == "structural" and p.attribute not in names)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is finite: what ``TrainMetrics.finite`` reports."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def shuffled_minibatches(key: jax.Array, batch: Any, batch_size: int,
                         num_minibatches: int) -> Any:
    """One epoch's minibatches: ``batch`` (leaves [batch_size, ...]) reordered by a
    permutation drawn from ``key`` and cut into [num_minibatches, batch_size //
    num_minibatches, ...], for a ``lax.scan`` over them."""
    order = jax.random.permutation(key, batch_size)
    return jax.tree.map(
        lambda x: x[order].reshape((num_minibatches, batch_size // num_minibatches)
                                   + x.shape[1:]), batch)


def check_config(config: Any) -> None:
    """Refuse, while tracing, a structure the compiler would have refused (a plan is input)."""
    problems = config.cross_field_problems()
    if problems:
        raise ValueError("; ".join(problems))
