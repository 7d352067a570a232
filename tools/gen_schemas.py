"""Generate schemas/*.schema.json from the msgspec Structs (the Structs are the truth).

    python tools/gen_schemas.py          # rewrite schemas/
    python tools/gen_schemas.py --check  # exit 1 when schemas/ is stale (tests run this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from hyperlax.hyperparams import CONFIGS
from hyperlax.manifest.format import Manifest
from hyperlax.plan.format import PlanFile

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# The manifest schema also ships inside the package (package data), where `hyperlax init`'s
# `#:schema` line points, so it resolves for a pip-installed hyperlax and any manifest folder.
PACKAGED = {"manifest.schema.json":
            Path(__file__).resolve().parent.parent / "hyperlax" / "manifest" / "manifest.schema.json"}


def hyperparameter_properties() -> dict[str, dict]:
    """Every hyperparameter name any algorithm declares, with its type and bounds: what a
    manifest's [fixed] table may hold (which names apply depends on the recipe's algorithm,
    so a name's defaults, which differ by algorithm, are left out)."""
    merged: dict[str, list[dict]] = {}
    for config in CONFIGS.values():
        schema = msgspec.json.schema(config)
        for name, prop in schema["$defs"][config.__name__]["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "default"}
            if prop not in merged.setdefault(name, []):
                merged[name].append(prop)
    return {name: props[0] if len(props) == 1 else {"anyOf": props}
            for name, props in sorted(merged.items())}


def render() -> dict[str, str]:
    out = {}
    documents = [("manifest", Manifest, "hyperlax sweep manifest"),
                 ("plan", PlanFile, "hyperlax plan file (msgpack)")]
    documents += [(f"hyperparams.{name}", config, f"{name.upper()} hyperparameters")
                  for name, config in CONFIGS.items()]
    for name, struct, title in documents:
        schema = msgspec.json.schema(struct)
        if struct is Manifest:
            fixed = schema["$defs"]["Manifest"]["properties"]["fixed"]
            fixed.update(properties=hyperparameter_properties(), additionalProperties=False)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title,
                  **schema}
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for filename, text in render().items():
        for path in [SCHEMAS / filename] + ([PACKAGED[filename]] if filename in PACKAGED else []):
            if check:
                if not path.exists() or path.read_text("utf-8") != text:
                    stale.append(str(path.relative_to(SCHEMAS.parent)))
            else:
                path.parent.mkdir(exist_ok=True)
                path.write_text(text, "utf-8")
                print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python tools/gen_schemas.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
