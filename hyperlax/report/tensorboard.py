"""A sweep's results as TensorBoard event files, for its HParams dashboard: one run per sample
(``sample_00003/``) holding the sample's hyperparameters, its final and best return (mean over
replicates) as the dashboard's metrics, and its learning curve (mean over replicates, and each
replicate when there are several) at the evaluation steps.

A population-based training member's run also carries its lineage: ``pbt/copied_from`` (the
member whose weights it took) at the env step of each copy, a ``pbt/lineage`` text of the
same, and its schedule through the weights it carried (``report.pbt``) as ``pbt/<name>``
scalars at the start of each interval and at its end (booleans as 0 and 1; a text value in
``pbt/lineage``). Its HParams are the values of the last interval, as in results.csv.

results.csv and report.json stay the source of truth; this is a view of them. tensorboardX is an
optional extra (``pip install 'hyperlax[tensorboard]'``): only its protobuf messages and its
CRC are used, and each event file is assembled in memory and written atomically, so an
interrupted export never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from hyperlax.errors import HyperlaxError
from hyperlax.report.results import Collected, sample_values
from hyperlax.storage import atomic

EXTRA = "pip install 'hyperlax[tensorboard]'"
EVENT_FILE = "events.out.tfevents.hyperlax"   # TensorBoard reads files named *tfevents*
METRICS = ("hparam/final_return", "hparam/best_return")


def require_tensorboardx() -> Any:
    try:
        from tensorboardX import summary
        from tensorboardX.proto import event_pb2
        from tensorboardX.record_writer import masked_crc32c
    except ImportError:
        raise HyperlaxError("--tensorboard", "needs tensorboardX, which is not installed",
                            f"install the optional extra: {EXTRA}") from None
    return summary, event_pb2, masked_crc32c


def export_tensorboard(collected: Collected, out_dir: Path) -> int:
    """Write one event file per finished sample under ``out_dir``; how many were written."""
    summary, event_pb2, crc = require_tensorboardx()
    if out_dir.exists() and not out_dir.is_dir():
        raise HyperlaxError(str(out_dir), "is not a directory", "choose another --tensorboard")
    plan = collected.plan
    wall = time.time()
    written = 0
    for result in collected.samples:
        if result.status == "missing" or result.returns is None:
            continue
        values = sample_values(collected, result.index)  # with PBT, the last interval's
        hparams = {name: _hparam(values[name]) for name in plan.sampled}
        metrics = {METRICS[0]: result.score("final"), METRICS[1]: result.score("best")}
        experiment, start, end = summary.hparams(hparams, {k: 0.0 for k in METRICS})
        events = [event_pb2.Event(wall_time=wall, file_version="brain.Event:2"),
                  event_pb2.Event(wall_time=wall, summary=experiment),
                  event_pb2.Event(wall_time=wall, summary=start)]
        events += _curve_events(result, summary, event_pb2, wall)
        if collected.pbt is not None:
            events += _lineage_events(collected.pbt, result.index, summary, event_pb2, wall)
        last = int(result.eval_steps[-1]) if len(result.eval_steps) else 0
        events += [event_pb2.Event(wall_time=wall, step=last, summary=summary.scalar(k, v))
                   for k, v in metrics.items() if v is not None and math.isfinite(v)]
        events.append(event_pb2.Event(wall_time=wall, summary=end))
        data = b"".join(_record(e.SerializeToString(), crc) for e in events)
        path = out_dir / f"sample_{result.index:05d}" / EVENT_FILE
        try:
            atomic.atomic_write(path, data, within=out_dir)
        except OSError as exc:
            raise atomic.storage_error(path, exc, "cannot write the TensorBoard events",
                                       "export again") from None
        written += 1
    return written


def _curve_events(result: Any, summary: Any, event_pb2: Any, wall: float) -> list[Any]:
    """The learning curve: mean over replicates (NaN where a replicate diverged is left out),
    and every replicate's own curve when there are several."""
    returns = np.asarray(result.returns, dtype=np.float64)        # [R, E]
    events = []
    for e, step in enumerate(np.asarray(result.eval_steps)):
        column = returns[:, e]
        finite = column[np.isfinite(column)]
        if finite.size:
            events.append(event_pb2.Event(wall_time=wall, step=int(step),
                                          summary=summary.scalar("return/mean",
                                                                 float(finite.mean()))))
        if returns.shape[0] > 1:
            for r, value in enumerate(column):
                if math.isfinite(value):
                    events.append(event_pb2.Event(
                        wall_time=wall, step=int(step),
                        summary=summary.scalar(f"return/replicate_{r}", float(value))))
    return events


def _lineage_events(history: Any, sample: int, summary: Any, event_pb2: Any,
                    wall: float) -> list[Any]:
    """A PBT member's copies and its schedule (see the module docstring)."""
    def event(step: int, value: Any) -> Any:
        return event_pb2.Event(wall_time=wall, step=int(step), summary=value)

    copies = history.lineage(sample)
    events = [event(c.step, summary.scalar("pbt/copied_from", float(c.copied))) for c in copies]
    stages = history.schedule(sample)
    lines = [f"after interval {c.interval} (env step {c.step}): copied sample {c.copied}"
             for c in copies] or ["copied no one"]
    lines += [f"interval {s.interval} from env step {s.step}: weights of sample "
              f"{s.weights_of}, " + ", ".join(f"{n} = {v}" for n, v in s.values.items())
              for s in stages]
    events.append(event(0, summary.text("pbt/lineage", "  \n".join(lines))))
    end = history.end_step(sample)
    for k, stage in enumerate(stages):
        for name, value in stage.values.items():
            if isinstance(value, (bool, int, float)):
                steps = [stage.step] + ([end] if k == len(stages) - 1 else [])
                events += [event(step, summary.scalar(f"pbt/{name}", float(value)))
                           for step in steps]
    return events


def _hparam(value: Any) -> Any:
    """A value as the HParams plugin takes it: bool, number or string (lists as JSON)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _record(data: bytes, crc: Any) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C."""
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", crc(header)) + data + struct.pack("<I", crc(data)))
