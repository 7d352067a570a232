"""How every hyperlax command reports a failure: a HyperlaxError becomes located ``error: ...``
lines (and ``hint: ...``) on stderr, no traceback, and the error's exit status: 2 for bad
input, 1 for a disk error (StorageError) or a failed Ray task. JAX-free."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from hyperlax.errors import HyperlaxError

EXIT_BAD_INPUT = 2


def print_error(exc: HyperlaxError) -> None:
    for line in exc.render().splitlines():
        click.echo(line if line.startswith("hint: ") else f"error: {line}", err=True)


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
