"""Progress of an exec: one redrawn status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _steps(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()

    def start(self, total: int, skipped: int, steps_total: int) -> None:
        self.total, self.done, self.steps_total, self.steps = total, skipped, steps_total, 0
        self.started = time.perf_counter()
        if skipped:
            self._log(f"skipping {skipped} of {total} entries already complete")
        if self.done == self.total:
            self._log("nothing to do: every entry is complete")

    def entry_done(self, entry: Any, result: Any, steps: int) -> None:
        self.done += 1
        self.steps += steps
        elapsed = time.perf_counter() - self.started
        rate = self.steps / elapsed if elapsed > 0 else 0.0
        left = self.steps_total - self.steps
        eta = _duration(left / rate) if rate > 0 else "?"
        line = (f"entries {self.done}/{self.total}  steps {_steps(self.steps)}/"
                f"{_steps(self.steps_total)}  {_steps(rate)} steps/s  ETA {eta}")
        if self.tty and not self.quiet:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            compile_s = sum(sb.compile_seconds for sb in result.sub_batches)
            self._log(f"{entry.path}: done in {result.seconds:.1f}s "
                      f"(compile {compile_s:.1f}s); {line}")

    def finish(self) -> None:
        if self.tty and not self.quiet and self.done:
            self.stream.write("\n")

    def _log(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)
