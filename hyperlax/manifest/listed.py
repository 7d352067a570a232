"""Samples given as a list rather than drawn: inline ``[[samples]]`` tables in the manifest, or
``samples_file`` (CSV or JSON) next to it, e.g. what ``generate-hp-samples`` wrote or a
hand-picked short list to re-run. JAX-free.

Every row names the same hyperparameters; each value goes through the same validation as a
sampled value, and a bad row gets a located error (``samples_file picked.csv row 3:
actor_lr: must be > 0, got -1``). In CSV, a cell is read as JSON when it parses as JSON
(numbers, true/false, lists such as [64, 64]) and as a string otherwise. The bookkeeping columns
that ``generate-hp-samples`` writes (sample, seed, structure) are ignored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import read_text

BOOKKEEPING = ("sample", "seed", "structure")
MAX_ROWS = 1_000_000


def read_samples_file(relative: str, manifest_dir: Path, source: str
                      ) -> tuple[list[dict[str, Any]], str]:
    """(rows, sha256 of the file's text) of a samples file named in a manifest."""
    path = manifest_dir / relative
    try:
        text = read_text(path, "samples file", limit=256 << 20)
    except HyperlaxError as exc:
        reason = "; ".join(message for _, message in exc.problems)
        raise HyperlaxError(source, [("sweep.samples_file", f"cannot read {relative!r} (looked "
                                                            f"at {path}): {reason}")],
                            "samples_file is relative to the manifest's directory") from None
    where = f"samples_file {relative}"
    if relative.endswith(".json"):
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise HyperlaxError(source, [(where, f"not JSON: {exc}")]) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise HyperlaxError(source, [(where, "must be a JSON list of objects, one per "
                                                 "sample: [{\"actor_lr\": 0.001}, ...]")])
    elif relative.endswith(".csv"):
        rows = [{k: _cell(v) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(text))]
    else:
        raise HyperlaxError(source, [("sweep.samples_file", f"{relative!r}: a .csv or .json "
                                                            "file")])
    rows = [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in rows]
    return rows, hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cell(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def row_problems(rows: list[dict[str, Any]], where: str, table: dict,
                 pinned: dict[str, Any]) -> list[tuple[str, str]]:
    """Located problems of listed rows against the declarations."""
    if not rows:
        return [(where, "lists no samples")]
    if len(rows) > MAX_ROWS:
        return [(where, f"lists {len(rows):,} samples; at most {MAX_ROWS:,}")]
    names = list(rows[0])
    problems: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        at = f"{where} row {i + 1}"
        if list(row) != names and set(row) != set(names):
            problems.append((at, f"names {sorted(row)}; every row must name the same "
                                 f"hyperparameters as row 1 ({sorted(names)})"))
        for name, value in row.items():
            if name not in table:
                problems.append((f"{at}.{name}", "unknown hyperparameter"))
            elif name in pinned:
                problems.append((f"{at}.{name}", "is also pinned in [fixed]; keep only one"))
            else:
                problem = table[name].check_value(value)
                if problem:
                    problems.append((f"{at}.{name}", problem))
        if len(problems) >= 8:
            break
    return problems
