"""The ``hyperlax`` command line. Module level stays JAX-free: ``plan``, ``show``, ``check``,
``init`` and ``--help`` must be instant; ``exec`` imports the runtime when it runs."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from hyperlax.errors import HyperlaxError

EXIT_BAD_INPUT = 2


def user_errors(command: Callable) -> Callable:
    """Turn a HyperlaxError into a located message on stderr and exit status 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HyperlaxError as exc:
            for line in exc.render().splitlines():
                click.echo(line if line.startswith("hint: ") else f"error: {line}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hyperlax")
def main() -> None:
    """Reproducible hyperparameter sweeps of JAX reinforcement-learning agents.

    \b
    hyperlax init -o sweep.toml     write a starter manifest
    hyperlax plan sweep.toml        validate, sample, group, slice -> plan.msgpack
    hyperlax exec plan.msgpack      run the plan; run it again to resume
    hyperlax report plan.msgpack    results table and plots
    """


@main.command("plan")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("plan.msgpack"),
              show_default=True, help="where to write the plan")
@user_errors
def plan_command(manifest: Path, output: Path) -> None:
    """Compile MANIFEST (TOML) into a frozen execution plan."""
    from hyperlax.compiler.lower import compile_manifest, plan_summary
    from hyperlax.planfile import encode_plan, plan_id
    from hyperlax.store import atomic_write

    plan, warnings = compile_manifest(manifest)
    for warning in warnings:
        click.echo(f"warning: {manifest.name}: {warning}", err=True)
    try:
        atomic_write(output, encode_plan(plan))
    except OSError as exc:
        raise HyperlaxError(str(output), f"cannot write the plan: {exc.strerror}",
                            "choose another path with -o") from None
    s = plan_summary(plan, plan_id(plan))
    click.echo(f"wrote {output}: {s['samples']} samples, {s['structures']} structures, "
               f"{s['entries']} entries ({plan.settings.mode}), {s['compiles']} compiles, "
               f"plan id {s['plan_id'][:12]}")
    if s["compiles"] >= 4 and s["compiles"] > s["samples"] // 4:  # quiet for tiny sweeps
        click.echo(f"hint: {s['compiles']} compiles for {s['samples']} samples: every distinct "
                   "structure compiles separately. Pin structural hyperparameters in [fixed], "
                   "or set structures = K in [sweep] to sample K structures and fill each.",
                   err=True)


@main.command("show")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--samples", is_flag=True, help="print the sample table instead")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True)
@user_errors
def show_command(plan_file: Path, samples: bool, fmt: str) -> None:
    """Explain a plan: settings, hyperparameters, groups, entries."""
    from hyperlax import explain
    from hyperlax.planfile import read_plan

    plan, pid = read_plan(plan_file)
    if samples:
        click.echo(explain.samples_table(plan, fmt), nl=False)
    else:
        click.echo(explain.describe(plan, pid, fmt), nl=False)


@main.command("check")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("plan_file", type=click.Path(path_type=Path))
@user_errors
def check_command(manifest: Path, plan_file: Path) -> None:
    """Exit 0 when PLAN_FILE is exactly what MANIFEST compiles to now, else 1 and what differs."""
    from hyperlax import explain
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.planfile import plan_id, read_plan

    fresh, _ = compile_manifest(manifest)
    stored, stored_id = read_plan(plan_file)
    if plan_id(fresh) == stored_id:
        click.echo(f"{plan_file} is up to date with {manifest} (plan id {stored_id[:12]})")
        return
    click.echo(f"{plan_file} differs from what {manifest} compiles to now:")
    for line in explain.differences(stored, fresh):
        click.echo(f"  {line}")
    click.echo(f"re-plan with: hyperlax plan {manifest} -o {plan_file}")
    sys.exit(1)


@main.command("init")
@click.option("--recipe", default="ppo_mlp", show_default=True)
@click.option("--env", "env_id", default="gymnax.pendulum", show_default=True)
@click.option("--name", default=None, help="sweep name [default: <recipe>-<env>]")
@click.option("--num-samples", default=16, show_default=True, type=int)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("sweep.toml"),
              show_default=True)
