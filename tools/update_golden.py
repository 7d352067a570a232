"""Re-plan every specs/*.toml into tests/golden/<name>.plan.msgpack.

Run it only when a plan change is intended (a new hyperlax version, a recipe change, a new
spec); the golden test then pins the new bytes. Review the diff of `hyperlax show` first.
"""

from __future__ import annotations

from pathlib import Path

from hyperlax.compiler import compile_manifest
from hyperlax.plan.format import encode_plan

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    for spec in sorted((ROOT / "specs").glob("*.toml")):
        plan, _ = compile_manifest(spec)
        out = ROOT / "tests" / "golden" / f"{spec.stem}.plan.msgpack"
        out.write_bytes(encode_plan(plan))
        print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
