"""Generate schemas/*.schema.json from the msgspec Structs (the Structs are the truth).

    python tools/gen_schemas.py          # rewrite schemas/
    python tools/gen_schemas.py --check  # exit 1 when schemas/ is stale (tests run this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from hyperlax.planfile import PlanFile
from hyperlax.spec.manifest import Manifest

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def render() -> dict[str, str]:
    out = {}
    for name, struct, title in (("manifest", Manifest, "hyperlax sweep manifest"),
                                ("plan", PlanFile, "hyperlax plan file (msgpack)")):
        schema = msgspec.json.schema(struct)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title,
                  **schema}
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for filename, text in render().items():
        path = SCHEMAS / filename
        if check:
            if not path.exists() or path.read_text("utf-8") != text:
                stale.append(filename)
        else:
            SCHEMAS.mkdir(exist_ok=True)
            path.write_text(text, "utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python tools/gen_schemas.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
