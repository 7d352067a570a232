"""One round of a search as an ordinary sweep: the asked configurations become a manifest of
listed samples (``[[samples]]``), compiled by the compiler like any other, into a sweep
directory of its own, and run by the exec use case (vmapped batches, resumable, clean stops).
So ``hyperlax exec``, ``status`` and ``report`` work on every round.

    <search dir>/rounds/round_0003.toml     the round's manifest (re-plan it to check the plan)
    <search dir>/rounds/round_0003/         its sweep directory: plan.msgpack, entries, markers
    <search dir>/rounds/recipe/<name>.toml  a copy of a recipe file the search manifest named

The round's seed (its samples' training seeds) is derived from the search's seed and the
round's index, so trials of different rounds never share a training seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from hyperlax.exec import stopping
from hyperlax.errors import HyperlaxError
from hyperlax.exec.options import ExecOptions
from hyperlax.manifest.resolve import Resolved
from hyperlax.storage.paths import writable_inside
from hyperlax.search.objectives import told_of
from hyperlax.search.study_file import RoundRecord, StudyFile, Told
from hyperlax.storage.atomic import StorageError, atomic_write, storage_error

RECIPE_DIR = "rounds/recipe"


def round_seed(seed: int, index: int) -> int:
    """The seed of round ``index``'s plan: a sha256 of the pair, like the plan's sample seeds,
    so no library upgrade can change it."""
    digest = hashlib.sha256(f"hyperlax-search-round:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def sample_problem(resolved: Resolved) -> Callable[[dict[str, Any]], str | None]:
    """Why a configuration cannot train (a value outside its declaration after float rounding,
    a rule between hyperparameters, a budget too small), as the compiler would refuse it; such
    a trial is told as failed instead of failing its whole round."""
    from hyperlax.compiler.lower import sample_problems

    def problem(values: dict[str, Any]) -> str | None:
        found = [f"{n}: {p}" for n, v in values.items()
                 if (p := resolved.table[n].check_value(v))]
        if not found:
            found = sample_problems(resolved.settings, {**resolved.constants, **values})
        return "; ".join(found) or None

    return problem


def target(root: Path, relative: str) -> Path:
    """``root / relative``, refused when a symlink on the way leads out of the search dir."""
    return writable_inside(root, relative)


def write_file(root: Path, relative: str, data: bytes) -> None:
    path = target(root, relative)
    try:
        with stopping.writing():
            atomic_write(path, data, within=root)
    except OSError as exc:
        raise storage_error(path, exc, "cannot write", "run the same command again") from None


def round_manifest(resolved: Resolved, rnd: RoundRecord, seed: int, output_root: str,
                   recipe: str, header: list[str]) -> str:
    """The manifest of one round: the search's settings and [fixed], its configurations as
    [[samples]] (every hyperparameter of the space, so the recipe's space is not sampled)."""
    import tomli_w

    s = resolved.settings
    sweep = {"name": s.name, "recipe": recipe, "env": s.env, "seed": seed, "mode": s.mode,
             "batch_size": s.batch_size, "output_root": output_root,
             "seeds_per_sample": s.seeds_per_sample, "total_timesteps": s.total_timesteps,
             "num_evaluations": s.num_evaluations, "eval_episodes": s.eval_episodes}
    document: dict[str, Any] = {"sweep": sweep}
    if resolved.manifest.fixed:
        document["fixed"] = dict(resolved.manifest.fixed)
    document["samples"] = [t.values for t in rnd.trials if t.sample is not None]
    return "\n".join(f"# {line}" for line in header) + "\n" + tomli_w.dumps(document)


@dataclass
class RoundRunner:
    """Trains one round (``rounds.Train``): compile its plan (once), run it, read the results."""

    resolved: Resolved
    manifest_recipe: str               # the search manifest's [sweep] recipe, as written
    root: Path                         # the search directory
    record: StudyFile
    save: Callable[[StudyFile], None]
    metrics: list[str]
    resume: str                        # the command that resumes the search
    compile_cache: Path | None = None
    options: ExecOptions = field(default_factory=ExecOptions)   # how each round's exec runs
    quiet: bool = False
    echo: Callable[..., None] = print
    hint: Callable[[int], str] | None = None   # the search's stop hint, back after each exec
    ray: Any = None                    # the Ray module, once this search connected (or started)

    def __call__(self, rnd: RoundRecord) -> list[Told] | int:
        if all(t.sample is None for t in rnd.trials):
            return told_of(rnd.trials, [], self.metrics, rnd.index)
        directory = target(self.root, rnd.path)
        plan, pid = self._plan(rnd, directory)
        stopping.check()
        target(self.root, rnd.path)  # again: a link planted while the plan compiled
        status = self._exec(directory)
        if status:
            return status
        target(self.root, rnd.path)  # a round moved out while it trained is not told from
        return self._told(rnd, plan, pid, directory)

    # --- the plan -------------------------------------------------------------------------

    def _plan(self, rnd: RoundRecord, directory: Path) -> tuple[Any, str]:
        from hyperlax.plan.format import encode_plan, plan_id, results_id
        from hyperlax.plan.read import read_plan
        from hyperlax.storage.sweepdir import PLAN_COPY, Owner, SweepDir

        if rnd.plan_id is not None:  # compiled before: run exactly that plan again
            plan, pid = read_plan(directory / PLAN_COPY)
            if results_id(plan) != rnd.results_id:
                raise HyperlaxError(str(directory / PLAN_COPY),
                                    f"is not the plan the study file records for round "
                                    f"{rnd.index} (results id {rnd.results_id[:12]})",
                                    "restore the round's directory, or start the search in a "
                                    "new output root")
            return plan, pid
        plan = self._compile(rnd)
        pid, data = plan_id(plan), encode_plan(plan)
        try:
            SweepDir(directory).claim(data, Owner.of(plan, pid))
        except OSError as exc:
            raise storage_error(directory, exc, "cannot create the round's sweep directory",
                                "run the same command again") from None
        rnd.plan_id, rnd.results_id = pid, results_id(plan)
        self.save(self.record)
        return plan, pid

    def _compile(self, rnd: RoundRecord) -> Any:
        from hyperlax.compiler.lower import lower
        from hyperlax.manifest.recipes import is_recipe_path
        from hyperlax.manifest.resolve import resolve_text

        s = self.resolved.settings
        recipe = s.recipe
        if is_recipe_path(self.manifest_recipe):  # a self-contained copy beside the rounds
            recipe = f"recipe/{s.recipe}.toml"
            write_file(self.root, f"{RECIPE_DIR}/{s.recipe}.toml",
                       self.resolved.recipe_text.encode("utf-8"))
        name = PurePosixPath(rnd.path).name
        first, last = rnd.trials[0].number, rnd.trials[-1].number
        header = [f"Round {rnd.index} of the hyperlax search {s.name!r}: trials {first}-{last} "
                  f"as Optuna asked them (those that can run).",
                  "Written by `hyperlax search`; `hyperlax plan` of this file gives the round's "
                  "plan.", ""]
        output_root = str(PurePosixPath(s.output_root) / rnd.path)
        text = round_manifest(self.resolved, rnd, round_seed(s.seed, rnd.index), output_root,
                              recipe, header)
        write_file(self.root, f"{rnd.path}.toml", text.encode("utf-8"))
        manifest = target(self.root, f"{rnd.path}.toml")
        resolved = resolve_text(text, manifest.name, manifest.parent)
        plan, warnings = lower(resolved, manifest_name=f"{name}.toml")
        for warning in warnings:
            self.echo(f"warning: {name}.toml: {warning}", err=True)
        return plan

    # --- training and results -------------------------------------------------------------

    def _exec(self, directory: Path) -> int:
        from hyperlax.exec.run_plan import ExecRequest, run_exec
        from hyperlax.storage.sweepdir import PLAN_COPY

        @dataclass(frozen=True)
        class RoundRequest(ExecRequest):
            """exec of one round, whose stop hint resumes the search, not only the round."""

            resume: str = ""

            def command_line(self, redo_corrupt: bool = False) -> str:
                if redo_corrupt:
                    return f"{super().command_line(redo_corrupt=True)}; then: {self.resume}"
                return self.resume

        request = RoundRequest(plan_file=directory / PLAN_COPY, output_root=directory,
                               compile_cache=self.compile_cache, quiet=self.quiet,
                               options=self.options, resume=self.resume)
        self._hold_ray()
        try:
            return run_exec(request, self.echo)
        finally:  # exec set its own hint (this round's entries); the search's is wider
            stopping.set_hint(self.hint)

    def _hold_ray(self) -> None:
        """With --ray, connect (or start a local cluster) once for the whole search: exec
        leaves a Ray it did not start running, so the rounds share one cluster and its warm
        workers (their compiled programs) instead of each round starting and stopping one."""
        if self.options.ray_address is None or self.ray is not None:
            return
        from hyperlax.exec import ray_exec

        ray = ray_exec.import_ray()
        log = None if self.quiet else (lambda text: self.echo(text, err=True))
        if ray_exec.connect(ray, self.options.ray_address, log):
            self.ray = ray

    def close(self) -> None:
        """Shut down the Ray this search connected to or started (ending its tasks)."""
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None

    def _told(self, rnd: RoundRecord, plan: Any, pid: str, directory: Path) -> list[Told]:
        from hyperlax.report.results import collect
        from hyperlax.storage.sweepdir import PLAN_COPY

        collected = collect(plan, pid, directory, str(directory / PLAN_COPY), directory)
        told = told_of(rnd.trials, collected.samples, self.metrics, rnd.index)
        for trial, told_one in zip(rnd.trials, told):
            if told_one is None:
                raise StorageError(str(directory), f"round {rnd.index}: sample {trial.sample} "
                                                   f"(trial {trial.number}) has no result after "
                                                   "its plan ran",
                                   f"see hyperlax status {directory / PLAN_COPY} --output-root "
                                   f"{directory} --verify; then: {self.resume}")
        return told
