"""Samples given as a list rather than drawn: inline ``[[samples]]`` tables in the manifest, or
``samples_file`` (CSV or JSON) next to it, e.g. what ``generate-hp-samples`` wrote or a
hand-picked short list to re-run. JAX-free.

Every row names the same hyperparameters; each value goes through the same validation as a
sampled value, and a bad row gets a located error (``samples_file picked.csv row 3:
actor_lr: must be > 0, got -1``). In CSV, a cell is read as JSON when it parses as JSON
(numbers, true/false, lists such as [64, 64]) and as a string otherwise. The bookkeeping columns
that ``generate-hp-samples`` writes (sample, seed, structure) are ignored. A CSV row with more or
fewer cells than its header, a column named twice, and JSON nested past any sample's shape are
refused with the line they are on (exit 2), never read as something else.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import decode_json, read_text

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
        rows = _json_rows(text, path, where, source)
    elif relative.endswith(".csv"):
        rows = _csv_rows(text, where, source)
    else:
        raise HyperlaxError(source, [("sweep.samples_file", f"{relative!r}: a .csv or .json "
                                                            "file")])
    rows = [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in rows]
    return rows, hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_rows(text: str, path: Path, where: str, source: str) -> list[dict[str, Any]]:
    try:  # the reader's decoder: hostile nesting is a located error, not a RecursionError
        rows = decode_json(text, path, "samples file", unique_keys=True)
    except HyperlaxError as exc:
        reason = "; ".join(message for _, message in exc.problems)
        if "nested too deeply" in reason:
            reason = "nested too deeply: a samples file is a flat list of objects"
        else:
            reason = reason.replace("damaged samples file (", "").removesuffix(")")
        raise HyperlaxError(source, [(where, reason)],
                            "a JSON samples file is a list of objects, one per sample: "
                            "[{\"actor_lr\": 0.001}, ...]") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise HyperlaxError(source, [(where, "must be a JSON list of objects, one per "
                                             "sample: [{\"actor_lr\": 0.001}, ...]")])
    return rows


def _csv_rows(text: str, where: str, source: str) -> list[dict[str, Any]]:
    """The rows of CSV text under its header. A row with more or fewer cells than the header,
    and a header naming a column twice (csv.DictReader would keep the last one silently), are
    refused with the line they are on; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text), strict=True)  # an unclosed quote is an error
    fix = "every row has one cell per column of the header line, which names each column once"
    try:
        header = next(reader, None)
        if header is None:
            return []
        seen: set[str] = set()
        for column, name in enumerate(header, 1):
            if not name.strip():
                raise HyperlaxError(source, [(f"{where} line 1", f"column {column} has no "
                                                                 "name")], fix)
            if name in seen:
                raise HyperlaxError(source, [(f"{where} line 1", f"names column {name!r} "
                                                                 "twice")], fix)
            seen.add(name)
        rows = []
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):
                raise HyperlaxError(source, [(f"{where} line {reader.line_num}",
                                              f"has {len(cells)} cell{'s' * (len(cells) != 1)}; "
                                              f"the header has "
                                              f"{len(header)} ({', '.join(header)})")], fix)
            rows.append({name: _cell(cell) for name, cell in zip(header, cells)})
        return rows
    except csv.Error as exc:  # a NUL byte, an unclosed quote, a cell past the field limit
        raise HyperlaxError(source, [(f"{where} line {reader.line_num}", f"not CSV: {exc}")],
                            fix) from None


def _cell(text: str) -> Any:
    """A cell as JSON when it parses as JSON (numbers, true/false, lists), else the string."""
    try:
        return decode_json(text, "", "cell")
    except HyperlaxError:
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
