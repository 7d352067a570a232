"""A population-based training sweep's lineage and schedules, read from its decisions (JAX-free).

The decisions (``rungs/rung_<r>.json``, read through ``decide.rung_views``) say, after each
interval r, who copied whom (``exploit``: loser -> winner) and every member's values for
interval r + 1 (``values``; the plan's for interval 0). From them:

- a member's **lineage**: the copies it made, each at the interval after which it was made and
  the env steps trained by then;
- a member's **schedule**, resolved through its ancestry: the values its weights were trained
  with, interval by interval. During the last interval its weights are its own; if it copied w
  after interval r, then during interval r (and before) its weights were w's, so the values of
  interval r are w's, and so on backwards. This is what feeding a schedule back reproduces:
  one member trained from scratch through the same values.

Whatever names a decision's ``values`` hold are scheduled: nothing here lists them.
Env steps at the start of each interval come from the member's curves (``eval_steps``, env
steps at each evaluation), or, where it has none, from the budget's nominal share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hyperlax.exec.halving import decide as H
from hyperlax.plan.format import Plan


@dataclass(frozen=True)
class Copy:
    """Member ``sample`` took the weights (and values, perturbed) of ``copied``."""

    interval: int              # after this interval
    step: int                  # env steps trained by then: the next interval starts here
    sample: int
    copied: int
    value: float | None        # the metric each ranked by, over the interval
    copied_value: float | None


@dataclass(frozen=True)
class Stage:
    """One interval of a member's schedule: whose weights it carried, and their values."""

    interval: int
    evaluations: int           # the evaluations trained before it
    step: int                  # env steps trained before it
    weights_of: int            # the member whose weights these were during the interval
    values: dict[str, Any]


@dataclass
class History:
    """What the decisions written so far tell of a PBT sweep."""

    plan: Plan
    decisions: list[H.Decision]                  # the ones written, interval by interval
    during: list[dict[int, dict[str, Any]]]      # per known interval: each member's values
    eval_steps: dict[int, np.ndarray]            # member -> env steps at each evaluation

    @property
    def intervals(self) -> int:
        """How many intervals the plan has."""
        halving = self.plan.halving
        assert halving is not None
        return len(halving.rungs)

    @property
    def known(self) -> int:
        """How many intervals' values are known (every one, once every decision is made)."""
        return len(self.during)

    def names(self) -> list[str]:
        """The scheduled hyperparameters: the explored first, then the others the decisions
        carry, in the plan's order."""
        held = {n for stage in self.during for values in stage.values() for n in values}
        explored = [n for n in self.explored() if n in held]
        rest = [r.name for r in self.plan.hyperparams if r.name in held and r.name not in
                explored]
        return explored + rest + sorted(held - set(explored) - set(rest))

    def explored(self) -> list[str]:
        assert self.plan.pbt is not None
        return list(self.plan.pbt.explore)

    def start(self, interval: int) -> int:
        """The evaluations trained before ``interval``."""
        return H.rung_span(self.plan, interval)[0]

    def step_at(self, sample: int, evaluations: int) -> int:
        """Env steps ``sample`` had trained after ``evaluations`` evaluations: from its curves
        where they reach that far, else the budget's share."""
        if evaluations <= 0:
            return 0
        steps = self.eval_steps.get(sample)
        if steps is not None and len(steps) >= evaluations:
            return int(steps[evaluations - 1])
        s = self.plan.settings
        return round(s.total_timesteps * evaluations / s.num_evaluations)

    def end_step(self, sample: int) -> int:
        """Env steps at the end of the last known interval: of training, once all is decided."""
        return self.step_at(sample, H.rung_span(self.plan, self.known - 1)[1])

    def copies(self) -> list[Copy]:
        """Every copy, interval by interval, losers in sample order."""
        out = []
        for d in self.decisions:
            value = dict(d.ranking)
            for loser, winner in d.exploit.items():
                out.append(Copy(d.rung, self.step_at(loser, d.evaluations), loser, winner,
                                value.get(loser), value.get(winner)))
        return out

    def lineage(self, sample: int) -> list[Copy]:
        """The copies ``sample`` made."""
        return [c for c in self.copies() if c.sample == sample]

    def carriers(self, sample: int) -> list[int]:
        """Per known interval, the member whose weights ``sample``'s were during it: walking
        back from the last known interval, through each copy it (or its ancestor) made."""
        carrier = sample
        out = [carrier]
        for interval in range(self.known - 2, -1, -1):
            carrier = self.decisions[interval].exploit.get(carrier, carrier)
            out.append(carrier)
        return out[::-1]

    def schedule(self, sample: int) -> list[Stage]:
        """``sample``'s schedule resolved through its ancestry (see the module docstring)."""
        names = self.names()
        out = []
        for interval, carrier in enumerate(self.carriers(sample)):
            start = self.start(interval)
            values = self.during[interval][carrier]
            out.append(Stage(interval, start, self.step_at(sample, start), carrier,
                             {n: values[n] for n in names if n in values}))
        return out

    def last_values(self) -> dict[int, dict[str, Any]]:
        """Each member's values during the last known interval: the ones its final weights
        were trained with last."""
        return self.during[-1]


def history(plan: Plan, views: Sequence[H.RungView],
            eval_steps: dict[int, np.ndarray] | None = None) -> History:
    """The history of ``plan``'s PBT sweep from its rung views (``decide.rung_views``);
    ``eval_steps``: each member's env steps at its evaluations, where its curves were read."""
    assert plan.pbt is not None and plan.halving is not None
    decisions: list[H.Decision] = []
    for view in views:
        if view.decision is None:
            break
        decisions.append(view.decision)
    during = [first_values(plan, decisions[0] if decisions else None)]
    for d in decisions:
        # what a decision does not say a member goes on with: a replayed schedule's values
        # (``[pbt] schedule``: every member trains interval k with its k-th table), else its own
        replay = _replayed(plan, d.rung + 1)
        during.append({i: {**during[-1][i], **replay, **d.values.get(i, {})}
                       for i in during[-1]})
    return History(plan, decisions, during, dict(eval_steps or {}))


def _replayed(plan: Plan, interval: int) -> dict[str, Any]:
    """The values a replayed schedule gives ``interval`` (none for a PBT plan without one)."""
    schedule = getattr(plan.pbt, "schedule", None) or []
    return dict(schedule[interval]) if interval < len(schedule) else {}


def first_values(plan: Plan, first: H.Decision | None) -> dict[int, dict[str, Any]]:
    """Each member's values during the first interval: the plan's, of every name the
    decisions carry (and of the explored ones, before any decision is made)."""
    names = set(plan.pbt.explore if plan.pbt is not None else [])
    if first is not None:
        names |= {n for values in first.values.values() for n in values}
    start = H.explored_before(plan, None) or {}
    out = {}
    for sample in plan.samples:
        values = plan.sample_values(sample.index)
        out[sample.index] = {**{n: values[n] for n in sorted(names) if n in values},
                             **_replayed(plan, 0), **start.get(sample.index, {})}
    return out
