"""``hyperlax search MANIFEST``: parses, calls the search use case (``search.run``), prints.
Registered on the ``hyperlax`` group by ``hyperlax.cli.main``. Module level is JAX-free and
Optuna-free, so ``hyperlax --help`` stays instant."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from hyperlax.exec import stopping
from hyperlax.cli.errors import user_errors
from hyperlax.exec.options import COMPILE_CACHE_HELP, COMPILE_CACHE_VARIABLE, \
    SEARCH_SHARD_REFUSAL, ExecOptions, declared

STORAGE_HELP = ("Optuna storage mirrored from the study file, for optuna-dashboard: a URL "
                "(sqlite:///path/study.db) or a file name in the search directory "
                "[default: optuna_study.db there]")

# exec's options for where each round runs; --shard is refused (SEARCH_SHARD_REFUSAL says why)
round_options = declared(shard_refusal=SEARCH_SHARD_REFUSAL, source="search")


def resume_line(words: list[str]) -> str:
    return shlex.join(words)


def search_words(manifest: Path, output_root: Path | None, storage: str | None,
                 compile_cache: Path | None, options: ExecOptions) -> list[str]:
    """The search command line as given, for the resume hint: a resumed search runs its
    rounds where and how the stopped one did."""
    words = ["hyperlax", "search", str(manifest)]
    if output_root is not None:
        words += ["--output-root", str(output_root)]
    if storage is not None:
        words += ["--storage", storage]
    if compile_cache is not None:
        words += ["--compile-cache", str(compile_cache)]
    return words + options.words()


@click.command("search")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--output-root", type=click.Path(path_type=Path), default=None,
              help="the search directory [default: the manifest's output_root]")
@click.option("--storage", default=None, metavar="URL|FILE", help=STORAGE_HELP)
@click.option("--compile-cache", type=click.Path(path_type=Path), default=None,
              envvar=COMPILE_CACHE_VARIABLE, help=COMPILE_CACHE_HELP)
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@user_errors
@round_options
def search_command(manifest: Path, output_root: Path | None, storage: str | None,
                   compile_cache: Path | None, quiet: bool, options: ExecOptions) -> None:
    """Search MANIFEST's [space] in rounds with Optuna (its [search] section): ask a round of
    configurations, train them as one plan, tell the results, repeat. Every round is recorded
    in <output root>/search.json; running the same command again resumes the search.

    Each round runs as `hyperlax exec` would, with the options given: --devices, --ray and
    the like spread a round's training. There is no --shard: a round is asked only after the
    one before it is told, so rounds cannot run as independent array jobs.

    \b
    Exit status: 0 every trial told; 1 a disk error; 2 bad input (manifest, space, options,
    a directory holding something else, a study file that no longer replays); 130 / 143
    stopped by SIGINT / SIGTERM: run the same command again to resume.
    """
    with stopping.handling():  # first: a stop while reading or importing is handled too
        from hyperlax.manifest.resolve import read_manifest
        from hyperlax.search.run import SearchRequest, run_search

        words = search_words(manifest, output_root, storage, compile_cache, options)
        request = SearchRequest(
            manifest_text=read_manifest(manifest), manifest_name=manifest.name,
            manifest_dir=manifest.parent, resume=resume_line(words), output_root=output_root,
            storage=storage, compile_cache=compile_cache, options=options, quiet=quiet)
        status = run_search(request, click.echo)
        if status:
            stopping.finish(status)
