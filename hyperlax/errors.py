"""The one error type users see. The CLI prints it without a traceback and exits with status 2."""

from __future__ import annotations


class HyperlaxError(Exception):
    """A problem with the user's input, located and with a way out.

    ``problems`` is a list of ``(location, message)``; location is a dotted path into the
    manifest or plan (``space.actor_lr.low``) or empty. ``source`` names the file.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]] | str, hint: str = ""):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.source = source
        self.problems = problems
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for location, message in self.problems:
            parts = [p for p in (self.source, location) if p]
            lines.append(": ".join(parts + [message]))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)
