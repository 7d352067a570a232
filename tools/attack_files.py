"""Attack hyperlax's files: plant hostile things in every directory it writes and count what held.

    python tools/attack_files.py [--work DIR] [--only SUBSTRING] [--json FILE]

Builds, once, a tiny finished sweep, a finished halving sweep with checkpoints, a finished
search, a finished `hyperlax benchmark`, then, for each attack, copies the pristine state,
plants one hostile thing (a symbolic link leading out of the output root, to a file or to a
directory, a FIFO, JSON nested too deeply for any decoder, an oversized sparse file, a link to
/dev/zero, a told value edited), runs one command in a process of its own, and judges:

    held    it ended by itself within the timeout, with status 0, 1 or 2 (or 130/143 for a
            stop attack), no traceback, and nothing outside the root changed; a refusal
            (1 or 2) names the file it refuses
    broken  anything else: a hang, a traceback, a write or delete outside, a silent accept of
            an edited value

"While it runs" attacks plant the thing after the command started (a thread waits for a file
the command writes early). The numbers go in the closing note of issue #23; rerun after any
change to a reader or a writer. About 10 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import TINY_RECIPE, tiny_sweep  # noqa: E402  (the tests' tiny sweep and recipe)

TIMEOUT = 120.0
NESTED = b"[" * 200_000 + b"]" * 200_000
SEARCH_MANIFEST = """\
[sweep]
name = "attack-search"
recipe = "tiny.toml"
recipe_space = "include"
env = "gymnax.cartpole"
batch_size = 2

[search]
method = "tpe"
trials = 4
trials_per_round = 2
objectives = [{ metric = "final_return" }, ]
"""
HALVING_EXTRA = 'rungs = [1, "1"]\neta = 2\ncheckpoint_every = 1\n'


def hyperlax(*args: object, cwd: Path, timeout: float = TIMEOUT,
             during: Callable[[], None] | None = None) -> tuple[int | None, str, str, float]:
    """(status or None on a timeout, stdout, stderr, seconds) of one command, in a process of
    its own; ``during`` runs in a thread while it does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hyperlax", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_memory_cap)
    if during is not None:
        threading.Thread(target=during, daemon=True).start()
    try:
        out, err = proc.communicate(timeout=timeout)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        status = None
    return status, out, err, time.monotonic() - started


