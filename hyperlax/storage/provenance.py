"""Where an entry's results came from: its ``provenance.json`` read back, grouped and compared.
JAX-free (``status``, ``report`` and ``compare`` read it; ``hyperlax.exec.provenance`` writes it).

A record is one flat JSON object: the versions of hyperlax, Python and the libraries that shape
training, the backend and device kind, the XLA flags and the JAX settings that change numerics,
and the host's CPU model. It holds nothing that changes from one run to the next (no time, no
host name), so entries produced in the same environment have equal records, and two records
that differ name what differs. Entries written before 0.2.0 have no record: they count as an
unknown environment and are never compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from hyperlax.errors import HyperlaxError
from hyperlax.storage.read import read_json

PROVENANCE_FILE = "provenance.json"
MAX_PROVENANCE_BYTES = 64 << 10   # a record is a few hundred bytes
FORMAT = 1

# Every field a record has, in the order they are printed; "brax" only for brax.* environments.
LIBRARIES = ["jax", "jaxlib", "flax", "optax", "gymnax", "numpy", "brax"]
FIELDS = ["hyperlax", "python", *LIBRARIES, "backend", "device_kind", "xla_flags",
          "jax_enable_x64", "jax_default_matmul_precision", "jax_threefry_partitionable", "cpu"]


def read_provenance(entry_dir: Path) -> dict[str, Any] | None:
    """The record in ``entry_dir``, or None when it has none (an entry older than records) or
    one this version cannot read (too large, not a JSON object): it is then an unknown
    environment, never an error, because the results themselves are vouched for by the marker."""
    path = entry_dir / PROVENANCE_FILE
    try:
        record = read_json(path, "provenance record", limit=MAX_PROVENANCE_BYTES)
    except HyperlaxError:
        return None
    if not isinstance(record, dict):
        return None
    return {k: record[k] for k in FIELDS if k in record}


def records_under(directory: Path) -> dict[str, dict[str, Any] | None]:
    """The records of every complete entry (one with a marker) below ``directory``, by its
    path relative to it: what a search's rounds were produced by."""
    from hyperlax.storage.sweepdir import MARKER

    if not directory.is_dir():
        return {}
    return {str(m.parent.relative_to(directory)): read_provenance(m.parent)
            for m in sorted(directory.rglob(MARKER))}


def environment_key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def groups(records: Iterable[dict[str, Any] | None]) -> list[tuple[dict[str, Any], int]]:
    """The distinct environments among ``records`` (None, an entry without a record, left out),
    each with how many records it has, most first (ties: first seen first)."""
    counts: dict[str, list[Any]] = {}
    for record in records:
        if record is not None:
            counts.setdefault(environment_key(record), [record, 0])[1] += 1
    return sorted(((r, n) for r, n in counts.values()), key=lambda rn: -rn[1])


def differing_fields(records: Iterable[dict[str, Any] | None]) -> list[str]:
    """The fields whose values are not the same in every record (a field one record lacks and
    another has differs), in ``FIELDS`` order; [] for one environment or none."""
    known = [r for r in records if r is not None]
    return [f for f in FIELDS if len({json.dumps(r.get(f)) for r in known}) > 1]


def describe(record: dict[str, Any]) -> str:
    """One line: 'hyperlax 0.2.0, Python 3.11.9, jax 0.4.35, ..., cpu (cpu), CPU model'."""
    libs = ", ".join(f"{name} {record[name]}" for name in LIBRARIES if record.get(name))
    device = f"{record.get('backend', '?')} ({record.get('device_kind', '?')})"
    parts = [f"hyperlax {record.get('hyperlax', '?')}", f"Python {record.get('python', '?')}",
             libs, device]
    if record.get("xla_flags"):
        parts.append(f"XLA_FLAGS={record['xla_flags']!r}")
    config = [f"{k}={record[k]}" for k in FIELDS[FIELDS.index("jax_enable_x64"):-1]
              if record.get(k) not in (None, False)]
    parts += config
    if record.get("cpu"):
        parts.append(f"host CPU {record['cpu']}")
    return ", ".join(p for p in parts if p)


def difference_text(fields: list[str], records: Iterable[dict[str, Any] | None]) -> str:
    """'jax 0.4.30 vs 0.4.35; device_kind cpu vs NVIDIA H100' for the ``fields`` that differ."""
    known = [r for r in records if r is not None]
    out = []
    for f in fields:
        seen: list[str] = []
        for r in known:
            value = "(none)" if r.get(f) is None else str(r.get(f))
            if value not in seen:
                seen.append(value)
        out.append(f"{f} {' vs '.join(seen)}")
    return "; ".join(out)


def provenance_lines(records: dict[str, dict[str, Any] | None], what: str = "entries") -> list[str]:
    """What ``status`` prints about the records of complete entries (entry path -> record or
    None): one line per environment with its count, the entries without a record, and a
    warning naming the fields when more than one environment produced them."""
    if not records:
        return []
    lines = []
    for record, count in groups(records.values()):
        lines.append(f"produced by ({count} {what}): {describe(record)}")
    unknown = sum(r is None for r in records.values())
    if unknown:
        lines.append(f"produced by ({unknown} {what}): unknown (no {PROVENANCE_FILE}; written "
                     "before hyperlax 0.2.0)")
    warning = mixed_warning(records.values(), what)
    if warning:
        lines.append(warning)
    return lines


def mixed_warning(records: Iterable[dict[str, Any] | None], what: str) -> str | None:
    """A warning naming what differs when ``records`` come from more than one environment."""
    records = list(records)
    fields = differing_fields(records)
    if not fields:
        return None
    count = len(groups(records))
    return (f"warning: these {what} were produced in {count} different environments "
            f"({difference_text(fields, records)}); their results may differ for that reason "
            f"alone")
