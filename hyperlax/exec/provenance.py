"""The provenance record of this process (``hyperlax.storage.provenance`` reads it back): what
exec writes next to every entry's results. Versions come from the installed packages' metadata;
only the backend, the device kind and the JAX settings need JAX, which exec has imported."""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from hyperlax import __version__
from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import read_bytes
from hyperlax.storage.provenance import FORMAT

CONFIG = ["jax_enable_x64", "jax_default_matmul_precision", "jax_threefry_partitionable"]


def record(env: str) -> dict[str, Any]:
    """This process's record for a plan on environment ``env`` (brax's version only when the
    environment is brax's)."""
    libraries = ["jax", "jaxlib", "flax", "optax", "gymnax", "numpy"]
    if env.startswith("brax."):
        libraries.append("brax")
    return {"provenance": FORMAT, "hyperlax": __version__,
            "python": platform.python_version(),
            **{name: _version(name) for name in libraries}, **_device()}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _device() -> dict[str, Any]:
    import jax

    device = jax.devices()[0]
    out: dict[str, Any] = {"backend": jax.default_backend(),
                           "device_kind": device.device_kind,
                           "xla_flags": os.environ.get("XLA_FLAGS") or None}
    for name in CONFIG:  # an option this JAX does not have is left out, not guessed
        try:
            value = getattr(jax.config, name)
        except AttributeError:
            continue
        out[name] = value if value is None or isinstance(value, (bool, int, str)) else str(value)
    out["cpu"] = cpu_model()
    return out


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The host CPU's model name (Linux's /proc/cpuinfo; elsewhere ``platform.processor()``)."""
    try:
        text = read_bytes(cpuinfo, "CPU description", 16 << 20).decode("utf-8", "replace")
    except HyperlaxError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or None
