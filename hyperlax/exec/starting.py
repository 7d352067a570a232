"""A stop while the command line starts. From the entry point's first line
(``hyperlax.__main__.run``: the ``hyperlax`` console script and ``python -m hyperlax``) until a
command that trains installs its own handling (``stopping``), SIGINT or SIGTERM raises
``EarlyStop``; the entry point turns it into the resume hint and 128 + the signal number. Only
start-up code runs meanwhile (imports, argument parsing): nothing was read or written yet.

Imports nothing but ``os``, ``signal`` and ``sys``: the entry point imports it before anything
else, so the only time a signal meets Python's default handling (a ``KeyboardInterrupt``
traceback, death by SIGTERM) is the interpreter's own start-up, before any of our code runs.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: typing takes milliseconds to import, and this goes first
    from typing import Any, NoReturn

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EarlyStop(BaseException):
    """A signal while the command line starts (before a command installs its handling)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def early_handler(signum: int, frame: Any) -> None:
    raise EarlyStop(signum)


def early() -> None:
    """From the entry point's first line: a signal raises EarlyStop until ``stopping.install``
    or ``stopping.end_early``. Only CLI start-up code (imports, argument parsing) runs
    meanwhile. Off the main thread signals are left alone."""
    try:
        for s in SIGNALS:
            signal.signal(s, early_handler)
    except ValueError:  # not the main thread
        pass


def stop_signal(stop: BaseException) -> int:
    """The signal an EarlyStop or a KeyboardInterrupt (Python's own SIGINT handler) stands for."""
    return getattr(stop, "signum", signal.SIGINT)


def early_exit(signum: int, argv: list[str] | None = None) -> NoReturn:
    """The hint and exit status for a stop while starting: nothing ran yet, so the line has no
    count of complete entries. Signals are ignored from here on: a second one must not
    interrupt the exit with a traceback."""
    try:
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    import shlex

    args = (sys.argv if argv is None else argv)[1:]
    command = shlex.join(["hyperlax", *args])
    try:
        sys.stderr.write(f"interrupted by {signal_name(signum)} while starting; "
                         f"resume with: {command}\n")
        sys.stderr.flush()
    except Exception:  # a closed or broken stream: nothing more to say
        pass
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os._exit(128 + signum)