def _memory_cap() -> None:
    """At most 8 GiB of address space per command (JAX on CPU maps about 2): a reader that
    reads /dev/zero to the end fails with a MemoryError (judged broken), not the machine."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def snapshot(directory: Path) -> dict[str, tuple]:
    """What is in ``directory`` (names, kinds, sizes, mtimes): any write there shows."""
    found = {}
    for path in sorted(directory.rglob("*")):
        st = os.lstat(path)
        found[str(path.relative_to(directory))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


# --- the hostile things ---------------------------------------------------------------------

def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def link_file_out(path: Path, outside: Path) -> None:
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "victim.txt")


def link_dir_out(path: Path, outside: Path) -> None:
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside)


def fifo(path: Path, outside: Path) -> None:
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def nested(path: Path, outside: Path) -> None:
    _clear(path)
    path.write_bytes(NESTED)


def oversized(path: Path, outside: Path) -> None:
    _clear(path)
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GiB on paper, nothing on disk


def dev_zero(path: Path, outside: Path) -> None:
    _clear(path)
    path.symlink_to("/dev/zero")


def swap_told(path: Path, outside: Path) -> None:
    """Swap the told values of the last round's first two trials (no checksum to recompute:
    the study file has none; the curves the round wrote are the truth)."""
    doc = json.loads(path.read_text())
    told = doc["rounds"][-1]["told"]
    told[0]["values"], told[1]["values"] = told[1]["values"], told[0]["values"]
    path.write_text(json.dumps(doc, indent=2))


def told_99999(path: Path, outside: Path) -> None:
    doc = json.loads(path.read_text())
    doc["rounds"][-1]["told"][0]["values"] = [99999.0]
    path.write_text(json.dumps(doc, indent=2))


# edits a command must refuse (status 0 is a silent accept)
MUST_REFUSE = {"swap-told", "told-99999"}
PLANT = {"swap-told": swap_told, "told-99999": told_99999,
         "link-file-out": link_file_out, "link-dir-out": link_dir_out, "fifo": fifo,
         "nested": nested, "oversized": oversized, "dev-zero": dev_zero}


# --- the states attacked --------------------------------------------------------------------

def build(work: Path) -> dict[str, Path]:
    """The pristine finished states, each in a directory of its own under ``work``."""
    states = {}
    sweep = work / "sweep"
    sweep.mkdir(parents=True)
    (sweep / "sweep.toml").write_text(tiny_sweep(n=4, batch=2))
    _must(hyperlax("plan", "sweep.toml", "-o", "plan.msgpack", cwd=sweep))
    _must(hyperlax("exec", "plan.msgpack", "--output-root", "out", "-q", cwd=sweep))
    _must(hyperlax("report", "plan.msgpack", "--output-root", "out", cwd=sweep))
    states["sweep"] = sweep

    halving = work / "halving"
    halving.mkdir()
    (halving / "sweep.toml").write_text(tiny_sweep(n=4, batch=2, sweep_extra=HALVING_EXTRA))
    _must(hyperlax("plan", "sweep.toml", "-o", "plan.msgpack", cwd=halving))
    _must(hyperlax("exec", "plan.msgpack", "--output-root", "out", "-q", cwd=halving))
    states["halving"] = halving

    search = work / "search"
    search.mkdir()
    (search / "tiny.toml").write_text(TINY_RECIPE)
    (search / "search.toml").write_text(SEARCH_MANIFEST)
    (search / "search6.toml").write_text(SEARCH_MANIFEST.replace("trials = 4", "trials = 6"))
    _must(hyperlax("search", "search.toml", "--output-root", "out", "-q", cwd=search))
    states["search"] = search

    bench = work / "bench"
    bench.mkdir()
    (bench / "a.toml").write_text(tiny_sweep(name="a", n=2, batch=2))
    _must(hyperlax("benchmark", "a.toml", "--output-root", "out", "-q", cwd=bench))
    states["bench"] = bench
    return states


def _must(result: tuple) -> None:
    status, out, err, _ = result
    if status != 0:
        raise SystemExit(f"building the attacked state failed ({status}):\n{out}\n{err}")


@dataclass
class Attack:
    state: str                       # which pristine state it starts from
    target: str                      # the path planted, relative to the state's directory
    kinds: list[str]                 # which hostile things are planted there
    command: list[str]               # run in the state's directory
    while_running: bool = False      # plant after the command wrote ``after``
    after: str = ""
    extra_ok: set[int] = field(default_factory=set)


def attacks() -> list[Attack]:
    exec_ = ["exec", "plan.msgpack", "--output-root", "out", "-q"]
    redo = ["exec", "plan.msgpack", "--output-root", "out", "-q", "--redo-corrupt"]
    status = ["status", "plan.msgpack", "--output-root", "out", "--verify"]
    report = ["report", "plan.msgpack", "--output-root", "out"]
    search = ["search", "search.toml", "--output-root", "out", "-q"]
    search_more = ["search", "search6.toml", "--output-root", "out", "-q"]  # two more rounds
    entry = "out/ppo_mlp_fixed_net/gymnax_cartpole/samples/batch_00000"
    files = ["link-file-out", "fifo", "nested", "oversized", "dev-zero"]
    return [
        Attack("sweep", "out/hyperlax-sweep.json", files, exec_),
        Attack("sweep", "out/hyperlax-sweep.json", files, status),
        Attack("sweep", "out/plan.msgpack", files, exec_),
        Attack("sweep", f"{entry}/success.txt", files, status),
        Attack("sweep", f"{entry}/success.txt", files, redo),
        Attack("sweep", f"{entry}/summary.json", files, report),
        Attack("sweep", f"{entry}/curves.npz", files, report),
        Attack("sweep", f"{entry}/provenance.json", files, status),
        Attack("sweep", f"{entry}.claim", ["fifo", "nested", "oversized", "dev-zero"], exec_),
        Attack("sweep", f"{entry}", ["link-dir-out"], redo),
        Attack("sweep", "out/ppo_mlp_fixed_net", ["link-dir-out"], exec_),
        Attack("sweep", "out/report", ["link-dir-out"], report),
        Attack("sweep", "out/report/results.csv", ["link-file-out", "fifo"], report),
        # --tensorboard DIR is the user's to point anywhere; its run directories are ours
        Attack("sweep", "tb/sample_00000", ["link-dir-out"], report + ["--tensorboard", "tb"]),
        Attack("halving", "out/rungs", ["link-dir-out"], exec_),
        Attack("halving", "out/rungs/rung_0.json", files, exec_),
        Attack("halving", "out/rungs/rung_0.json", files, ["status", "plan.msgpack",
                                                           "--output-root", "out"]),
        Attack("halving", "out/rungs/rung_0.json", files, report),
        Attack("halving", "out/checkpoints", ["link-dir-out"], redo),
        Attack("search", "out/search.json", files, search),
        Attack("search", "out/search.json", files + ["swap-told", "told-99999"],
               ["report", "out"]),
        Attack("search", "out/search.json", ["swap-told", "told-99999"], search_more),
        Attack("search", "out/optuna_study.db", ["link-file-out", "fifo", "nested",
                                                 "dev-zero"], search_more),
        Attack("search", "out/report", ["link-dir-out"], ["report", "out"]),
        Attack("search", "out/search.lock", ["link-file-out", "fifo", "dev-zero"], search),
        Attack("search", "out/rounds/round_0002", ["link-dir-out"], search_more),
        Attack("search", "out/rounds/round_0002.toml", ["link-file-out", "fifo"], search_more),
        Attack("bench", "out/a", ["link-dir-out"], ["benchmark", "a.toml", "--output-root",
                                                    "out", "-q"]),
        # while it runs: the command wrote its first file, then the link is planted
        Attack("sweep", "out/report", ["link-dir-out"], ["exec", "plan.msgpack",
               "--output-root", "fresh", "-q"], while_running=True,
               after="fresh/hyperlax-sweep.json"),
        Attack("search", "out2/rounds/round_0001", ["link-dir-out"], ["search", "search.toml",
               "--output-root", "out2", "-q"], while_running=True,
               after="out2/rounds/round_0000.toml"),
        Attack("search", "out2/rounds", ["link-dir-out"], ["search", "search.toml",
               "--output-root", "out2", "-q"], while_running=True,
               after="out2/rounds/round_0000/hyperlax-sweep.json"),
    ]


def judge(status: int | None, out: str, err: str, outside_before: dict, outside_after: dict,
          kind: str, attack: Attack) -> tuple[bool, str]:
    if status is None:
        return False, "hung (killed after the timeout)"
    if "Traceback" in err:
        return False, "traceback: " + err.strip().splitlines()[-1][:120]
    if outside_after != outside_before:
        changed = sorted(set(outside_after.items()) ^ set(outside_before.items()))
        return False, f"wrote outside the root: {changed[:3]}"
    if status not in {0, 1, 2} | attack.extra_ok:
        return False, f"exit status {status}"
    if kind in MUST_REFUSE and status == 0:
        return False, "the edit was accepted"
    if status in (1, 2) and "error:" not in err and " corrupt" not in out:
        # status --verify reports corrupt entries on stdout with status 1 (by design)
        return False, f"exit {status} without an error line"
    said = (err.strip() or out.strip()).splitlines()
    return True, f"exit {status}" + (f": {said[-1 if not err.strip() else 0][:150]}"
                                     if status and said else "")


def run(work: Path, only: str, report_file: Path | None) -> int:
    states = build(work / "pristine")
    rows, held, broken = [], 0, 0
    for number, attack in enumerate(attacks()):
        for kind in attack.kinds:
            label = f"{' '.join(attack.command[:1])} {attack.target} <- {kind}" + (
                " (while running)" if attack.while_running else "")
            if only and not any(part in label for part in only.split(",")):
                continue
            here = work / f"attack_{number:02d}_{kind}"
            shutil.copytree(states[attack.state], here, symlinks=True)
            outside = work / f"outside_{number:02d}_{kind}"
            outside.mkdir()
            (outside / "victim.txt").write_text("precious\n")
            before = snapshot(outside)
            target = here / attack.target
            during = None
            if attack.while_running:
                def during(target=target, kind=kind, outside=outside, attack=attack, here=here):
                    deadline = time.monotonic() + TIMEOUT
                    while not (here / attack.after).exists() and time.monotonic() < deadline:
                        time.sleep(0.01)
                    PLANT[kind](target, outside)
            else:
                PLANT[kind](target, outside)
            status, out, err, seconds = hyperlax(*attack.command, cwd=here, during=during)
            ok, why = judge(status, out, err, before, snapshot(outside), kind, attack)
            held += ok
            broken += not ok
            rows.append({"attack": label, "held": ok, "why": why, "seconds": round(seconds, 1)})
            print(f"{'held  ' if ok else 'BROKEN'} {seconds:5.1f}s  {label}: {why}", flush=True)
            shutil.rmtree(here, ignore_errors=True)
    print(f"\n{held} held, {broken} broken, of {held + broken} attacks")
    if report_file is not None:
        report_file.write_text(json.dumps({"held": held, "broken": broken, "attacks": rows},
                                          indent=2) + "\n")
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument("--only", default="", help="run the attacks whose label has one of these (comma-separated)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hyperlax-attack-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"attacking in {work}", flush=True)
    return run(work, args.only, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
