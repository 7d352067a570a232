"""Stopping ``exec`` on SIGINT or SIGTERM: promptly, with the resume hint, and nothing lost.

A signal handler never raises into whatever code happens to run (in JAX, that can be an XLA
callback that prints "Exception ignored" and carries on). Instead:

- The Python handler only records the signal (one assignment: no locks, no raise).
- ``signal.set_wakeup_fd`` writes the signal's number to a socket that a watcher thread
  reads. The C-level handler does that at once, even while the main thread is blocked in C++
  (an XLA compile, a training call), where Python handlers do not run.
- The main thread looks at the flag at safe points of its own (``check``, ``sleep``): between
  entries, sub-batches and files, after a compile or a training call, in wait loops. There it
  raises ``Stopped``: the claim context managers release on the way up, and the exec command
  prints the resume hint and ends with 128 + the signal number.
- The watcher gives the main thread ``GRACE_SECONDS`` to reach a safe point (then
  ``CLEANUP_SECONDS`` to unwind). When it does not (a long compile or training call), the
  watcher ends the process itself: it waits for a file write in progress to finish
  (``writing``), releases the entry claims this process holds, prints the same hint and calls
  ``os._exit``. A second signal ends the process that way at once.

Only a real command line process ends itself (``allow_hard_exit``, set by the CLI's entry
point): exec run in-process (click's CliRunner, tests) stops at a safe point and returns.

Before that, while the command line starts, ``starting`` handles a stop (``EarlyStop``; its
names are re-exported here): from the entry point's first line until the exec command takes
over, a signal ends the process with the hint and the exit status.

JAX-free and stdlib-only: imported before anything else.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator, NoReturn

# the start-up part, re-exported: the CLI's group and the commands use it through this module
from hyperlax.exec.starting import SIGNALS, EarlyStop, early, early_exit, signal_name  # noqa
from hyperlax.exec.starting import early_handler as _early_handler

GRACE_SECONDS = 2.0     # for the main thread to reach a safe point
CLEANUP_SECONDS = 5.0   # from the safe point to the end: unwinding, releasing, Ray shutdown
WRITE_WAIT_SECONDS = 5.0  # an emergency exit waits this long for a file write to finish


class Stopped(BaseException):
    """SIGINT or SIGTERM during exec, raised at a safe point of exec's own code. A
    BaseException, like KeyboardInterrupt, so nothing on the way up swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def default_hint(signum: int) -> str:
    return f"interrupted by {signal_name(signum)}; resume with: the same command"


_hard_exit = False


def allow_hard_exit(allowed: bool = True) -> None:
    """This process is a command line's: a stop may end it with ``os._exit``."""
    global _hard_exit
    _hard_exit = allowed


def hard_exit_allowed() -> bool:
    return _hard_exit


def flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more to say
            pass


