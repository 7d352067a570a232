"""The sweep directory: which plan's results it holds, the plan copy, entry states, completion
markers and their verification. JAX-free.

    <output root>/
      hyperlax-sweep.json     whose results this directory holds (written once, first exec)
      plan.msgpack            a copy of the plan that first ran here
      <recipe>/<env>/samples/batch_00000/
        samples.json curves.npz curves.csv summary.json
        success.txt           written last: the entry is complete; checksums of the files above
      <recipe>/<env>/samples/batch_00000.claim
                              while a worker runs the entry (``claims``: the lease protocol)

Ownership is keyed on the plan's results id (``plan.format.results_id``: what determines the
results, not the manifest's text), so a plan re-compiled from a comment-only edit or a renamed
manifest keeps the completed results. A directory made by an older hyperlax records only a plan
id: it belongs to exactly that plan.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from hyperlax.errors import HyperlaxError
from hyperlax.plan.format import Entry, Plan, results_id
from hyperlax.storage.paths import PinnedRoot, path_problem, writable_inside
from hyperlax.storage import atomic
from hyperlax.storage.atomic import (json_bytes, make_dirs, make_new_dir, publish_new,
                                     remove_file, remove_tree, storage_error)
from hyperlax.storage.read import MissingFileError, decode_json, read_bytes, read_json, \
    sha256_file, MAX_RECORD_BYTES
from hyperlax.storage.claims import DEFAULT_CLAIM_TIMEOUT, ClaimInfo, EntryClaim, read_claim, \
    try_claim

SWEEP_RECORD = "hyperlax-sweep.json"
PLAN_COPY = "plan.msgpack"
MARKER = "success.txt"
ENTRY_FILES = ["samples.json", "curves.npz", "curves.csv", "summary.json"]
CLAIM_SUFFIX = ".claim"
STAGING_PREFIX = ".hyperlax-staging-"


@dataclass(frozen=True)
class Owner:
    """A plan as an owner of results: its plan id (for information, and for directories an
    older hyperlax made) and its results id (what decides)."""

    plan_id: str
    results_id: str

    @classmethod
    def of(cls, plan: Plan, plan_id: str) -> Owner:
        return cls(plan_id, results_id(plan))

    def record(self) -> dict[str, str]:
        return {"plan_id": self.plan_id, "results_id": self.results_id}

    def owns(self, record: Mapping[str, Any]) -> bool:
        """Whether a sweep record or marker (``record``) is this plan's results."""
        if record.get("results_id") is not None:
            return record["results_id"] == self.results_id
        return record.get("plan_id") == self.plan_id

    def id_like(self, record: Mapping[str, Any]) -> str:
        """This owner's id of the kind ``record`` names, to show beside it."""
        return self.results_id if record.get("results_id") is not None else self.plan_id


def sweep_root(plan: Plan, output_root: Path | None) -> Path:
    """The sweep directory of ``plan``: ``output_root`` when given, else the plan's own."""
    return output_root if output_root is not None else Path(plan.settings.output_root)


def recorded_id(record: Mapping[str, Any]) -> str:
    """The id a sweep record or marker names its owner by."""
    return str(record.get("results_id") or record.get("plan_id"))


def another_plan(root: Path, record: Mapping[str, Any], owner: Owner | None = None,
                 hint: str = "pass --output-root to run this plan elsewhere, or run the plan "
                             "that owns it") -> HyperlaxError:
    """The one refusal of a sweep directory whose results are another plan's."""
    ours = f", not this one ({owner.id_like(record)[:12]})" if owner is not None else ""
    return HyperlaxError(str(root), f"belongs to another plan ({recorded_id(record)[:12]})"
                                    f"{ours}; nothing was touched", hint)


def _is_claim_leftover(name: str) -> bool:
    """What a first exec killed while claiming a directory can leave: the plan copy, the
    temporary files of atomic_write (``.<name>.<random>.tmp``) for it or the sweep record, and
    the private staging directory the record is prepared in."""
    return name == PLAN_COPY or name.startswith(STAGING_PREFIX) or (
        name.endswith(".tmp") and name.startswith((f".{PLAN_COPY}.", f".{SWEEP_RECORD}.")))