@click.option("--force", is_flag=True, help="overwrite an existing file")
@user_errors
def init_command(recipe: str, env_id: str, name: str | None, num_samples: int, output: Path,
                 force: bool) -> None:
    """Write a starter manifest with the recipe's search space spelled out."""
    from hyperlax.starter import starter_manifest
    from hyperlax.store import atomic_write

    if output.exists() and not force:
        raise HyperlaxError(str(output), "already exists", "pass --force to overwrite it")
    text = starter_manifest(recipe, env_id, name, num_samples, output)
    atomic_write(output, text.encode("utf-8"))
    click.echo(f"wrote {output}; next: hyperlax plan {output}")


def _sweep_root(plan_settings_root: str, output_root: Path | None) -> Path:
    return output_root if output_root is not None else Path(plan_settings_root)


EXIT_FAILED = 1  # exec/status: a disk error, or corrupt entries found (not the user's input)


def _fail(exc: HyperlaxError, status: int) -> None:
    """Print ``exc`` the way user_errors does, but exit with ``status``."""
    for line in exc.render().splitlines():
        click.echo(line if line.startswith("hint: ") else f"error: {line}", err=True)
    sys.exit(status)


def _exec_command_line(plan_file: Path, output_root: Path | None,
                       options: _ScaleOptions | None = None) -> str:
    import shlex

    words = ["hyperlax", "exec", str(plan_file)]
    if output_root is not None:
        words += ["--output-root", str(output_root)]
    if options is not None:
        words += options.words()
    return " ".join(shlex.quote(w) for w in words)


class _ScaleOptions:
    """exec's options for running on several devices, as a shard, or on Ray; validated (exit
    status 2) before anything is imported or touched."""

    def __init__(self, devices: str | None, shard: tuple[int, int] | None,
                 claim_timeout: float | None, ray_address: str | None, ray_cpus: float,
                 ray_gpus: float, ray_retries: int):
        from hyperlax.store import DEFAULT_CLAIM_TIMEOUT

        self.devices, self.shard, self.ray_address = devices, shard, ray_address
        self.claim_timeout_given = claim_timeout
        self.claim_timeout = claim_timeout if claim_timeout is not None else \
            DEFAULT_CLAIM_TIMEOUT
        self.ray_cpus, self.ray_gpus, self.ray_retries = ray_cpus, ray_gpus, ray_retries

    def entries(self, count: int) -> list[int] | None:
        """The entry indices of this shard (i mod N = K), or None for all."""
        if self.shard is None:
            return None
        k, n = self.shard
        return [i for i in range(count) if i % n == k]

    def words(self) -> list[str]:
        """These options as exec arguments, for the resume hint."""
        words = []
        if self.devices is not None:
            words += ["--devices", self.devices]
        if self.shard is not None:
            words += ["--shard", f"{self.shard[0]}/{self.shard[1]}"]
        if self.claim_timeout_given is not None:
            words += ["--claim-timeout", f"{self.claim_timeout_given:g}"]
        if self.ray_address is not None:
            words += [f"--ray={self.ray_address}" if self.ray_address else "--ray"]
            if self.ray_cpus != 1.0:
                words += ["--ray-cpus", f"{self.ray_cpus:g}"]
            if self.ray_gpus != 0.0:
                words += ["--ray-gpus", f"{self.ray_gpus:g}"]
            if self.ray_retries != 3:
                words += ["--ray-retries", str(self.ray_retries)]
        return words


def _parse_devices(text: str | None) -> str | None:
    if text is None or text == "all":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise HyperlaxError("exec", [("--devices", f"{text!r}: expected 'all' or a positive "
                                                   "number of devices")])
    return str(n)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k_text, slash, n_text = text.partition("/")
    try:
        k, n = int(k_text), int(n_text)
    except ValueError:
        slash = ""
    if not slash:
        raise HyperlaxError("exec", [("--shard", f"{text!r}: expected K/N, shard K of N "
                                                 "(e.g. 0/4)")])
    if n < 1:
        raise HyperlaxError("exec", [("--shard", f"{text!r}: N must be at least 1")])
    if not 0 <= k < n:
        raise HyperlaxError("exec", [("--shard", f"{text!r}: K must be in 0..{n - 1}; shards "
                                                 "are numbered from 0")],
                            f"a SLURM job array --array=0-{n - 1} numbers its tasks "
                            "($SLURM_ARRAY_TASK_ID) from 0, as a Kubernetes indexed Job does "
                            "($JOB_COMPLETION_INDEX)")
    return k, n