class _Handling:
    """The installed stop handling: handlers, wakeup socket, watcher thread."""

    def __init__(self) -> None:
        self.signum: int | None = None          # the first stop's signal
        self.requested = threading.Event()      # set by the watcher
        self.unwinding_since: float | None = None  # a safe point raised Stopped
        self.describe: Callable[[int], str] = default_hint
        self.exit_lock = threading.Lock()       # the hint is printed and the process ended once
        self.announced = False
        self.writing = threading.RLock()        # held by the main thread while it writes a file
        self.previous: dict[int, Any] = {}
        self.previous_fd = -1
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)
        self.thread = threading.Thread(target=self._watch, daemon=True,
                                       name="hyperlax-stop-watcher")

    # --- main thread ---------------------------------------------------------------------

    def install(self) -> None:
        for s in SIGNALS:
            previous = signal.getsignal(s)
            if previous is _early_handler:  # start-up is over: back to Python's defaults after
                previous = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
            self.previous[s] = previous
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        self.thread.start()
        self.claim_signals()

    def claim_signals(self) -> None:
        """(Re)install the handlers, after a library replaced them (ray.init does)."""
        for s in SIGNALS:
            signal.signal(s, self._handler)

    def uninstall(self) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self.previous_fd)
        self.writer.close()  # the watcher reads end-of-file and ends
        self.thread.join(timeout=5)
        self.reader.close()

    def _handler(self, signum: int, frame: Any) -> None:
        # Runs on the main thread between bytecodes, anywhere: record, nothing else.
        if self.signum is None:
            self.signum = signum

    # --- watcher thread ------------------------------------------------------------------

    def _watch(self) -> None:
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select([self.reader], [], [], timeout)
                data = self.reader.recv(64) if ready else None
            except (OSError, ValueError):
                return
            if data == b"":
                return  # uninstalled
            signums = [b for b in data or b"" if b in SIGNALS]
            if signums:
                if self.requested.is_set():  # a second signal: end now
                    self.emergency_exit(WRITE_WAIT_SECONDS / 5)
                    continue
                if self.signum is None:
                    self.signum = signums[0]
                self.requested.set()
                deadline = time.monotonic() + GRACE_SECONDS
                if len(signums) > 1:
                    self.emergency_exit(WRITE_WAIT_SECONDS / 5)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                if self.unwinding_since is not None:
                    late = self.unwinding_since + CLEANUP_SECONDS
                    if time.monotonic() < late:
                        deadline = late
                        continue
                self.emergency_exit(WRITE_WAIT_SECONDS)
                deadline = None  # in-process: the main thread stops at its next safe point

    def emergency_exit(self, write_wait: float) -> None:
        """End the process now (a command line's only): after a file write in progress,
        releasing held entry claims, with the resume hint."""
        if not _hard_exit:
            return
        self.writing.acquire(timeout=write_wait)  # kept: no write starts after this
        claims = sys.modules.get("hyperlax.storage.claims")
        if claims is not None:
            try:
                claims.release_held()
            except Exception:
                pass
        signum = self.signum or signal.SIGINT
        self.announce(lambda line: sys.stderr.write(line + "\n"), fresh_line=True)
        flush_streams()
        os._exit(128 + signum)

    def announce(self, echo: Callable[[str], Any], fresh_line: bool = False) -> None:
        """Print the hint, once per process."""
        with self.exit_lock:
            if self.announced:
                return
            self.announced = True
            signum = self.signum or signal.SIGINT
            try:
                line = self.describe(signum)
            except Exception:
                line = default_hint(signum)
            try:
                tty = sys.stderr.isatty()
            except Exception:
                tty = False
            echo(("\n" if tty and fresh_line else "") + line)


_current: _Handling | None = None


def installed() -> bool:
    return _current is not None


def install() -> bool:
    """Install stop handling (from the main thread); False when it already is, or when this is
    not the main thread (then signals are left alone)."""
    global _current
    if _current is not None:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    handling = _Handling()
    handling.install()
    _current = handling
    return True


def uninstall() -> None:
    global _current
    handling, _current = _current, None
    if handling is not None:
        handling.uninstall()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Stop handling for the duration (nested uses share the outer one). A command line
    process keeps it to the end: a signal while the interpreter exits is only recorded."""
    mine = install()
    try:
        yield
    finally:
        if mine and not _hard_exit:
            uninstall()


def claim_signals() -> None:
    """Put our handlers back after a library replaced them."""
    if _current is not None:
        _current.claim_signals()


def set_hint(describe: Callable[[int], str] | None) -> None:
    """What a stop prints: ``describe(signum)``, one line."""
    if _current is not None:
        _current.describe = describe or default_hint


def requested() -> int | None:
    """The stop's signal number, or None."""
    if _current is None:
        return None
    if _current.requested.is_set() or _current.signum is not None:
        return _current.signum or signal.SIGINT
    return None


def check() -> None:
    """A safe point: raise Stopped if a stop was asked for."""
    signum = requested()
    if signum is not None:
        if _current is not None and _current.unwinding_since is None:
            _current.unwinding_since = time.monotonic()
        raise Stopped(signum)


def sleep(seconds: float) -> None:
    """``time.sleep`` that a stop cuts short (then raises Stopped)."""
    if _current is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        check()
        # the handler may have run without the watcher having seen the byte yet
        _current.requested.wait(min(left, 0.1))
    check()


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Around one file write: an emergency exit waits for it to finish."""
    handling_now = _current
    if handling_now is None:
        yield
        return
    with handling_now.writing:
        yield


def announce(echo: Callable[[str], Any], fresh_line: bool = True) -> None:
    """Print the stop's hint through ``echo`` (once: the watcher will not print it again)."""
    if _current is not None:
        _current.announce(echo, fresh_line)


def finish(status: int) -> NoReturn:
    """End the exec command with ``status``: a stopped command line process ends with
    ``os._exit`` after flushing (no interpreter teardown with XLA threads still running);
    otherwise (in-process, or not a stop) SystemExit."""
    if _hard_exit and status >= 128:
        flush_streams()
        os._exit(status)
    sys.exit(status)


# --- while the command line starts (``starting``) ----------------------------------------

def end_early() -> None:
    """Back to Python's default handling (a command other than exec is about to run)."""
    if _current is None and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if signal.getsignal(s) is _early_handler:
                signal.signal(s, signal.default_int_handler if s == signal.SIGINT
                              else signal.SIG_DFL)
