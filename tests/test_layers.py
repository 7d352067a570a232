"""The JAX boundary as a property of folders, besides the ``sys.modules`` check in
test_compiler: the imports of every module in a JAX-free folder, followed through hyperlax's own
modules, never reach the JAX stack.

- ``NEVER`` folders (the compiler side: what plans, checks and reads files) never import it
  anywhere, not even inside a function.
- ``LAZY`` folders (the command line, search, report) may import it inside the command that
  trains, never at module level: ``hyperlax --help``, ``plan`` and ``show`` stay instant.
- ``exec/`` and ``train/`` may import it; every other folder or root module must be listed here,
  so a new folder has to choose its side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hyperlax"
FORBIDDEN = ("jax", "jaxlib", "flax", "optax", "gymnax")
NEVER = ["hyperparams", "manifest", "compiler", "plan", "storage", "environments.py", "errors.py"]
LAZY = ["cli", "search", "report", "__init__.py", "__main__.py"]
JAX = ["exec", "train"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # also what sits in module-level if/try blocks
        nodes = [n for top in tree.body for n in ast.walk(top)
                 if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        nodes += [n for top in tree.body if isinstance(top, ast.ClassDef)
                  for n in top.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def reach(start: Path, *, module_level_only: bool) -> dict[str, list[str]]:
    """Every module reachable from ``start`` through imports, with the chain that reaches it."""
    chains = {module_name(start): [module_name(start)]}
    todo = [start]
    while todo:
        path = todo.pop()
        here = chains[module_name(path)]
        for name in sorted(imports(path, module_level_only=module_level_only)):
            if name in chains:
                continue
            chains[name] = here + [name]
            target = module_path(name) if name.startswith("hyperlax") else None
            if target is not None and module_name(target) == name:
                todo.append(target)
    return chains


def files(entries: list[str]) -> list[Path]:
    out = []
    for entry in entries:
        path = PACKAGE / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def forbidden(chains: dict[str, list[str]]) -> list[str]:
    return [" -> ".join(chain) for name, chain in chains.items()
            if name.split(".")[0] in FORBIDDEN]


@pytest.mark.parametrize("path", files(NEVER), ids=lambda p: module_name(p))
def test_compiler_side_never_imports_jax(path):
    assert not forbidden(reach(path, module_level_only=False))


@pytest.mark.parametrize("path", files(LAZY),
                         ids=lambda p: module_name(p))
def test_front_end_imports_jax_only_lazily(path):
    assert not forbidden(reach(path, module_level_only=True))


def test_the_rule_would_catch_a_violation(tmp_path, monkeypatch):
    """The checker itself: a module importing jax inside a function is caught on the compiler
    side and allowed on the front end."""
    bad = tmp_path / "bad.py"
    bad.write_text("import json\n\ndef f():\n    import jax.numpy\n")
    assert "jax.numpy" in imports(bad, module_level_only=False)
    assert "jax.numpy" not in imports(bad, module_level_only=True)
    bad.write_text("try:\n    from optax import adam\nexcept ImportError:\n    pass\n")
    assert "optax" in imports(bad, module_level_only=True)


def test_every_folder_has_chosen_its_side():
    """A new folder or root module is JAX-free or not by a decision written here."""
    listed = set(NEVER + LAZY + JAX)
    present = {p.name for p in PACKAGE.iterdir()
               if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert present <= listed, f"choose a side for: {sorted(present - listed)}"
    assert listed <= present, f"listed but gone: {sorted(listed - present)}"
