"""Compiled programs by key, compiled ahead in a pool of threads while earlier entries train.

A program (``schedule.ProgramKey``) is built from *parts* (the runner's: ``init``, ``train``,
``evaluate``), each one ``jit(...).lower(...).compile()``. Each part has a key
(``part_key(program key, part)``, by default the program's own): parts with equal keys are one
executable, compiled once and shared by the programs that need it (the runner keys the
evaluation by what it depends on, so programs that differ only in their rollout shape share
one).

``ProgramCache`` hands out a program's parts (``get``), compiling them on demand in the caller's
thread (``workers=0``, or a key nobody scheduled), or, with ``workers >= 1``, ahead of time:
``want(uses)`` says what runs next (the current sub-batch first), and the cache keeps the
programs of the next ``window`` distinct keys compiled or compiling, and drops every other one
(without workers: every one not used again), and every part that no kept or wanted program
needs. So an executable is dropped after its last use, a program whose next use is far away is
dropped and compiled again when it comes near (from the persistent compilation cache, in well
under a second), and at most ``window`` programs are held at once.

Each part is one job: tracing and lowering hold the GIL, XLA's compile releases it, so the jobs
of several programs (and the parts of one) compile in parallel with each other and with
training. What is compiled does not depend on the thread or the order, so results are
bit-identical to compiling one at a time. Compile threads run at a lower priority
(``COMPILE_NICENESS``), so training keeps the cores it uses.

Stops: ``get`` waits in short slices with ``stopping.check()`` between, so a stop during a
compile is acted on at once; ``close`` cancels queued jobs and does not wait for running ones
(a command line process that stops ends with ``os._exit``).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from collections import Counter
from itertools import islice
from typing import Any, Callable, Hashable, Iterable

from hyperlax.exec import stopping
from hyperlax.exec.schedule import ProgramKey, Use

LOOKAHEAD_USES = 2000   # sub-batches scanned ahead for the next window of programs
POLL_SECONDS = 0.1      # how often a wait for a compile looks for a stop

# compile_part(key, part, samples) -> compiled executable
CompilePart = Callable[[ProgramKey, str, list[int], int], Any]
# part_key(key, part) -> what the compiled part depends on: equal keys share one executable
PartKey = Callable[[ProgramKey, str], Hashable]


def own_parts(key: ProgramKey, part: str) -> Hashable:
    """Every part belongs to one program: nothing is shared."""
    return key, part


COMPILE_NICENESS = 10   # compile threads yield the cores to training (Linux: per thread)


def _lower_priority() -> None:
    """In a compile thread: run at a lower priority than training, so a compile ahead takes
    the cores training leaves idle rather than slowing training down."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPILE_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: same priority
        pass


class _Program:
    def __init__(self) -> None:
        self.parts: dict[str, Future] = {}
        self.part_keys: dict[str, Hashable] = {}
        self.left = 0                  # parts it compiles itself (not shared) not compiled yet
        self.started: float | None = None
        self.seconds = 0.0             # from its first part's start to its last part's end
        self.reported = False          # its compile seconds went to a sub-batch already
        self.again = False             # compiled before, dropped, and needed again


