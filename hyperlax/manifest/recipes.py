"""Algorithm recipes: TOML files naming an algorithm, budget defaults, default overrides and a
search space. Built-in recipes ship as package data; a manifest may instead name a recipe file
by path, resolved relative to the manifest."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hyperlax.errors import HyperlaxError


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
    path = manifest_dir / recipe
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise HyperlaxError(source, [("sweep.recipe", f"cannot read recipe file {recipe!r} "
                                      f"(looked at {path}): {exc.strerror}")],
                            "recipe paths are relative to the manifest's directory") from None
    return Path(recipe).stem, text
