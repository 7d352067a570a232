"""The changes of hyperlax that move a re-planned manifest, so ``hyperlax check`` can say that a
plan differs because hyperlax changed (not the manifest) and name the change. JAX-free.

Each change names what it touches: recipes (a built-in recipe's text changed), hyperparameters
(added to an algorithm, or their role changed) or, for a change of every plan, nothing. CHANGELOG.md
says the same for people; tests/test_compat.py checks that each change here is there too.
Versions before 0.2 were all called 0.1.0, so a 0.1.0 plan is matched by content, not version.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hyperlax.hyperparams import DQNConfig, PPOConfig
from hyperlax.plan.format import Plan, version_tuple


class Change(NamedTuple):
    version: str                      # the release that made it
    text: str                         # one line, as in CHANGELOG.md
    recipes: tuple[str, ...] = ()     # built-in recipes whose text it changed
    hyperparams: tuple[str, ...] = ()  # hyperparameters it added or changed the role of
    every_plan: bool = False          # it changes every plan written since
    config: type | None = None        # the algorithm whose hyperparameters it names


CHANGES: tuple[Change, ...] = (
    Change("0.1.0", "DQN's target_update_period and warmup_steps became data (scalar): one "
                    "compile serves every value",
           hyperparams=("target_update_period", "warmup_steps"), config=DQNConfig),
    Change("0.1.0", "PPO gained standardize_advantages (default true) and decay_learning_rates "
                    "(default false): their defaults do what PPO did before",
           hyperparams=("standardize_advantages", "decay_learning_rates"), config=PPOConfig),
    Change("0.1.0", "recipe ppo_mlp_no_network_search samples the original system's space "
                    "(relu; decay_learning_rates, normalize_observations and "
                    "standardize_advantages sampled)", recipes=("ppo_mlp_no_network_search",)),
    Change("0.1.0", "recipe ppo_mlp carries the original system's space, defaults and budget "
                    "(1M env steps, 5 evaluations, [256, 256] silu networks)",
           recipes=("ppo_mlp",)),
    Change("0.1.0", "recipe dqn_mlp carries the original system's space (network.activation "
                    "searched, epsilon_decay_fraction pinned)", recipes=("dqn_mlp",)),
    Change("0.1.0", "recipe sac_mlp carries the original system's space, defaults and budget",
           recipes=("sac_mlp",)),
    Change("0.1.0", "PPO gained clip_value_loss, grad_clip_mode and per-network activation, "
                    "layer norm and torso (network.actor.*, network.critic.*, network.torso); "
                    "their defaults do what PPO did before",
           hyperparams=("clip_value_loss", "grad_clip_mode", "network.actor.activation",
                        "network.actor.layer_norm", "network.critic.activation",
                        "network.critic.layer_norm", "network.torso"), config=PPOConfig),
    Change("0.1.0", "DQN gained dueling, max_abs_reward, network.q.activation, "
                    "network.q.layer_norm and network.torso, and double_q became data (scalar); "
                    "their defaults do what DQN did before",
           hyperparams=("dueling", "max_abs_reward", "network.q.activation",
                        "network.q.layer_norm", "network.torso", "double_q"), config=DQNConfig),
    Change("0.2.0", "plans record hyperlax 0.2.0 (a new plan id; that alone keeps the results id)",
           every_plan=True),
    Change("0.2.0", "a manifest says whether the recipe's space is sampled too "
                    "([sweep] recipe_space = \"include\" or \"exclude\"); one that relied on it "
                    "without saying so is refused with the line to add", every_plan=True),
    Change("0.3.0", "recipes ppo_mlp and sac_mlp carry Brax's published PPO and SAC settings "
                    "for the Brax environments Brax trains with them",
           recipes=("ppo_mlp", "sac_mlp")),
)


def changes_between(old: Plan, new: Plan) -> list[Change]:
    """The changes of hyperlax that can explain why ``old`` (written by an earlier hyperlax)
    differs from ``new`` (the same manifest planned now)."""
    old_rows: dict[str, Any] = {r.name: r.role for r in old.hyperparams}
    new_rows: dict[str, Any] = {r.name: r.role for r in new.hyperparams}
    moved = {n for n in new_rows if old_rows.get(n) != new_rows[n]}
    recipe_changed = old.recipe_text != new.recipe_text
    found = []
    for change in CHANGES:
        if change.every_plan:
            relevant = version_tuple(old.hyperlax_version) < version_tuple(change.version)
        else:
            same_algorithm = change.config is not None and \
                change.config.algorithm == old.settings.algorithm
            relevant = (recipe_changed and old.settings.recipe in change.recipes) or \
                (same_algorithm and bool(moved & set(change.hyperparams)))
        if relevant:
            found.append(change)
    return found