def _is_size(value: Any) -> bool:
    """A file size as a marker records it: a non-negative integer (JSON true is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SweepDir:
    def __init__(self, root: Path):
        self.root = root
        # Where the root really is now, with every link on the way resolved, pinned for this
        # process: every write checks against it, so a directory above or at the root that is
        # swapped for a link while the sweep runs (a search's rounds/, say) is refused too.
        self.within = PinnedRoot(root)

    # --- ownership ------------------------------------------------------------------------

    def record(self) -> dict[str, Any] | None:
        """The ownership record of this directory, or None when there is none."""
        path = self.root / SWEEP_RECORD
        hint = ("this directory's ownership is unknown; use another output root or restore the "
                "file")
        try:
            record = read_json(path, "sweep record", within=self.within, hint=hint)
            if not isinstance(record, dict) or not isinstance(
                    record.get("results_id") or record["plan_id"], str):
                raise TypeError("no owner id")
            return record
        except MissingFileError:
            return None
        except HyperlaxError as exc:
            raise HyperlaxError(str(path), f"unreadable sweep record ({exc.problems[0][1]})",
                                hint) from None
        except (KeyError, TypeError) as exc:
            raise HyperlaxError(str(path), f"unreadable sweep record ({exc})", hint) from None

    def check_owner(self, owner: Owner) -> None:
        """Refuse a directory that holds another plan's results or something else entirely."""
        record = self.record()
        if record is not None and not owner.owns(record):
            raise another_plan(self.root, record, owner)
        if record is None and self.root.exists() and not all(
                _is_claim_leftover(p.name) for p in self.root.iterdir()):
            if self.record() is not None:  # another worker claimed it just now: look again
                return self.check_owner(owner)
            raise HyperlaxError(str(self.root), "is not empty and is not a hyperlax sweep "
                                                "directory; nothing was touched",
                                "pass --output-root with a new or empty directory")

    def claim(self, plan_bytes: bytes, owner: Owner) -> None:
        """Record that this directory holds ``owner``'s results, with a copy of the plan.

        Safe when several workers start on one directory at once: the record is written whole
        into a private staging directory, then hard-linked into place, which succeeds for
        exactly one of them; the others read the winner's record and go on if it names their
        results, or refuse the directory if it does not. The plan copy is written after the
        record, and only by workers of the owning plan (rewritten if a kill left it missing),
        so a worker that lost the race for another plan never touches it."""
        self.check_owner(owner)
        won = False
        if self.record() is None:
            make_dirs(self.root, within=self.within)
            staging = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
            try:
                make_new_dir(staging, within=self.within)
                atomic.atomic_write(staging / SWEEP_RECORD, json_bytes(owner.record()),
                                   within=self.within)
                won = publish_new(staging / SWEEP_RECORD, self.root / SWEEP_RECORD,
                                  within=self.within)
            finally:
                remove_tree(staging, within=self.within, ignore_errors=True)
        self.check_owner(owner)  # whoever won (maybe since the first look), it is these results
        if won or not (self.root / PLAN_COPY).is_file():
            # the same bytes from every worker of one plan; a plan with the same results but
            # another manifest text leaves the first plan's copy in place
            atomic.atomic_write(self.root / PLAN_COPY, plan_bytes, within=self.within)

    # --- entries ----------------------------------------------------------------------------

    def entry_dir(self, entry_path: str) -> Path:
        problem = path_problem(entry_path)
        if problem:  # plans are checked when read; this guards every other caller
            raise HyperlaxError(str(self.root), f"entry path {entry_path!r} {problem}")
        return self.root.joinpath(*entry_path.split("/"))

    def writable_entry_dir(self, entry_path: str) -> Path:
        """``entry_dir``, checked right before anything is written or deleted there: with every
        symlink on the way resolved it must lie strictly inside the output root, and it must
        not itself be a symlink (cleaning it would act on the link's target)."""
        directory = self.entry_dir(entry_path)
        writable_inside(self.root, entry_path, where=directory)
        if directory.is_symlink():
            raise HyperlaxError(str(directory), "the entry's directory is a symlink; hyperlax "
                                                "never writes or deletes through one",
                                "remove the symlink, or use another --output-root")
        return directory

    def claim_path(self, entry_path: str) -> Path:
        directory = self.writable_entry_dir(entry_path)
        return directory.with_name(directory.name + CLAIM_SUFFIX)

    def read_entry_claim(self, entry_path: str) -> ClaimInfo | None:
        return read_claim(self.claim_path(entry_path))

    def try_claim_entry(self, entry_path: str, entry_index: int,
                        timeout: float = DEFAULT_CLAIM_TIMEOUT
                        ) -> tuple[EntryClaim | None, ClaimInfo | None]:
        """``claims.try_claim`` on this entry's claim file."""
        return try_claim(self.claim_path(entry_path), entry_index, timeout)

    def state(self, entry_path: str) -> str:
        """'done' (marker present), 'partial' (directory without marker) or 'pending'."""
        directory = self.entry_dir(entry_path)
        if (directory / MARKER).exists():
            return "done"
        return "partial" if directory.exists() else "pending"

    def fresh_entry_dir(self, entry_path: str) -> Path:
        """An empty directory for an entry about to run: partial outputs of an earlier,
        interrupted attempt are removed so they are never mixed with the new ones."""
        directory = self.writable_entry_dir(entry_path)
        if directory.exists():
            # The marker goes first: a kill halfway through the removal must not leave a
            # marker vouching for files that are gone.
            remove_file(directory / MARKER, within=self.within)
            remove_tree(directory, within=self.within)
        return make_new_dir(directory, within=self.within)

    def complete(self, entry_path: str, owner: Owner, entry_index: int,
                 files: list[str]) -> None:
        """Write the marker last, with checksums of the files it vouches for."""
        directory = self.writable_entry_dir(entry_path)
        names = sorted(files)
        marker = {**owner.record(), "entry": entry_index,
                  "files": {name: sha256_file(directory / name) for name in names},
                  "bytes": {name: (directory / name).stat().st_size for name in names}}
        atomic.atomic_write(directory / MARKER, json_bytes(marker), within=self.within)

    def read_marker(self, entry_path: str) -> dict[str, Any]:
        """An entry's success marker, read back (a HyperlaxError when it is not one)."""
        return read_json(self.entry_dir(entry_path) / MARKER, "success marker",
                         within=self.within)

    def verify(self, entry_path: str, owner: Owner, entry_index: int | None = None
               ) -> list[str]:
        """Problems with a complete entry: its marker is damaged (malformed, or a size it records
        disagrees with its file) or belongs elsewhere, or a file it vouches for is missing,
        truncated or changed since completion. [] when intact.
        Raises OSError when a file exists but cannot be read."""
        directory = self.entry_dir(entry_path)
        try:
            data = read_bytes(directory / MARKER, "success marker", MAX_RECORD_BYTES,
                              within=self.within)
        except MissingFileError:
            return [f"{MARKER} is missing"]
        except HyperlaxError as exc:  # a FIFO, a device, a huge file, a link out of the root
            return [f"{MARKER} is unreadable ({exc.problems[0][1]})"]
        try:
            marker = decode_json(data, directory / MARKER, "success marker")
        except HyperlaxError:
            return [f"{MARKER} is damaged (not JSON)"]
        files = marker.get("files") if isinstance(marker, dict) else None
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            return [f"{MARKER} is damaged (no file checksums)"]
        problems = []
        if not owner.owns(marker):
            problems.append(f"{MARKER} belongs to another plan ({recorded_id(marker)[:12]})")
        if entry_index is not None and marker.get("entry") != entry_index:
            problems.append(f"{MARKER} is for entry {marker.get('entry')!r}, not {entry_index}")
        missing = [n for n in ENTRY_FILES if n not in files]
        if missing:
            problems.append(f"{MARKER} does not vouch for {', '.join(missing)}")
        sizes = marker.get("bytes")
        sized = isinstance(sizes, dict)
        if not sized:  # every marker hyperlax ever wrote records sizes: one without is damaged
            problems.append(f"{MARKER} is damaged (no file sizes)")
            sizes = {}
        for name, digest in sorted(files.items()):
            path = directory / name
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                problems.append(f"{MARKER} names an odd file {name!r}")
                continue
            if not path.is_file():
                problems.append(f"{name} is missing")
                continue
            size, recorded = path.stat().st_size, sizes.get(name)
            if not _is_size(recorded):
                if sized:
                    problems.append(f"{MARKER} is damaged (no size for {name})" if recorded is None
                                    else f"{MARKER} is damaged ({name}'s size is {recorded!r})")
                recorded = None
            if sha256_file(path) != digest:
                if recorded is not None and size < recorded:
                    problems.append(f"{name} is truncated ({size} of {recorded} bytes)")
                else:
                    problems.append(f"{name} changed after the entry completed (checksum "
                                    "differs)")
            elif recorded is not None and size != recorded:
                # the file is what the checksum vouches for: the marker's size is what changed
                problems.append(f"{MARKER} is damaged (records {recorded} bytes for {name}, "
                                f"which has {size})")
        problems.extend(f"{MARKER} is damaged (a size for {name!r}, which it has no checksum "
                        "for)" for name in sorted(set(sizes) - set(files)))
        return problems

    def corrupt_entries(self, entries: Iterable[Entry], owner: Owner,
                        verified: set[str] | None = None) -> dict[str, list[str]]:
        """Problems of each complete entry of ``entries`` (plan entries: path and index) whose
        files no longer match its marker; a StorageError when one cannot be read. The paths
        of those that match are added to ``verified``, if given."""
        corrupt = {}
        for entry in entries:
            if self.state(entry.path) != "done":
                continue
            try:
                problems = self.verify(entry.path, owner, entry.index)
            except OSError as exc:
                raise storage_error(self.entry_dir(entry.path), exc, "cannot read this entry "
                                    "to verify it", "run the same command again") from None
            if problems:
                corrupt[entry.path] = problems
            elif verified is not None:
                verified.add(entry.path)
        return corrupt