class _Stopped(BaseException):
    """SIGINT or SIGTERM during exec. A BaseException, like KeyboardInterrupt, so nothing on
    the way up swallows it; atomic_write removes its temporary file as it passes."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> Any:
    """While exec runs, SIGINT and SIGTERM raise _Stopped where Python next runs (a running XLA
    call finishes first). Files are written atomically and the marker last, so unwinding from
    anywhere leaves the interrupted entry unmarked, to be redone on resume. The first signal
    restores the previous handlers, so a second one acts as it normally would."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def installed() -> Any:
        signals = [signal.SIGINT, signal.SIGTERM]
        previous = {s: signal.getsignal(s) for s in signals}

        def handler(signum: int, frame: Any) -> None:
            for s, h in previous.items():
                signal.signal(s, h)
            raise _Stopped(signum)

        try:
            for s in signals:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    return installed()


def _verify_entries(sweep: Any, plan: Any, pid: str,
                    entries: list[int] | None = None) -> dict[str, list[str]]:
    """Problems of each complete entry (of ``entries``, default all) whose files no longer
    match its marker."""
    from hyperlax.store import storage_error

    corrupt = {}
    for entry in plan.entries if entries is None else [plan.entries[i] for i in entries]:
        if sweep.state(entry.path) != "done":
            continue
        try:
            problems = sweep.verify(entry.path, pid, entry.index)
        except OSError as exc:
            raise storage_error(sweep.entry_dir(entry.path), exc, "cannot read this entry to "
                                "verify it", "fix the permissions of the sweep directory") from None
        if problems:
            corrupt[entry.path] = problems
    return corrupt


@main.command("exec")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="sweep directory [default: the plan's output_root]")
@click.option("--compile-cache", type=click.Path(path_type=Path), default=None,
              envvar="HYPERLAX_COMPILE_CACHE",
              help="JAX persistent compilation cache [default: ~/.cache/hyperlax/jax]")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="refuse to run unless this manifest is, byte for byte, the one the plan "
                   "was compiled from")
@click.option("--redo-corrupt", is_flag=True,
              help="re-run complete entries whose files changed after completion "
                   "[default: warn, leave them alone, exit 1]")
@click.option("--devices", "devices", default=None, metavar="all|N",
              help="split each batch's samples across N local devices (or all of them) "
                   "[default: one device]")
@click.option("--shard", "shard", default=None, metavar="K/N",
              help="run only shard K of N (K = 0..N-1): the entries whose index i has "
                   "i mod N = K; for array jobs")
@click.option("--claim-timeout", type=click.FloatRange(min=1.0), default=None,
              metavar="SECONDS",
              help="take over another worker's entry when its claim has had no heartbeat for "
                   "this long [default: 300]")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="run each entry as a Ray task: on the cluster at ADDRESS, or with no "
                   "ADDRESS on RAY_ADDRESS's cluster or a new local one (pip install "
                   "'hyperlax[ray]')")
