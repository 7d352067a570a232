"""A repeatable install (issue 26): constraints.txt pins an exact version of every dependency
pyproject.toml names, extras included, and the Makefile installs with it."""

from __future__ import annotations

import re
import sys
import tomllib

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from write_constraints import pinned_lines  # noqa: E402

EXTRAS = ["dev", "ray", "brax", "docs", "optuna", "tensorboard"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and " " not in line, f"not name==version: {line!r}"
            assert canonical(name) not in out, f"{name} pinned twice"
            out[canonical(name)] = version
    return out


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])


def test_every_dependency_and_extra_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) == set(extras), "a new extra: add it to the Makefile's EXTRAS and here"
    named = {requirement_name(r) for r in project["dependencies"]}
    for extra in EXTRAS:
        named |= {requirement_name(r) for r in extras[extra]}
    pinned = pins()
    assert sorted(named - set(pinned)) == []
    assert "hyperlax" not in pinned  # the package itself is installed from the checkout


def test_make_demo_and_make_test_install_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text("utf-8")
    installs = [line.strip() for line in makefile.splitlines()
                if "pip install" in line and "-e " in line]
    assert len(installs) == 3  # base, dev, and the unconstrained refresh
    constrained = [line for line in installs if "-c $(CONSTRAINTS)" in line]
    assert len(constrained) == 2
    assert "CONSTRAINTS := constraints.txt" in makefile
    # what make test installs covers every extra (dev names optuna's and tensorboard's too)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    groups = project["optional-dependencies"]
    extras = re.search(r"^EXTRAS := ([a-z,]+)", makefile, re.M).group(1).split(",")
    installed = {requirement_name(r) for extra in extras for r in groups[extra]}
    assert {requirement_name(r) for extra in EXTRAS for r in groups[extra]} <= installed
    for stamp in ("$(BASE_STAMP):", "$(DEV_STAMP):"):  # new pins reinstall
        rule = next(line for line in makefile.splitlines() if line.startswith(stamp))
        assert "$(CONSTRAINTS)" in rule
    for target in ("demo: $(BASE_STAMP)", "test: $(DEV_STAMP)", "constraints:"):
        assert target in makefile


def test_the_refresh_keeps_only_exact_pins_and_leaves_hyperlax_out():
    freeze = "\n".join(["numpy==2.4.6", "hyperlax==0.2.0", "-e git+https://x/y#egg=z",
                        "pkg @ file:///tmp/pkg", "Jinja2==3.1.6", ""])
    assert pinned_lines(freeze) == ["Jinja2==3.1.6", "numpy==2.4.6"]
