"""``exec``'s options for where and how a plan runs (devices, shard, claims, Ray, compile
cache): parsed and validated (exit status 2) before JAX is imported or anything is touched, and
turned back into the exec command line that resume hints print. JAX-free."""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from hyperlax.errors import HyperlaxError
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT

COMPILE_CACHE_DEFAULT = "~/.cache/hyperlax/jax"
COMPILE_CACHE_HELP = f"JAX persistent compilation cache [default: {COMPILE_CACHE_DEFAULT}]"
COMPILE_CACHE_VARIABLE = "HYPERLAX_COMPILE_CACHE"


def default_compile_cache() -> Path:
    """Where compiled programs persist when neither --compile-cache nor the variable says."""
    return Path(COMPILE_CACHE_DEFAULT).expanduser()


@dataclass(frozen=True)
class ExecOptions:
    """exec's options for running on several devices, as a shard, or on Ray."""

    devices: str | None = None             # None (one device), "all" or a count
    shard: tuple[int, int] | None = None   # (K, N)
    claim_timeout_given: float | None = None
    ray_address: str | None = None         # None: no Ray; "": RAY_ADDRESS's or a local one
    ray_cpus: float = 1.0
    ray_gpus: float = 0.0
    ray_retries: int = 3
    compile_workers_given: int | None = None   # None: cores - 1, in 1..8

    @classmethod
    def parse(cls, devices: str | None = None, shard: str | None = None,
              claim_timeout: float | None = None, ray_address: str | None = None,
              ray_cpus: float = 1.0, ray_gpus: float = 0.0, ray_retries: int = 3,
              compile_workers: int | None = None, *, source: str = "exec") -> ExecOptions:
        """Validated options; ``source``, the command, locates a bad value's message."""
        return cls(parse_devices(devices, source), parse_shard(shard, source), claim_timeout,
                   ray_address, ray_cpus, ray_gpus, ray_retries, compile_workers)

    @property
    def compile_workers(self) -> int:
        """Threads compiling programs ahead (0: compile each when first needed)."""
        if self.compile_workers_given is not None:
            return self.compile_workers_given
        from hyperlax.exec.schedule import default_compile_workers

        return default_compile_workers()

    @property
    def claim_timeout(self) -> float:
        given = self.claim_timeout_given
        return given if given is not None else DEFAULT_CLAIM_TIMEOUT

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
        if self.compile_workers_given is not None:
            words += ["--compile-workers", str(self.compile_workers_given)]
        if self.ray_address is not None:
            words += [f"--ray={self.ray_address}" if self.ray_address else "--ray"]
            if self.ray_cpus != 1.0:
                words += ["--ray-cpus", f"{self.ray_cpus:g}"]
            if self.ray_gpus != 0.0:
                words += ["--ray-gpus", f"{self.ray_gpus:g}"]
            if self.ray_retries != 3:
                words += ["--ray-retries", str(self.ray_retries)]
        return words


COMPILE_WORKERS_OPTION = click.option(
    "--compile-workers", "compile_workers", type=click.IntRange(min=0), default=None,
    metavar="N", help="threads that compile programs ahead of their use, while earlier entries "
                      "train; 0 compiles each program when first needed [default: one fewer "
                      "than the cores, 1 to 8]")

SHARD_OPTION = click.option(
    "--shard", "shard", default=None, metavar="K/N",
    help="run only shard K of N (K = 0..N-1): the entries whose index i has i mod N = K; for "
         "array jobs")

_DECLARED = [
    click.option("--devices", "devices", default=None, metavar="all|N",
                 help="split each batch's samples across N local devices (or all of them) "
                      "[default: one device]"),
    SHARD_OPTION,
    click.option("--claim-timeout", type=click.FloatRange(min=1.0), default=None,
                 metavar="SECONDS",
                 help="take over another worker's entry when its claim has had no heartbeat "
                      "for this long [default: 300]"),
    click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
                 metavar="[ADDRESS]",
                 help="run each entry as a Ray task: on the cluster at ADDRESS, or with no "
                      "ADDRESS on RAY_ADDRESS's cluster or a new local one (pip install "
                      "'hyperlax[ray]')"),
    click.option("--ray-cpus", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
                 help="CPUs each Ray task asks for"),
    click.option("--ray-gpus", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                 help="GPUs each Ray task asks for"),
    click.option("--ray-retries", type=click.IntRange(min=0), default=3, show_default=True,
                 help="times Ray re-runs a task whose worker died"),
    COMPILE_WORKERS_OPTION,
]


# Why a search refuses --shard, for its commands' declarations
SEARCH_SHARD_REFUSAL = ("a search's rounds depend on each other (a round is asked only after "
                        "the one before is told), so they cannot run as independent shards; "
                        "--devices or --ray spread each round's training instead")


