"""The training budget: how many env steps a configuration trains for, and how it is evaluated.
Declared once: a recipe's ``[settings]`` table is a Budget, ``[sweep]`` may override each field,
the plan's Settings records the result, and the runtime trains to it. JAX-free."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# Step counters inside the training programs are int32.
TotalTimesteps = Annotated[int, Meta(ge=1, le=2**31 - 1, description="env steps each "
                                     "configuration trains for (all of its envs together)")]
NumEvaluations = Annotated[int, Meta(ge=1, le=100_000,
                                     description="evaluation points, evenly spaced")]
EvalEpisodes = Annotated[int, Meta(ge=1, le=100_000, description="episodes per evaluation "
                                                                 "point, run in parallel")]


class Budget(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    total_timesteps: TotalTimesteps
    num_evaluations: NumEvaluations
    eval_episodes: EvalEpisodes

    def updates(self, steps_per_update: int) -> tuple[int, int]:
        """(updates per evaluation chunk, total updates run). Leftover steps are not run, so
        the budget actually trained is ``num_evaluations * updates_per_eval * steps_per_update``
        (at least one update per chunk)."""
        per_eval = max(self.total_timesteps // steps_per_update // self.num_evaluations, 1)
        return per_eval, per_eval * self.num_evaluations

    def steps_trained(self, steps_per_update: int) -> int:
        return self.updates(steps_per_update)[1] * steps_per_update
