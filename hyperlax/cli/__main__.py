"""``python -m hyperlax.cli``: the original system's way to start its command line."""

from hyperlax.__main__ import run

run()
