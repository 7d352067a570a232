"""The documentation site (mkdocs.yml, docs/): it builds with --strict, its generated pages are
what tools/gen_docs.py writes now, every page is in the nav, and docs/layout.md lists exactly
the package's folders and modules."""

from __future__ import annotations

import os
import re
import subprocess
import sys


from conftest import ROOT

DOCS = ROOT / "docs"
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text()


def require_mkdocs() -> None:
    """The docs extra is part of `make test`'s install: a missing mkdocs is a failure, not a
    skip, so CI cannot pass without building the site."""
    import importlib.util
    missing = [m for m in ("mkdocs", "material") if importlib.util.find_spec(m) is None]
    assert not missing, f"install the docs extra (pip install -e '.[docs]'): missing {missing}"


def test_the_site_builds_strictly(tmp_path):
    """--strict turns every warning into a failure: a broken link or anchor, a page missing
    from the nav (mkdocs.yml's validation section makes those warnings), a nav entry without
    its page."""
    require_mkdocs()
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    assert (site / "commands" / "exec" / "index.html").is_file()
    assert (site / "layout" / "index.html").is_file()


def test_a_broken_anchor_fails_the_strict_build(tmp_path):
    """The strict build catches what it is trusted to catch: a copy of the site with one bad
    anchor fails."""
    require_mkdocs()
    import shutil
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "halving.md"
    page.write_text(page.read_text() + "\n[gone](plan-format.md#no-such-section)\n")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode != 0
    assert "no-such-section" in result.stdout + result.stderr


def test_generated_pages_are_what_gen_docs_writes_now(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_docs.py"), "--out",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["environments.md", "hyperparameters.md"]
    for name in written:
        assert (tmp_path / name).read_text() == (DOCS / name).read_text(), (
            f"docs/{name} is stale; run: python tools/gen_docs.py")


def nav_pages() -> list[str]:
    return re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", MKDOCS_YML, re.M)


def test_every_page_is_in_the_nav_once_and_every_nav_entry_exists():
    """The strict build checks this too; this needs no mkdocs."""
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    nav = nav_pages()
    assert len(nav) == len(set(nav))
    assert sorted(nav) == pages


def layout_tree() -> list[str]:
    """The paths docs/layout.md's tree names: two spaces of indent per level, folders end in /."""
    text = (DOCS / "layout.md").read_text()
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    stack: list[str] = []
    paths = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        name, _, job = line.strip().partition(" ")
        assert indent % 2 == 0 and job.strip(), line   # every line says its one job
        stack = stack[:indent // 2] + [name]
        paths.append("".join(stack))
    return paths


def test_layout_lists_every_folder_and_module_and_nothing_else():
    package = ROOT / "hyperlax"
    actual = {"hyperlax/"}
    for path in package.rglob("*"):
        if "__pycache__" in path.parts:
            continue
        rel = "hyperlax/" + str(path.relative_to(package))
        if path.is_dir():
            actual.add(rel + "/")
        elif path.suffix == ".py":
            actual.add(rel)
    listed = layout_tree()
    assert len(listed) == len(set(listed))
    assert set(listed) == actual, (f"missing from docs/layout.md: {sorted(actual - set(listed))}; "
                                   f"listed but absent: {sorted(set(listed) - actual)}")
