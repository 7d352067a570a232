"""Values and keys as one-line TOML, for text meant to be pasted into a manifest.

tomli-w renders every scalar (escaping, float and integer forms); lists are joined here so
that ``[[64, 64], [128, 128]]`` stays on one line, which tomli-w would spread over many.
"""

from __future__ import annotations

from typing import Any

import tomli_w


def toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split(" = ", 1)[1].rstrip("\n")


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key (``"network.activation"``)."""
    return tomli_w.dumps({key: 0}).split(" = ", 1)[0]
