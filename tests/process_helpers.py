"""``hyperlax exec`` in a subprocess, its stderr read line by line by a thread: shared by the
crash, stop, shard and compile-ahead tests."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable


class ExecProcess:
    def __init__(self, plan_file: Path, root: Path, env: dict[str, str],
                 args: tuple[str, ...] = ()):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperlax", "exec", str(plan_file), "--output-root",
             str(root), *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, matches: Callable[[str], bool], what: str, timeout: float) -> None:
        """Read stderr until a line ``matches``; fail (killing exec) if it ends first or no
        such line comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"exec never reached {what}:\n{''.join(self.stderr)}")
            if line is None:
                raise AssertionError(f"exec ended before {what}:\n{''.join(self.stderr)}")
            self.stderr.append(line)
            if matches(line):
                return

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
