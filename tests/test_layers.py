"""The compiler/runtime split as a static rule, besides the ``sys.modules`` check in
test_compiler: the imports of every module on the compiler side, followed through hyperlax's own
modules, never reach the JAX stack or ``hyperlax.runtime``.

- Compiler modules (manifest, hyperparams, compiler, the plan format, environments, errors)
  never import it anywhere, not even inside a function.
- Front-end modules (the CLI, storage, explain, starter, reports) may import the runtime lazily
  inside the command that needs it, never at module level: ``hyperlax --help``, ``plan`` and
  ``show`` must stay instant.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hyperlax"
FORBIDDEN = ("jax", "jaxlib", "flax", "optax", "gymnax", "hyperlax.runtime")
COMPILER_SIDE = ["manifest", "hyperparams", "compiler", "planfile.py", "plancheck.py", "inputs.py",
                 "safe_paths.py", "environments.py",
                 "errors.py"]
FRONT_END = ["cli.py", "seed_cli.py", "seed_flags.py", "seed_sweep.py", "seed_benchmark.py",
             "benchmark.py", "report/tensorboard.py", "cli_errors.py", "exec_options.py", "storage", "explain.py",
             "starter.py", "report/results.py", "progress.py", "toml_inline.py", "status.py",
             "halving.py", "checkpoint_files.py", "report/rungs.py"]


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
            if name.split(".")[0] in FORBIDDEN or name.startswith("hyperlax.runtime")]


@pytest.mark.parametrize("path", files(COMPILER_SIDE), ids=lambda p: module_name(p))
def test_compiler_side_never_imports_the_runtime(path):
    assert not forbidden(reach(path, module_level_only=False))


@pytest.mark.parametrize("path", [p for p in files(FRONT_END) if p.exists()],
                         ids=lambda p: module_name(p))
def test_front_end_imports_the_runtime_only_lazily(path):
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