def declared(command: Callable | None = None, *, shard_refusal: str | None = None,
             source: str = "exec") -> Callable:
    """Declare these options on a click command, which then receives them parsed and
    validated as one ``options: ExecOptions`` argument (a HyperlaxError located at ``source``
    when they are bad). ``@declared`` as it is, or ``@declared(shard_refusal=WHY,
    source=...)`` for a command whose work cannot be split into shards: its --shard is
    hidden, and refused with WHY (exit status 2)."""
    if command is None:
        return functools.partial(declared, shard_refusal=shard_refusal, source=source)

    @functools.wraps(command)
    def wrapper(*args: Any, devices: str | None, shard: str | None,
                claim_timeout: float | None, ray_address: str | None, ray_cpus: float,
                ray_gpus: float, ray_retries: int, compile_workers: int | None,
                **kwargs: Any) -> Any:
        if shard is not None and shard_refusal is not None:
            raise HyperlaxError(source, [("--shard", shard_refusal)])
        options = ExecOptions.parse(devices, shard, claim_timeout, ray_address, ray_cpus,
                                    ray_gpus, ray_retries, compile_workers, source=source)
        return command(*args, options=options, **kwargs)

    for option in reversed(_DECLARED):
        if option is SHARD_OPTION and shard_refusal is not None:
            option = click.option("--shard", "shard", default=None, hidden=True)
        wrapper = option(wrapper)
    return wrapper


def exec_command_line(plan_file: Path, output_root: Path | None,
                      options: ExecOptions | None = None, *, compile_cache: Path | None = None,
                      manifest: Path | None = None, redo_corrupt: bool = False,
                      quiet: bool = False) -> str:
    """The exec command that runs ``plan_file`` again with the same options (resume hints):
    the --output-root given (without it, exec would write to the plan's own output root, not
    where this sweep is), every option that changes where and how it runs, and
    ``--redo-corrupt`` when complete entries are corrupt (without it, exec leaves them alone
    and exits 1). Quoted for a POSIX shell."""
    words = ["hyperlax", "exec", str(plan_file)]
    if output_root is not None:
        words += ["--output-root", str(output_root)]
    if options is not None:
        words += options.words()
    if compile_cache is not None:
        words += ["--compile-cache", str(compile_cache)]
    if manifest is not None:
        words += ["--manifest", str(manifest)]
    if quiet:
        words += ["--quiet"]
    if redo_corrupt:
        words += ["--redo-corrupt"]
    return " ".join(shlex.quote(w) for w in words)


def parse_devices(text: str | None, source: str = "exec") -> str | None:
    if text is None or text == "all":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise HyperlaxError(source, [("--devices", f"{text!r}: expected 'all' or a positive "
                                                   "number of devices")])
    return str(n)


def parse_shard(text: str | None, source: str = "exec") -> tuple[int, int] | None:
    if text is None:
        return None
    k_text, slash, n_text = text.partition("/")
    try:
        k, n = int(k_text), int(n_text)
    except ValueError:
        slash = ""
    if not slash:
        raise HyperlaxError(source, [("--shard", f"{text!r}: expected K/N, shard K of N "
                                                 "(e.g. 0/4)")])
    if n < 1:
        raise HyperlaxError(source, [("--shard", f"{text!r}: N must be at least 1")])
    if not 0 <= k < n:
        raise HyperlaxError(source, [("--shard", f"{text!r}: K must be in 0..{n - 1}; shards "
                                                 "are numbered from 0")],
                            f"a SLURM job array --array=0-{n - 1} numbers its tasks "
                            "($SLURM_ARRAY_TASK_ID) from 0, as a Kubernetes indexed Job does "
                            "($JOB_COMPLETION_INDEX)")
    return k, n


# In a sweep directory: the --compile-cache of the exec that was stopped there, so that
# ``status``'s resume line can give it back (the default cache is left unsaid).
RESUME_OPTIONS = "resume-options.json"


def remember_compile_cache(root: Path, cache: Path | None) -> None:
    """Record a stopped exec's --compile-cache in its sweep directory ``root``, best effort: a
    stop must end whatever the disk does."""
    from hyperlax.storage.atomic import atomic_write, json_bytes, remove_file

    if not root.is_dir():
        return
    try:
        if cache is None:
            remove_file(root / RESUME_OPTIONS, within=root)
        else:
            atomic_write(root / RESUME_OPTIONS,
                         json_bytes({"compile_cache": str(cache.resolve())}), within=root)
    except (OSError, HyperlaxError):
        pass


def remembered_compile_cache(root: Path) -> Path | None:
    """The --compile-cache ``remember_compile_cache`` recorded in ``root``, or None."""
    from hyperlax.storage.read import read_json

    path = root / RESUME_OPTIONS
    if not path.is_file():
        return None
    try:
        cache = read_json(path, "resume options", limit=1 << 16, within=root)["compile_cache"]
    except (HyperlaxError, KeyError, TypeError):
        return None
    return Path(cache) if isinstance(cache, str) else None
