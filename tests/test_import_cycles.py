"""No import circles: every import between hyperlax's modules points one way.

Each module is parsed with ``ast`` and every import in it counts, at module level or inside a
function (an import moved into a function hides a circle from Python, not from the design):
``import hyperlax.a.b``, ``from hyperlax.a import b`` (an edge to the submodule ``a.b`` when
``b`` is one, else to ``a``), and relative imports (``from .b import c``, ``from .. import d``).
A package's ``__init__`` that its own submodule needs first is not an edge: Python runs it
before the submodule anyway, and it is a circle only when the submodule imports names from it,
which is an explicit ``from package import name`` and so an edge.

The graph's strongly connected components (Tarjan) of more than one module are the circles.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hyperlax"

def modules(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]  # its package
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_deepest_module(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            subs = {f"{source}.{alias.name}" for alias in node.names}
            submodules = subs & known.keys()
            found |= submodules
            if submodules != subs:  # some names are attributes of the module itself
                found.add(_deepest_module(source, known))
    return {m for m in found if m in known and m != name}


def _deepest_module(dotted: str, known: dict[str, Path]) -> str:
    parts = dotted.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative so a deep package cannot overflow the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    """One circle as the imports that make it: ``a -> b`` for each edge inside it."""
    edges = [f"{a} -> {b}" for a in sorted(component) for b in sorted(graph[a] & component)]
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_no_import_cycles():
    graph = import_graph(PACKAGE)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_graph_sees_the_real_package_imports():
    """On the package itself: an import inside a function and ``from package import module``
    are edges (relative imports, which the package does not use, are checked below)."""
    graph = import_graph(PACKAGE)
    assert "hyperlax.exec.local_exec" in graph["hyperlax.exec.run_plan"]  # inside _dispatch
    assert "hyperlax.exec.halving.decide" in graph["hyperlax.exec.halving.rungs"]
    assert "hyperlax.plan.format" in graph["hyperlax.plan.check"]
    assert len(graph) == len(modules(PACKAGE)) > 50


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_a_planted_cycle_is_found(tmp_path):
    """The checker itself: a circle closed by an import inside a function, through a relative
    import and a submodule named by ``from package import module``, is found whole; a package
    whose ``__init__`` imports its submodules, which only import each other one way, is not a
    circle."""
    package = _write(tmp_path, {
        "pkg/__init__.py": "from pkg import low\n",
        "pkg/low.py": "import json\n",
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": "from ..b import two\n",
        "pkg/b/__init__.py": "",
        "pkg/b/two.py": "import pkg.b.three\n",
        "pkg/b/three.py": """
            def late():
                from pkg.a import one
                return one
            """,
        "pkg/c.py": "from pkg import low\nfrom .a import one\n",
    })
    graph = import_graph(package)
    assert graph["pkg.a.one"] == {"pkg.b.two"}
    assert graph["pkg.b.three"] == {"pkg.a.one"}
    assert graph["pkg.c"] == {"pkg.low", "pkg.a.one"}
    found = cycles(graph)
    assert found == [frozenset({"pkg.a.one", "pkg.b.two", "pkg.b.three"})]
    assert "pkg.b.three -> pkg.a.one" in describe(found[0], graph)


def test_importing_names_from_a_package_that_imports_you_is_a_cycle(tmp_path):
    """The registry shape: a package ``__init__`` importing a submodule that imports names
    back from the package."""
    package = _write(tmp_path, {
        "pkg/__init__.py": "from pkg.algo import run\nHELPER = 1\n",
        "pkg/algo.py": "from pkg import HELPER\n\ndef run():\n    return HELPER\n",
    })
    assert cycles(import_graph(package)) == [frozenset({"pkg", "pkg.algo"})]
