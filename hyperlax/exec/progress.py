"""Progress of an exec: one redrawn status line on a terminal, plain log lines otherwise.

Events: ``announce`` (exec's first line, before JAX is imported), ``start``, ``compiled`` (after
each program, from compile threads), ``entry_started``, ``chunk`` (after each evaluation chunk
of a sub-batch: steps and the samples' latest evaluation returns), ``entry_done``, ``finish``.
On a terminal every event redraws the status line (at most ``REDRAW_SECONDS`` apart). Off a
terminal each completed entry logs a line, as do the first and the last compile; compile and
in-entry progress log at most one line every ``LOG_SECONDS``. JAX-free and thread-safe.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any, TextIO

LOG_SECONDS = 5.0      # off a terminal: in-entry and compile progress at most this often
REDRAW_SECONDS = 0.2   # on a terminal: the status line at most this often


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
        self.lock = threading.RLock()
        self.total = self.done = self.steps_total = self.steps = self.partial = 0
        self.programs = self.compiled_count = 0
        self.announced = 0                   # the programs exec's first line counted
        self.compile_seconds = 0.0
        self.best: dict[int, float] = {}     # sample -> its latest evaluation return
        self.entry: Any = None
        self.started = time.perf_counter()
        self._last_log = self._last_draw = -math.inf

    # --- events ----------------------------------------------------------------------------

    def announce(self, text: str, programs: int = 0) -> None:
        """exec's first line; ``programs``: how many programs it will compile."""
        with self.lock:
            self.programs = self.announced = programs
            self._log(text)

    def start(self, total: int, skipped: int, steps_total: int) -> None:
        with self.lock:
            self.total, self.done, self.steps_total, self.steps = total, skipped, steps_total, 0
            self.started = time.perf_counter()
            if self.done == self.total:
                self._log("nothing to do: every entry is complete")

    def compiled(self, done: int, seconds: float, again: int = 0) -> None:
        """``done`` programs compiled so far, ``again`` of them a second time (dropped to save
        memory while others ran, then needed again): the announced count plus those."""
        with self.lock:
            self.compiled_count, self.compile_seconds = done, seconds
            grown = max(self.announced + again, done) - self.programs
            self.programs += grown
            if grown > 0 and not self.tty:  # say why the count moved, never raise it quietly
                why = (f"{again} dropped to save memory and compiled again" if again else
                       "programs of batches decided as the sweep ran")
                self._log(f"{self.programs} programs to compile, not {self.announced}: {why}")
            if self.tty:
                self._draw()
            elif done in (1, self.programs) or self._due():
                self._log(f"compiled {done}/{self.programs} programs ({seconds:.1f}s)")

    def entry_started(self, entry: Any) -> None:
        with self.lock:
            self.entry, self.partial = entry, 0

    def chunk(self, steps: int, latest: dict[int, float]) -> None:
        with self.lock:
            self.partial += steps
            self.best.update({s: r for s, r in latest.items() if math.isfinite(r)})
            if self.tty:
                self._draw()
            elif self._due():
                where = f"{self.entry.path}: " if self.entry is not None else ""
                self._log(f"{where}training; {self._line()}")

    def entry_done(self, entry: Any, result: Any, steps: int) -> None:
        with self.lock:
            self.done += 1
            self.steps += steps
            self.partial = 0
            if self.tty:
                self._draw(force=True)
            else:
                compile_s = sum(sb.compile_seconds for sb in result.sub_batches)
                self._log(f"{entry.path}: done in {result.seconds:.1f}s "
                          f"(compile {compile_s:.1f}s); {self._line()}")

    def finish(self) -> None:
        with self.lock:
            if self.tty and not self.quiet and self._last_draw > -math.inf:
                self.stream.write("\n")
                self.stream.flush()
                self._last_draw = -math.inf

    # --- rendering ---------------------------------------------------------------------------

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = self.steps + self.partial
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _duration((self.steps_total - done) / rate) if rate > 0 else "?"
        line = (f"entries {self.done}/{self.total}  steps {_steps(done)}/"
                f"{_steps(self.steps_total)}  {_steps(rate)} steps/s  ETA {eta}")
        if self.best:
            line += f"  best return {max(self.best.values()):.1f}"
        return line

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.quiet or (not force and now - self._last_draw < REDRAW_SECONDS):
            return
        line = self._line()
        if self.programs and self.compiled_count < self.programs:
            grown = self.programs - self.announced  # said, as off a terminal, not hidden
            line += (f"  compiled {self.compiled_count}/{self.programs} "
                     + (f"({grown} more than announced) " if grown > 0 else "")
                     + f"({self.compile_seconds:.0f}s)")
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._last_draw = now

    def _due(self) -> bool:
        return time.perf_counter() - self._last_log >= LOG_SECONDS

    def _log(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty and self._last_draw > -math.inf:  # below the status line, then redraw it
            self.stream.write("\r\033[K")
            self._last_draw = -math.inf
        print(text, file=self.stream, flush=True)
        self._last_log = time.perf_counter()