@click.option("--ray-cpus", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="CPUs each Ray task asks for")
@click.option("--ray-gpus", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="GPUs each Ray task asks for")
@click.option("--ray-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="times Ray re-runs a task whose worker died")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@user_errors
def exec_command(plan_file: Path, output_root: Path | None, compile_cache: Path | None,
                 manifest: Path | None, redo_corrupt: bool, quiet: bool,
                 devices: str | None = None, shard: str | None = None,
                 claim_timeout: float | None = None, ray_address: str | None = None,
                 ray_cpus: float = 1.0, ray_gpus: float = 0.0, ray_retries: int = 3) -> None:
    """Run PLAN_FILE's entries; entries already complete are skipped, so re-running resumes.

    Before running, every complete entry's files are checked against the checksums in its
    marker; one that changed is reported and left alone unless --redo-corrupt is given.

    Several execs of one plan into one output root (on several machines over a shared file
    system, or array-job shards) cooperate: each entry is claimed by one worker at a time, and
    an exec waits at the end for entries that other workers are running.

    \b
    Exit status: 0 every entry complete; 1 a disk error (nothing is marked complete that
    is not), or corrupt entries left alone; 2 bad input (plan, manifest, output root,
    options); 130 / 143 stopped by SIGINT / SIGTERM: run the same command again to resume.
    """
    options = _ScaleOptions(devices=_parse_devices(devices), shard=_parse_shard(shard),
                            claim_timeout=claim_timeout, ray_address=ray_address,
                            ray_cpus=ray_cpus, ray_gpus=ray_gpus, ray_retries=ray_retries)
    state: dict[str, Any] = {"options": options}
    with _stop_on_signals():
        try:
            _exec(plan_file, output_root, compile_cache, manifest, redo_corrupt, quiet, state)
        except _Stopped as stop:
            _report_stop(stop.signum, plan_file, output_root, state)
        except HyperlaxError as exc:
            if getattr(exc, "exit_status", EXIT_BAD_INPUT) != EXIT_BAD_INPUT:
                _fail(exc, exc.exit_status)
            raise


def _exec(plan_file: Path, output_root: Path | None, compile_cache: Path | None,
          manifest: Path | None, redo_corrupt: bool, quiet: bool, state: dict[str, Any]) -> None:
    from hyperlax.planfile import read_plan_file
    from hyperlax.store import StorageError, SweepDir

    options: _ScaleOptions = state["options"]
    plan, pid, plan_bytes = read_plan_file(plan_file)
    if manifest is not None:
        _check_manifest_unchanged(manifest, plan, plan_file)
    root = _sweep_root(plan.settings.output_root, output_root)
    sweep = SweepDir(root)
    entries = options.entries(len(plan.entries))
    state.update(plan=plan, sweep=sweep, entries=entries)
    sweep.check_owner(pid)  # refuse a foreign directory before importing JAX
    if entries is not None and not quiet:
        k, n = options.shard
        click.echo(f"shard {k}/{n}: {len(entries)} of {len(plan.entries)} entries "
                   "(entry i belongs to shard i mod N)", err=True)
    corrupt = _verify_entries(sweep, plan, pid, entries) if root.exists() else {}
    for path, problems in corrupt.items():
        for problem in problems:
            click.echo(f"warning: {path}: {problem}", err=True)
        click.echo(f"warning: {path}: " + ("complete but corrupt; running it again "
                                           "(--redo-corrupt)" if redo_corrupt else
                                           "complete but corrupt; left alone"), err=True)
    from hyperlax.progress import Progress
    from hyperlax.runtime.executor import enable_compile_cache, execute

    cache = compile_cache or Path.home() / ".cache" / "hyperlax" / "jax"
    try:
        enable_compile_cache(cache)
    except OSError as exc:
        raise StorageError(str(cache), f"cannot create the compile cache: {exc.strerror}",
                           "pass --compile-cache with a writable directory") from None
    log = None if quiet else (lambda text: click.echo(text, err=True))
    redo = set(corrupt) if redo_corrupt else set()
    if options.ray_address is not None:
        from hyperlax.runtime.ray_exec import execute_ray

        report = execute_ray(plan, pid, plan_bytes, root, address=options.ray_address,
                             cpus=options.ray_cpus, gpus=options.ray_gpus,
                             retries=options.ray_retries, devices=options.devices,
                             claim_timeout=options.claim_timeout,
                             compile_cache=compile_cache, progress=Progress(quiet=quiet),
                             entries=entries, redo=redo, log=log)
    else:
        from hyperlax.runtime.sharding import resolve_devices

        try:
            devices = resolve_devices(options.devices)
        except ValueError as exc:
            raise HyperlaxError("exec", [("--devices", str(exc))],
                                "on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                                "makes N host devices") from None
        report = execute(plan, pid, plan_bytes, root, progress=Progress(quiet=quiet),
                         entries=entries, redo=redo, devices=devices,
                         claim_timeout=options.claim_timeout, log=log)
    if not quiet:
        others = f", {report.by_others} done by other workers" if report.by_others else ""
        click.echo(f"{report.ran} entries run, {report.skipped} skipped{others}; "
                   f"{report.compiles} compiles ({report.compile_seconds:.1f}s); "
                   f"{report.env_steps:,} env steps in {report.seconds:.1f}s; results in {root}")
    if corrupt and not redo_corrupt:
        raise StorageError(str(root), f"{len(corrupt)} complete entries have files that changed "
                                      "after completion; they were left alone: "
                                      + ", ".join(corrupt),
                           "look at them (hyperlax status --verify), then re-run them with: "
                           f"{_exec_command_line(plan_file, output_root, options)} "
                           "--redo-corrupt")


def _check_manifest_unchanged(manifest: Path, plan: Any, plan_file: Path) -> None:
    from hyperlax.spec.resolve import sha256_text

    try:
        text = manifest.read_text("utf-8")  # as the compiler reads it
    except FileNotFoundError:
        raise HyperlaxError(str(manifest), "no such manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HyperlaxError(str(manifest), f"cannot read manifest: {exc}") from None
    actual = sha256_text(text)
    if actual != plan.manifest_sha256:
        raise HyperlaxError(str(manifest), f"changed after {plan_file} was compiled from it "
                                           f"(sha256 {actual[:12]}, the plan records "
                                           f"{plan.manifest_sha256[:12]}); nothing was run",
                            f"see what differs with: hyperlax check {manifest} {plan_file}; "
                            f"then re-plan with: hyperlax plan {manifest} -o {plan_file}")


def _report_stop(signum: int, plan_file: Path, output_root: Path | None,
                 state: dict[str, Any]) -> None:
    import signal

    plan, sweep = state.get("plan"), state.get("sweep")
    counted = ""
    if plan is not None and sweep is not None:
        indices = state.get("entries")
        mine = plan.entries if indices is None else [plan.entries[i] for i in indices]
        try:
            done = sum(sweep.state(e.path) == "done" for e in mine)
            counted = f": {done} of {len(mine)} entries complete"
        except OSError:
            pass
    fresh_line = "\n" if sys.stderr.isatty() else ""  # after a redrawn progress line
    click.echo(f"{fresh_line}interrupted by {signal.Signals(signum).name}{counted}; resume "
               f"with: {_exec_command_line(plan_file, output_root, state.get('options'))}",
               err=True)
    sys.exit(128 + signum)


@main.command("status")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None)
@click.option("--verify", is_flag=True,
              help="also check each complete entry's files against the checksums in its "
                   "marker; exit 1 if any is corrupt")
@user_errors
def status_command(plan_file: Path, output_root: Path | None, verify: bool) -> None:
    """Per entry: done, partial (interrupted) or pending; and a total. With --verify, a
    complete entry whose files changed, were truncated or went missing is 'corrupt'."""
    from hyperlax.planfile import read_plan_file
    from hyperlax.store import StorageError, SweepDir

    plan, pid, plan_bytes = read_plan_file(plan_file)
    root = _sweep_root(plan.settings.output_root, output_root)
    sweep = SweepDir(root)
    owner = sweep.owner() if root.exists() else None
    if owner is not None and owner != pid:
        raise HyperlaxError(str(root), f"belongs to another plan ({owner[:12]})",
                            "pass the --output-root this plan was run with")
    try:
        corrupt = _verify_entries(sweep, plan, pid) if verify and root.exists() else {}
    except StorageError as exc:
        _fail(exc, EXIT_FAILED)
    counts = {"done": 0, "partial": 0, "pending": 0, "corrupt": 0}
    for entry in plan.entries:
        state = "corrupt" if entry.path in corrupt else sweep.state(entry.path)
        counts[state] += 1
        why = f": {'; '.join(corrupt[entry.path])}" if entry.path in corrupt else ""
        click.echo(f"{state:<8} {entry.path}  ({len(entry.samples)} samples){why}")
    click.echo(f"{counts['done']}/{len(plan.entries)} done, {counts['partial']} partial, "
               f"{counts['pending']} pending" + (f", {counts['corrupt']} corrupt" if verify
                                                  else "") + f" in {root}")
    if corrupt:
        click.echo(f"{len(corrupt)} complete entries changed after completion; exec leaves them "
                   f"alone; re-run them with: {_exec_command_line(plan_file, output_root)} "
                   "--redo-corrupt")
        sys.exit(EXIT_FAILED)
    if verify and counts["done"]:
        click.echo(f"verified: the files of all {counts['done']} complete entries match "
                   "their markers")


from hyperlax.report.commands import register as _register_report  # noqa: E402
_register_report(main)


if __name__ == "__main__":
    main()
