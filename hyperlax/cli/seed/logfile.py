"""--save-logs: what a seed command prints while it runs, also appended to hyperlax.log in its
output directory.

The original system's commands (``--save-logs``, on by default) kept their console output in a
log file beside their results. Here every line written to stdout and stderr while the command
runs in its directory (the sweep's start, its cost, exec's progress, the summary, an error) is
appended to ``<directory>/hyperlax.log`` with the time it was printed; a second run of the same
command appends to the same log. The lines go through the one writer (``append_text``), never
outside the directory the user named. A live progress line that a terminal redraws in place is
logged once, as it last read. A log that cannot be written (disk full, a FIFO or a symbolic
link in its place) is said once on stderr; the run goes on without it. JAX-free.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from hyperlax.errors import HyperlaxError

LOG_NAME = "hyperlax.log"

# a terminal's control sequences (the progress line's "erase line"), which a file does not want
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean(line: str) -> str:
    """A printed line as a log keeps it: what follows its last carriage return (a redraw
    replaces what came before it on a terminal), without control sequences."""
    return _ESCAPE.sub("", line.rsplit("\r", 1)[-1])


class ConsoleLog:
    """The lines printed on the command's streams, appended to ``directory/hyperlax.log``.
    Until the directory is known (``attach``: a search claims its directory as it starts),
    lines wait in memory."""

    def __init__(self, within: Path, stderr: TextIO):
        self.within = within
        self.stderr = stderr       # the real one, for the one warning a failed log gets
        self.path: Path | None = None
        self.waiting: list[str] = []
        self.partial: dict[str, str] = {}
        self.failed = False
        self.lock = threading.Lock()

    def attach(self, directory: Path) -> None:
        with self.lock:
            self.path = directory / LOG_NAME
            waiting, self.waiting = self.waiting, []
            self._append(waiting)

    def feed(self, stream: str, text: str) -> None:
        """``text`` written to ``stream`` ('out' or 'err'): its complete lines are logged."""
        with self.lock:
            *lines, self.partial[stream] = (self.partial.get(stream, "") + text).split("\n")
            self._log(lines)

    def add(self, lines: list[str]) -> None:
        """Lines the command prints after its streams are given back (its error)."""
        with self.lock:
            self._log(lines)

    def close(self) -> None:
        with self.lock:
            rest = [part for part in self.partial.values() if clean(part).strip()]
            self.partial = {}
            self._log(rest)

    def _log(self, lines: list[str]) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        stamped = [f"{stamp} {clean(line)}" for line in lines]
        if self.path is None:
            self.waiting += stamped
        else:
            self._append(stamped)

    def _append(self, lines: list[str]) -> None:
        from hyperlax.storage.atomic import append_text

        if not lines or self.failed or self.path is None:
            return
        try:
            append_text(self.path, "".join(f"{line}\n" for line in lines), within=self.within)
        except (OSError, HyperlaxError) as exc:
            self.failed = True
            reason = exc.render() if isinstance(exc, HyperlaxError) else \
                exc.strerror or str(exc)
            self.stderr.write(f"warning: --save-logs: cannot append to {self.path} ({reason}); "
                              "the run goes on without its log\n")
            self.stderr.flush()


class _Tee(io.TextIOBase):
    """A text stream that writes through to ``stream`` and feeds what it writes to the log."""

    def __init__(self, stream: TextIO, log: ConsoleLog, name: str):
        self.stream, self.log, self.name = stream, log, name

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        self.log.feed(self.name, text)
        return written

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def writable(self) -> bool:
        return True


@contextmanager
def saving_logs(save: bool, directory: Path | None, within: Path) -> Iterator[ConsoleLog | None]:
    """While the block runs, what it prints is also logged in ``directory`` (or, when None,
    in the directory given to the log's ``attach`` later), never outside ``within``. A
    HyperlaxError leaving the block is logged as the user will see it. ``save`` False: only
    the block."""
    if not save:
        yield None
        return
    from hyperlax.cli.errors import error_lines

    out, err = sys.stdout, sys.stderr
    log = ConsoleLog(within, err)
    if directory is not None:
        log.attach(directory)
    sys.stdout, sys.stderr = _Tee(out, log, "out"), _Tee(err, log, "err")
    try:
        yield log
    except HyperlaxError as exc:
        log.close()
        log.add(error_lines(exc))
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        log.close()