class ProgramCache:
    def __init__(self, compile_part: CompilePart, parts: tuple[str, ...], workers: int = 0,
                 window: int | None = None, listener: Any = None,
                 part_key: PartKey = own_parts):
        self.compile_part = compile_part
        self.part_names = parts
        self.part_key = part_key
        self.workers = workers
        self.window = window if window is not None else workers + 1
        self.listener = listener          # .compiled(done, seconds) after each program
        self.compiles = 0                 # programs compiled (all parts)
        self.again = 0                    # of them, programs compiled again after a drop
        self._ever: set[ProgramKey] = set()  # every program this cache has held
        self.part_compiles: Counter[str] = Counter()  # compiles of each part name
        self.busy_seconds = 0.0           # wall time during which some compile ran
        self.waited_seconds = 0.0         # time callers of get() waited for compiles
        self._programs: dict[ProgramKey, _Program] = {}
        self._parts: dict[Hashable, Future] = {}  # every part held, by part key
        self._lock = threading.Lock()
        self._active = 0
        self._busy_since = 0.0
        self._pool = (ThreadPoolExecutor(workers, thread_name_prefix="hyperlax-compile",
                                         initializer=_lower_priority)
                      if workers > 0 else None)

    # --- what runs next --------------------------------------------------------------------

    def want(self, upcoming: Iterable[Use]) -> None:
        """``upcoming``: the sub-batches that run next, in order, the current one first. Keeps
        the next ``window`` distinct programs compiled or compiling and drops the rest (without
        workers: drops the programs not used again), and drops every part that neither a kept
        nor a wanted program has."""
        window = self.window if self._pool is not None else None  # None: drop only the unused
        wanted: dict[ProgramKey, Use] = {}
        for use in islice(upcoming, LOOKAHEAD_USES):
            if use.key not in wanted:
                wanted[use.key] = use
                if window is not None and len(wanted) >= window:
                    break
        for key in [k for k in self._programs if k not in wanted]:
            program = self._programs[key]
            if all(f.done() for f in program.parts.values()):
                del self._programs[key]  # its executables are freed with the last reference
        live = {self.part_key(key, part) for key in wanted for part in self.part_names}
        live.update(pk for program in self._programs.values()
                    for pk in program.part_keys.values())
        for pk in [pk for pk in self._parts if pk not in live]:
            del self._parts[pk]  # no program that runs next needs it: its last use is past
        for key, use in wanted.items():
            if key not in self._programs and self._pool is not None:
                self._submit(key, use.samples)

    def _new_program(self, key: ProgramKey) -> tuple[_Program, list[str]]:
        """A program holding the parts already compiled or compiling, and the names of the
        parts it must compile itself."""
        program = _Program()
        program.again = key in self._ever  # dropped earlier, needed again: a second compile
        self._ever.add(key)
        own = []
        for part in self.part_names:
            pk = program.part_keys[part] = self.part_key(key, part)
            if pk in self._parts:
                program.parts[part] = self._parts[pk]
            else:
                own.append(part)
        program.left = len(own)
        if not own:
            program.reported = True  # nothing compiled for it: no compile seconds to report
        self._programs[key] = program
        return program, own

    def _submit(self, key: ProgramKey, samples: list[int]) -> None:
        assert self._pool is not None
        program, own = self._new_program(key)
        for part in own:
            future = self._pool.submit(self._compile, program, key, part, samples)
            program.parts[part] = self._parts[program.part_keys[part]] = future

    # --- compiling ---------------------------------------------------------------------------

    def _compile(self, program: _Program, key: ProgramKey, part: str,
                 samples: list[int]) -> Any:
        signum = stopping.requested()
        if signum is not None:  # stopping: start nothing new
            raise stopping.Stopped(signum)
        with self._lock:
            now = time.perf_counter()
            if self._active == 0:
                self._busy_since = now
            self._active += 1
            if program.started is None:
                program.started = now
        try:
            compiled = self.compile_part(key, part, samples)
            with self._lock:
                self.part_compiles[part] += 1
            return compiled
        finally:
            with self._lock:
                self._active -= 1
                now = time.perf_counter()
                if self._active == 0:
                    self.busy_seconds += now - self._busy_since
                program.left -= 1
                done = 0
                if program.left == 0:  # the last part: the program is compiled
                    program.seconds = now - (program.started or now)
                    self.compiles += 1
                    self.again += program.again
                    done = self.compiles
            if done and self.listener is not None:
                self.listener.compiled(done, self.busy_seconds + self._running_for(),
                                       self.again)

    def _running_for(self) -> float:
        with self._lock:
            return time.perf_counter() - self._busy_since if self._active else 0.0

    def compile_seconds(self) -> float:
        """Wall time during which at least one compile ran (so far)."""
        return self.busy_seconds + self._running_for()

    # --- handing programs out ----------------------------------------------------------------

    def get(self, key: ProgramKey, samples: list[int]) -> tuple[dict[str, Any], float]:
        """The parts of program ``key`` (compiled now if nobody scheduled it), and the seconds
        its compile took if this is its first use (else 0)."""
        program = self._programs.get(key)
        if program is None and self._pool is not None:
            self._submit(key, samples)
            program = self._programs[key]
        if program is None:
            return self._compile_here(key, samples)
        started = time.perf_counter()
        try:
            parts = {name: self._result(program.parts[name]) for name in self.part_names}
        finally:
            self.waited_seconds += time.perf_counter() - started
        seconds, program.reported = (0.0 if program.reported else program.seconds), True
        return parts, seconds

    def _result(self, future: Future) -> Any:
        while True:
            stopping.check()
            try:
                return future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                continue

    def _compile_here(self, key: ProgramKey, samples: list[int]) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        program, own = self._new_program(key)
        try:
            for part in own:
                future: Future = Future()
                future.set_result(self._compile(program, key, part, samples))
                program.parts[part] = self._parts[program.part_keys[part]] = future
                stopping.check()  # a stop during a compile (seconds) is acted on here
        except BaseException:
            del self._programs[key]  # not a program without all its parts
            raise
        self.waited_seconds += time.perf_counter() - started
        program.reported = True
        return ({name: program.parts[name].result() for name in self.part_names},
                program.seconds)

    def keys(self) -> list[ProgramKey]:
        return list(self._programs)

    def part_keys(self) -> list[Hashable]:
        """The keys of the parts held (compiled or compiling)."""
        return list(self._parts)

    def parts(self, key: ProgramKey) -> dict[str, Any]:
        """A compiled program's parts (for tests: its HLO text)."""
        program = self._programs[key]
        return {name: program.parts[name].result() for name in self.part_names}

    def close(self) -> None:
        """Cancel queued compiles; running ones finish in the background."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
