"""This machine's measured training throughput and compile time, kept for cost estimates (JAX-free).

``exec`` records what it measured (env steps per second while training, wall seconds per
compiled program) after each run that trained, per algorithm and environment, in a small JSON
file in the user's cache directory (``$XDG_CACHE_HOME/hyperlax/throughput.json``), written
atomically. The cost a seed command prints before a sweep runs reads it and never measures
(planning stays JAX-free). A figure is stale, and not used, when it is older than
``STALE_DAYS`` or JAX, jaxlib or the host CPU changed since; the device is named with the
figure, since which device the next exec will use is not known without JAX.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT = 1
STALE_DAYS = 7.0
MAX_BYTES = 1 << 20
# Structures of one algorithm and environment differ in throughput (env count, network width):
# a figure measured on one sweep predicts another's only to within about this factor.
SPREAD = 2.0
# Without a figure: what one env step of a gymnax or Brax training costs, from a 2-core CPU
# (the slow end) to a data-centre GPU (the fast end), and what compiling one program takes.
UNKNOWN_STEPS_PER_SECOND = (2e4, 2e6)
UNKNOWN_SECONDS_PER_COMPILE = (5.0, 30.0)


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "hyperlax" / "throughput.json"


@dataclass(frozen=True)
class Figure:
    """What an exec measured here: env steps per second while training, wall seconds per
    program compiled (None: none compiled), and when, with what, on which device."""

    steps_per_second: float
    seconds_per_compile: float | None
    measured: float          # unix time
    device: str              # "cpu: <model>", "gpu: <kind>"
    key: str                 # "<algorithm> <env>"

    def age_days(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.measured) / 86400.0


def _versions() -> dict[str, str | None]:
    out = {}
    for name in ("jax", "jaxlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    from hyperlax.exec.provenance import cpu_model

    out["cpu"] = cpu_model()
    return out


def _read() -> dict[str, Any]:
    from hyperlax.errors import HyperlaxError
    from hyperlax.storage.read import read_json

    path = cache_file()
    if not path.is_file():
        return {}
    try:
        doc = read_json(path, "throughput cache", limit=MAX_BYTES)
    except HyperlaxError:  # unreadable or damaged: as if never measured
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or \
            not isinstance(doc.get("figures"), dict):
        return {}
    return doc


def record(algorithm: str, env: str, env_steps: int, train_seconds: float, compiles: int,
           compile_seconds: float, device: dict[str, Any]) -> None:
    """Keep this run's figures for ``algorithm`` on ``env``, replacing older ones. Best effort:
    a cache that cannot be written costs an estimate, never a run."""
    if env_steps <= 0 or train_seconds <= 0:
        return
    from hyperlax.errors import HyperlaxError
    from hyperlax.storage.atomic import atomic_write, json_bytes

    doc = _read() or {"format": FORMAT, "figures": {}}
    backend = device.get("backend") or "?"
    kind = device.get("device_kind") or ""
    doc["figures"][f"{algorithm} {env}"] = {
        "steps_per_second": env_steps / train_seconds,
        "seconds_per_compile": compile_seconds / compiles if compiles else None,
        "measured": time.time(), "env_steps": env_steps,
        "device": f"{backend}: {device.get('cpu') if backend == 'cpu' else kind}",
        **_versions()}
    path = cache_file()
    try:  # the user's cache directory is its own root
        atomic_write(path, json_bytes(doc), within=path.parent)
    except (OSError, HyperlaxError):
        pass


def figure(algorithm: str, env: str, now: float | None = None) -> tuple[Figure | None, str]:
    """The freshest usable figure for ``algorithm`` on ``env`` (else on another environment,
    which says less), and, when there is none, why: never measured, or stale and why."""
    figures = _read().get("figures", {})
    versions = _versions()
    why = "no exec has measured this machine yet"
    ranked = [f"{algorithm} {env}"] + sorted(k for k in figures
                                              if k.startswith(f"{algorithm} ") and
                                              k != f"{algorithm} {env}")
    for key in ranked:
        raw = figures.get(key)
        if not isinstance(raw, dict):
            continue
        try:
            found = Figure(float(raw["steps_per_second"]),
                           None if raw.get("seconds_per_compile") is None
                           else float(raw["seconds_per_compile"]),
                           float(raw["measured"]), str(raw.get("device", "?")), key)
        except (KeyError, TypeError, ValueError):
            continue
        changed = [name for name, value in versions.items() if raw.get(name) != value]
        if changed:
            why = f"the figure measured here is stale: {' and '.join(changed)} changed since"
            continue
        if found.age_days(now) > STALE_DAYS:
            why = (f"the figure measured here is stale: {found.age_days(now):.0f} days old "
                   f"(more than {STALE_DAYS:g})")
            continue
        return found, ""
    return None, why
