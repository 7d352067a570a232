"""Algorithm recipes: TOML files naming an algorithm, budget defaults, default overrides and a
search space. Built-in recipes ship as package data; a manifest may instead name a recipe file
by path, resolved relative to the manifest."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from hyperlax.environments import ENVS, unknown_env_message
from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import read_text

RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def builtin_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("hyperlax.recipes").iterdir()
                  if p.name.endswith(".toml"))


def is_recipe_path(recipe: str) -> bool:
    return recipe.endswith(".toml") or "/" in recipe or "\\" in recipe


def load_recipe_text(recipe: str, manifest_dir: Path, source: str) -> tuple[str, str]:
    """(recipe name used in output paths, recipe TOML text)."""
    if not is_recipe_path(recipe):
        if recipe not in builtin_recipes():
            from hyperlax.manifest.format import did_you_mean
            raise HyperlaxError(
                source, [("sweep.recipe", f"unknown recipe {recipe!r}"
                          f"{did_you_mean(recipe, builtin_recipes())}; built-in recipes: "
                          f"{', '.join(builtin_recipes())}, or a path to a recipe .toml file")])
        text = resources.files("hyperlax.recipes").joinpath(f"{recipe}.toml").read_text("utf-8")
        return recipe, text
    name = Path(recipe).stem
    if not RECIPE_NAME.match(name):
        # the name becomes the first directory of every entry's output path
        raise HyperlaxError(source, [("sweep.recipe", f"recipe file {recipe!r} is named "
                                      f"{name!r}, which cannot name an output directory: 1-100 "
                                      "letters, digits, '.', '_' or '-', starting with a "
                                      "letter or digit")], "rename the recipe file")
    path = manifest_dir / recipe
    try:
        text = read_text(path, "recipe file")
    except HyperlaxError as exc:
        reason = "; ".join(message for _, message in exc.problems)
        raise HyperlaxError(source, [("sweep.recipe", f"cannot read recipe file {recipe!r} "
                                      f"(looked at {path}): {reason}")],
                            "recipe paths are relative to the manifest's directory") from None
    return name, text


# --- defaults per environment ------------------------------------------------------------------
#
# A recipe's [defaults] table holds values for every env and, in sub-tables named by an env id,
# values tuned for that env:
#
#     [defaults]
#     "network.activation" = "tanh"
#
#     [defaults."gymnax.cartpole"]      # purejaxrl's PPO CartPole config
#     num_envs = 4
#
# A hyperparameter's value is never a table, so a table-valued key is an env's sub-table.
# An env's values win over the shared ones; a manifest's [fixed] and [space] win over both.

def split_defaults(defaults: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(values for every env, {env id: values tuned for that env}) of a recipe's [defaults]."""
    shared = {k: v for k, v in defaults.items() if not isinstance(v, dict)}
    per_env = {k: v for k, v in defaults.items() if isinstance(v, dict)}
    return shared, per_env


def env_defaults(defaults: dict[str, Any], env_id: str) -> tuple[dict[str, Any], set[str]]:
    """(the defaults that apply in ``env_id``, the names whose value is ``env_id``'s own)."""
    shared, per_env = split_defaults(defaults)
    own = per_env.get(env_id, {})
    return {**shared, **own}, set(own)


def env_defaults_problems(defaults: dict[str, Any], action_spaces: tuple[str, ...]
                          ) -> list[tuple[str, str]]:
    """Located problems with the env ids of a recipe's per-env sub-tables (their values are
    checked like the shared ones, by the caller)."""
    problems = []
    for env_id in split_defaults(defaults)[1]:
        where = f'defaults."{env_id}"'
        if env_id not in ENVS:
            problems.append((where, unknown_env_message(env_id)))
        elif ENVS[env_id].action_space not in action_spaces:
            problems.append((where, f"{env_id} has a {ENVS[env_id].action_space} action "
                                    "space, which this recipe's algorithm cannot act in"))
    return problems
