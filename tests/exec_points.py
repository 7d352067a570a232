"""Named points of a running exec, for tests that must act at an exact moment: kill it there,
stop it there, or know where it is. The package has no hook for this; ``install`` wraps the
functions that run those moments, in this process (with ``monkeypatch.setattr``, undone after
the test) or, through ``environment``, in an ``exec`` subprocess or a Ray worker, where
``exec_points_site/sitecustomize.py`` installs them once exec's modules are imported.

Points (``<entry>`` is the index of the entry being run, a rung entry's with halving):
``entry-start`` (its claim is held, before it trains), ``compile`` (before each part of a
program is traced; in a compile thread when compiling ahead), ``train`` (a sub-batch's programs
are ready, before its first training call), ``chunk`` (before each training call),
``checkpoint:<evaluations>`` (after a checkpoint is saved), ``after-file:<name>`` (after each
output file of an entry), ``before-marker`` (every file written, no marker yet) and, with
successive halving, ``rung-decided:<rung>`` (after a rung's decision is written; its entry is
``rung * RUNG_STRIDE``).

A point is wanted as ``<point>`` (at any entry) or ``<point>@<entry>``.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

SITE = Path(__file__).resolve().parent / "exec_points_site"

AT = "EXEC_POINT"              # traced: ``EXEC_POINT <point> <entry>`` on stderr
PAUSED = "EXEC_POINT_PAUSED"   # paused: ``EXEC_POINT_PAUSED <point>`` on stderr

TRACE_VARIABLE = "EXEC_POINTS_TRACE"        # any value: print every point reached
PAUSE_VARIABLE = "EXEC_POINTS_PAUSE_AT"     # a wanted point: pause there
REQUEST_VARIABLE = "EXEC_POINTS_REQUEST"    # a file: ``pause_one`` requests, read at each point

OnPoint = Callable[[str, int], None]


def wanted(want: str, point: str, entry: int) -> bool:
    return want in (point, f"{point}@{entry}")


class _Current:
    """The entry being run: points reached from the runner (compile, train, chunk,
    checkpoint) belong to the entry whose run started last."""

    entry = -1


def install(on_point: OnPoint, patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Call ``on_point(point, entry)`` at every point; ``patch`` sets each wrapper in place
    (``monkeypatch.setattr`` in a test process, so it is undone)."""
    from hyperlax.exec import executor, outputs, programs, runner
    from hyperlax.exec.checkpoints import snapshots
    from hyperlax.exec.halving import decide, rungs

    current = _Current()

    def reached(point: str, entry: int | None = None) -> None:
        on_point(point, current.entry if entry is None else entry)

    run_entry = executor.run_entry

    def entry_start(entry_runner: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        current.entry = entry.index
        reached("entry-start")
        return run_entry(entry_runner, entry, *args, **kwargs)

    compile_part = runner.CompiledRunner.compile_part

    def compiling(self: Any, *args: Any, **kwargs: Any) -> Any:
        reached("compile")
        return compile_part(self, *args, **kwargs)

    get = programs.ProgramCache.get

    def programs_ready(self: Any, *args: Any, **kwargs: Any) -> Any:
        parts, seconds = get(self, *args, **kwargs)
        reached("train")
        train = parts["train"]

        def chunk(*call: Any) -> Any:
            reached("chunk")
            return train(*call)
        return {**parts, "train": chunk}, seconds

    save = snapshots.EntryCheckpoints.save

    def saved(self: Any, sub_batch: int, width: int, snapshot: Any) -> Any:
        done = save(self, sub_batch, width, snapshot)
        reached(f"checkpoint:{snapshot.calls * self.group}")
        return done

    write = outputs._write

    def written(path: Path, data: bytes, root: Any) -> None:
        # outputs._write gets the output root (the writer's ``within``), not the entry: the
        # entry is the one run_entry started (``current``)
        write(path, data, root)
        reached(f"after-file:{path.name}")
        if path.name == "summary.json":  # write_entry's last file: the marker comes next
            reached("before-marker")

    rung_decision = rungs.rung_decision

    def decided(plan: Any, sweep: Any, owner: Any, rung: int, *args: Any, **kwargs: Any) -> Any:
        decision = rung_decision(plan, sweep, owner, rung, *args, **kwargs)
        reached(f"rung-decided:{rung}", rung * decide.RUNG_STRIDE)
        return decision

    patch(executor, "run_entry", entry_start)
    patch(runner.CompiledRunner, "compile_part", compiling)
    patch(programs.ProgramCache, "get", programs_ready)
    patch(snapshots.EntryCheckpoints, "save", saved)
    patch(outputs, "_write", written)
    patch(rungs, "rung_decision", decided)


def pause(point: str) -> None:
    """Say so and sleep until killed; a stop (SIGINT, SIGTERM) ends the sleep and is acted
    on at once (``stopping.sleep`` raises Stopped)."""
    from hyperlax.exec import stopping

    print(f"{PAUSED} {point}", file=sys.stderr, flush=True)
    stopping.sleep(3600)


def trace(point: str, entry: int) -> None:
    print(f"{AT} {point} {entry}", file=sys.stderr, flush=True)


def pause_at(want: str) -> OnPoint:
    def on_point(point: str, entry: int) -> None:
        if wanted(want, point, entry):
            pause(point)
    return on_point


def pause_one(request_file: Path) -> OnPoint:
    """Ray: the first process of all (any worker) to reach the point ``request_file`` asks
    for writes ``victim`` (``<pid> <entry>``) into the directory it names and pauses there,
    for the test to SIGKILL it. The request is read at each point, as the workers outlive the
    test that wrote it."""
    def on_point(point: str, entry: int) -> None:
        try:
            request = json.loads(request_file.read_text())
        except FileNotFoundError:
            return
        if not wanted(request["point"], point, entry):
            return
        directory = Path(request["victim_dir"])
        staged = directory / f".victim.{os.getpid()}"
        staged.write_text(f"{os.getpid()} {entry}\n")
        try:
            os.link(staged, directory / "victim")
        except FileExistsError:
            return  # another task is the victim
        finally:
            staged.unlink()
        pause(point)
    return on_point


def environment(*, trace_points: bool = False, pause: str | None = None,
                request_file: Path | None = None) -> dict[str, str]:
    """Variables for a subprocess (an exec, a Ray cluster) to have these points installed."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(SITE),
                                                       os.environ.get("PYTHONPATH")]))}
    if trace_points:
        env[TRACE_VARIABLE] = "1"
    if pause is not None:
        env[PAUSE_VARIABLE] = pause
    if request_file is not None:
        env[REQUEST_VARIABLE] = str(request_file)
    return env


def from_environment() -> OnPoint | None:
    """What the variables of ``environment`` ask for, or None."""
    actions = []
    if os.environ.get(TRACE_VARIABLE):
        actions.append(trace)
    if os.environ.get(PAUSE_VARIABLE):
        actions.append(pause_at(os.environ[PAUSE_VARIABLE]))
    if os.environ.get(REQUEST_VARIABLE):
        actions.append(pause_one(Path(os.environ[REQUEST_VARIABLE])))
    if not actions:
        return None

    def on_point(point: str, entry: int) -> None:
        for action in actions:
            action(point, entry)
    return on_point


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then`` once module ``name`` is imported (its body run), not before: a process
    that never runs exec (Ray's own processes) never imports it, nor JAX."""

    def __init__(self, name: str, then: Callable[[], None]):
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module = spec.loader.exec_module

        def run_then_install(module: Any) -> None:
            exec_module(module)
            self.then()
        spec.loader.exec_module = run_then_install
        return spec


def install_from_environment() -> None:
    """In a subprocess started with ``environment``: install once exec's modules load."""
    on_point = from_environment()
    if on_point is not None:
        sys.meta_path.insert(0, _AfterImport("hyperlax.exec.executor",
                                             lambda: install(on_point)))
