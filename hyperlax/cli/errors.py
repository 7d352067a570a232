"""How every hyperlax command reports a failure: a HyperlaxError becomes located ``error: ...``
lines (and ``hint: ...``) on stderr, no traceback, and the error's exit status: 2 for bad
input, 1 for a disk error (StorageError) or a failed Ray task; and how the process ends on a
stop (``ProcessGroup``). JAX-free."""

from __future__ import annotations

import functools
import signal
import sys
from typing import Any, Callable

import click

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError

EXIT_BAD_INPUT = 2


def error_lines(exc: HyperlaxError) -> list[str]:
    """What the user sees of ``exc``: ``error: ...`` lines, then its ``hint: ...``."""
    return [line if line.startswith("hint: ") else f"error: {line}"
            for line in exc.render().splitlines()]


def print_error(exc: HyperlaxError) -> None:
    for line in error_lines(exc):
        click.echo(line, err=True)


def exit_status(exc: HyperlaxError) -> int:
    return getattr(exc, "exit_status", EXIT_BAD_INPUT)


def user_errors(command: Callable) -> Callable:
    """Turn a HyperlaxError into a located message on stderr and its exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HyperlaxError as exc:
            print_error(exc)
            sys.exit(exit_status(exc))

    return wrapper


# --- how the process ends on a stop --------------------------------------------------------

# commands that run plans: stop handling of their own
STOPPABLE = {"exec", "sweep-hp-samples", "run-single-hp", "run-benchmark", "benchmark", "search",
             "optuna-hp-search"}


class ProcessGroup(click.Group):
    """The ``hyperlax`` group, run as a command line process (``args`` None: sys.argv; a
    console script, ``python -m``) or in-process (click's CliRunner passes ``args``). Only a
    command line process may end itself with ``os._exit`` on a stop, and a signal while it
    starts (before exec installs its handling) ends it with the hint and 128 + the signal
    number instead of a traceback."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        if args is not None:
            return super().main(args, *rest, **kwargs)
        stopping.allow_hard_exit()
        stopping.early()
        try:
            return super().main(args, *rest, **kwargs)
        except (stopping.EarlyStop, KeyboardInterrupt) as stop:
            stopping.early_exit(getattr(stop, "signum", signal.SIGINT))


def end_early_stop_handling(command: str | None) -> None:
    """Commands that do not run plans get Python's usual signal handling back."""
    if command not in STOPPABLE:
        stopping.end_early()
