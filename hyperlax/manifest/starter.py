"""``hyperlax init``: a complete starter manifest, with the recipe's search space spelled out so
the user edits ranges instead of looking them up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from hyperlax.errors import HyperlaxError
from hyperlax.environments import ENVS, unknown_env_message
from hyperlax.manifest.format import decode_recipe
from hyperlax.hyperparams import CONFIGS
from hyperlax.manifest.recipes import load_recipe_text, split_defaults
from hyperlax.manifest.toml_inline import toml_key, toml_value

# The manifest's JSON Schema, shipped inside the package (tools/gen_schemas.py writes it with
# schemas/): a starter manifest names it by absolute file URI, which resolves wherever the
# manifest is written and for an installed hyperlax, where a relative path to the source tree's
# schemas/ resolved only one folder below the repository root.
SCHEMA = Path(__file__).resolve().parent / "manifest.schema.json"


def starter_manifest(recipe: str, env_id: str, name: str | None, num_samples: int,
                     output: Path) -> str:
    recipe_name, recipe_text = load_recipe_text(recipe, Path.cwd(), "--recipe")
    parsed = decode_recipe(recipe_text, f"recipe {recipe_name}")
    if env_id not in ENVS:
        raise HyperlaxError("--env", unknown_env_message(env_id))
    if ENVS[env_id].action_space not in CONFIGS[parsed.algorithm].action_spaces:
        fitting = [e for e, i in ENVS.items()
                   if i.action_space in CONFIGS[parsed.algorithm].action_spaces]
        raise HyperlaxError("--env", f"{recipe_name} cannot act in {env_id}; use one of "
                                     f"{', '.join(fitting)}")
    if num_samples < 1:
        raise HyperlaxError("--num-samples", "must be >= 1")
    sweep = {
        "name": name or f"{recipe_name}-{env_id.split('.')[-1]}".replace("_", "-"),
        "recipe": recipe,
        "recipe_space": "exclude",  # [space] below is the whole space: delete a line, stop sampling it
        "env": env_id,
        "num_samples": num_samples,
        "sampling": "qmc_sobol",
        "seed": 0,
        "mode": "batched",
        "batch_size": min(16, num_samples),
        "seeds_per_sample": 1,
        "total_timesteps": parsed.settings.total_timesteps,
        "num_evaluations": parsed.settings.num_evaluations,
        "eval_episodes": parsed.settings.eval_episodes,
    }
    header = []
    if SCHEMA.exists():
        header.append(f"#:schema {SCHEMA.as_uri()}")
    header += [
        f"# hyperlax sweep manifest: {parsed.description or recipe_name}.",
        "# Plan it with `hyperlax plan <this file>`, then run the plan with `hyperlax exec`.",
        "# [fixed] pins hyperparameters to a value; [space] gives the distributions to sample,",
        "# and is all that is sampled (recipe_space = \"exclude\"): delete a line to stop",
        "# sampling it (it then takes the recipe's default, or a value you pin in [fixed]).",
        "",
    ]
    tuned = split_defaults(parsed.defaults)[1].get(env_id, {})
    lines = header + [tomli_w.dumps({"sweep": sweep}).rstrip("\n"), "",
                      "[fixed]", "# total_timesteps lives in [sweep]; pin hyperparameters here, e.g.",
                      "# gamma = 0.99"]
    lines += _tuned_fixed(recipe_name, recipe_text, env_id, tuned, parsed.space)
    lines += ["", "[space]"]
    for key, dist in sorted(parsed.space.items()):
        fields = {f: v for f, v in msgspec.to_builtins(dist).items() if v is not None}
        inline = ", ".join(f"{f} = {toml_value(v)}" for f, v in fields.items())
        note = f"  # tuned for {env_id}: {toml_value(tuned[key])}" if key in tuned else ""
        lines.append(f"{toml_key(key)} = {{ {inline} }}{note}")
    return "\n".join(lines) + "\n"


def _tuned_fixed(recipe_name: str, recipe_text: str, env_id: str, tuned: dict[str, Any],
                 space: dict[str, Any]) -> list[str]:
    """[fixed] lines for the recipe's defaults tuned for ``env_id`` that its space does not
    sample (the plan would take them from the recipe anyway; written out, the manifest shows
    what runs), under the recipe's own note on where they come from. Tuned values of names the
    space samples go next to their [space] lines, as comments."""
    pinned = {k: v for k, v in tuned.items() if k not in space}
    if not tuned:
        return []
    lines = ["", f"# Defaults of recipe {recipe_name} tuned for {env_id}; the recipe says:"]
    lines += [f"#   {line}" for line in _comment_above(recipe_text, env_id)]
    if pinned:
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in sorted(pinned.items())]
    if len(pinned) < len(tuned):
        lines.append("# the [space] below samples the others; to train the tuned value, move "
                     "a name from [space] to here")
    return lines


def _comment_above(recipe_text: str, env_id: str) -> list[str]:
    """The comment paragraph right above the recipe's ``[defaults."<env_id>"]`` header (up
    to an empty comment line)."""
    lines = recipe_text.splitlines()
    header = f'[defaults."{env_id}"]'
    for i, line in enumerate(lines):
        if line.split("#")[0].strip() == header:
            block = []
            for above in reversed(lines[:i]):
                if not above.startswith("#") or not above.lstrip("#").strip():
                    break
                block.append(above.lstrip("#").strip())
            return list(reversed(block)) or ["(no note)"]
    return ["(no note)"]
