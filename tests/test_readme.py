"""What the README and the documentation pages in docs/ claim, checked against what the code
does: the records of summary.json, what `make demo` / `make test` / `make docs` install and run,
and that every command they show is a real command with options it accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT
from hyperlax.exec.outputs import sample_summary

README = (ROOT / "README.md").read_text()
# The pages the README's manual moved to; generated pages are tested by tests/test_docs.py.
PAGES = {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / "docs").rglob("*.md"))}
EXEC_PAGE = PAGES["docs/commands/exec.md"]


def outputs_block(name: str) -> str:
    """The exec page's description of one output file (its lines in the Outputs listing)."""
    lines = EXEC_PAGE[EXEC_PAGE.index("## Outputs"):].splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip().startswith(name))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" " * 20):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_summary_json_records_are_the_ones_the_docs_list():
    summary = sample_summary(0, np.array([10, 20]), np.array([[1.0, 2.0], [3.0, np.nan]]),
                             np.array([[True, True], [True, False]]), steps=20)
    text = outputs_block("summary.json")
    for key in summary:
        assert key.split("_std")[0] in text, key
    per_replicate = text.split("replicates:")[1]
    for key in summary["replicates"][0]:
        assert key in per_replicate, key
    assert set(summary["replicates"][0]) == {"status", "diverged_at_step", "final_return",
                                             "best_return"}
    assert "per replicate the same" not in text


def test_docs_do_not_claim_show_samples_prints_u():
    for name, text in {"README.md": README, **PAGES}.items():
        flat = " ".join(text.split())
        assert "(`hyperlax show --samples`) records both `u` and the value" not in flat, name


def make_dry_run(tmp_path, target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_installs_the_base_package_and_make_test_the_extras(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "constraints.txt", tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    old = time.time() - 60
    for path in (tmp_path / "pyproject.toml", tmp_path / "constraints.txt",
                 tmp_path / ".venv" / "bin" / "python"):
        os.utime(path, (old, old))

    demo = make_dry_run(tmp_path, "demo")
    assert "pip install --quiet -c constraints.txt -e .\n" in demo
    assert "ray" not in demo and "dev" not in demo

    # after a demo, a test installs the extras
    (tmp_path / ".venv" / ".installed-base").touch()
    assert "pip install" not in make_dry_run(tmp_path, "demo")
    test = make_dry_run(tmp_path, "test")
    assert "pip install --quiet -c constraints.txt -e '.[dev,ray,brax,docs]'" in test
    assert "pytest" in test
    docs = make_dry_run(tmp_path, "docs")
    assert "'.[dev,ray,brax,docs]'" in docs and "mkdocs build --strict --site-dir site" in docs

    # after a test, neither installs again
    (tmp_path / ".venv" / ".installed-dev").touch()
    assert "pip install" not in make_dry_run(tmp_path, "demo")
    assert "pip install" not in make_dry_run(tmp_path, "test")
    assert "pip install" not in make_dry_run(tmp_path, "docs")

    # an edited pyproject.toml reinstalls
    os.utime(tmp_path / "pyproject.toml", (time.time() + 60, time.time() + 60))
    assert "pip install --quiet -c constraints.txt -e .\n" in make_dry_run(tmp_path, "demo")
    assert "'.[dev,ray,brax,docs]'" in make_dry_run(tmp_path, "test")

    # so do new pins (make constraints)
    (tmp_path / ".venv" / ".installed-base").touch()
    (tmp_path / ".venv" / ".installed-dev").touch()
    os.utime(tmp_path / "constraints.txt", (time.time() + 120, time.time() + 120))
    assert "-c constraints.txt -e .\n" in make_dry_run(tmp_path, "demo")


def test_the_docs_extra_is_what_make_docs_needs():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'docs = ["mkdocs>=1.6", "mkdocs-material>=9.5"]' in pyproject
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_readme_is_the_first_day_and_points_to_every_page():
    """The README keeps set-up, a first sweep and where to read next; the manual is in docs/."""
    assert len(README.splitlines()) <= 220
    for command in ("make demo", "make test", "make docs", "hyperlax plan", "hyperlax exec",
                    "hyperlax report"):
        assert command in README, command
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", README))
    generated = {"docs/hyperparameters.md", "docs/environments.md"}
    assert linked >= set(PAGES) - {"docs/index.md"} | generated - {"docs/index.md"}, (
        sorted(set(PAGES) - linked))


# `hyperlax COMMAND ...` or `python -m hyperlax.cli COMMAND ...` where a command line
# starts (a line, `srun `, a quoted shell command, or what a message says to run after `: `),
# up to a comment or the end of the quote
COMMAND = re.compile(r"(?:^\s*(?:srun |python -m |\")?|: )hyperlax(?:\.cli\.main)? ([a-z][a-z-]*)"
                     r"([^#`\"\n]*)", re.M)
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def shown_commands(text: str) -> list[tuple[str, str]]:
    """Every hyperlax command line the text shows: in code blocks (indented or fenced, lines
    continued by a backslash or by a line of further `[--options]`) and in inline code."""
    lines, code, fenced = text.splitlines(), [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            if code and (code[-1].endswith("\\") or line.lstrip().startswith("[-")):
                code[-1] = code[-1].rstrip("\\") + " " + line.strip()
            else:
                code.append(line)
    prose = re.sub(r"(?ms)^```.*?^```", "", text)
    inline = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    found = []
    for line in code + inline:
        found += [(m.group(1), m.group(2)) for m in COMMAND.finditer(line)]
    return found


def test_every_command_shown_is_a_real_command_with_options_it_accepts():
    """The commands the README and the docs pages show, in code blocks and inline: each names a
    command of the `hyperlax` group, and every option it passes is one that command takes."""
    from hyperlax.cli.main import main as cli
    options = {name: {o for p in command.params for o in getattr(p, "opts", [])
                      + getattr(p, "secondary_opts", []) if o.startswith("-")} | {"-h", "--help"}
               for name, command in cli.commands.items()}
    checked = 0
    for source, text in {"README.md": README, **PAGES}.items():
        for name, rest in shown_commands(text):
            assert name in options, f"{source}: hyperlax {name}{rest}"
            for option in OPTION.findall(rest):
                # the seed's commands accept its flags with underscores too
                assert option.replace("_", "-") in options[name], (
                    f"{source}: hyperlax {name} {option}")
                checked += 1
    assert checked > 100   # the parser found the pages' commands, not nothing
