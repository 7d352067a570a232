"""One way to read a file and one way to write one: every read of a file goes through
``storage/read.py`` (regular files only, size-capped, hostile content refused with a located
error) and every write, directory made or file deleted through ``storage/atomic.py`` (atomic,
never outside the directory it was given, even through a planted symbolic link).

This test reads the package's source and fails on any other file access: a call that opens,
reads, writes, decodes from disk, moves or deletes files anywhere else. What cannot go through
the two modules is listed in ALLOWED with the reason; an entry that no longer matches any call
fails too, so the list stays true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hyperlax"
THE_READER_AND_THE_WRITER = {"storage/read.py", "storage/atomic.py"}

# Methods that read, write or move a file whatever object they are called on (pathlib.Path
# and friends). ``replace`` is left out: it is str.replace and NamedTuple._replace far more
# often than Path.replace, and os.replace is caught below.
FILE_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes", "open", "touch",
                "unlink", "mkdir", "rmdir", "rename", "symlink_to", "hardlink_to",
                "savefig", "chmod"}

# module.function calls that touch files, or decode what was read from one (a decoder must be
# the reader's, which turns hostile nesting into a located error).
MODULE_CALLS = {
    "os": {"open", "fdopen", "remove", "unlink", "rename", "replace", "rmdir", "removedirs",
           "mkdir", "makedirs", "link", "symlink", "truncate", "mkfifo", "chmod"},
    "io": {"open", "FileIO"},
    "codecs": {"open"},
    "json": {"load", "loads", "dump"},
    "tomllib": {"load", "loads"},
    "pickle": {"load", "loads", "dump"},
    "np": {"load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "fromfile",
           "genfromtxt"},
    "numpy": {"load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "fromfile"},
    "sqlite3": {"connect"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory",
                 "TemporaryFile"},
    "gzip": {"open"}, "zipfile": {"ZipFile"}, "tarfile": {"open"},
    "msgspec.json": {"decode"}, "msgspec.msgpack": {"decode"}, "msgspec.toml": {"decode"},
}
SHUTIL = "shutil"  # every shutil call copies, moves or deletes files
BUILTINS = {"open"}
# Libraries that open files themselves, by whatever name they are reached.
OPENS_FILES = {"RDBStorage", "create_study", "load_study", "delete_study", "copy_study",
               "SummaryWriter", "FileWriter"}

# (module, call) -> why it does not go through the reader or the writer.
ALLOWED: dict[tuple[str, str], str] = {
    ("manifest/recipes.py", ".read_text"):
        "a built-in recipe is package data read with importlib.resources (it may live in a "
        "zip); a user's recipe file goes through the reader",
    ("manifest/format.py", "tomllib.loads"):
        "parses TOML text the reader returned; catches RecursionError itself",
    ("plan/format.py", "msgspec.msgpack.decode"):
        "decodes plan bytes the reader returned, with the plan format's own messages "
        "(tests/bad_plans); catches RecursionError itself",
    ("report/plots.py", ".savefig"):
        "renders a figure into an in-memory buffer; the writer writes the bytes",
    ("exec/outputs.py", "np.savez"):
        "packs curves.npz into an in-memory buffer; the writer writes the bytes",
    # Optuna opens its SQLite mirror itself (SQLAlchemy, then sqlite3): no path of ours to
    # hand to the writer. The containment is sampler.check_mirror_file, called by storage_url
    # and before every opening and update: a mirror file (or its -journal/-wal/-shm) that is
    # a symbolic link, not a regular file, or outside the search directory is refused first.
    ("search/sampler.py", ".RDBStorage"):
        "Optuna's SQLite mirror, opened by Optuna; checked by check_mirror_file first",
    ("search/sampler.py", ".create_study"):
        "the in-memory study (no file) and the mirror's study in the storage opened above",
    ("search/sampler.py", ".delete_study"):
        "rebuilds the mirror's study inside the storage opened above (no file of its own)",
    ("report/study.py", ".create_study"):
        "an in-memory study (no storage, no file) for PED-ANOVA importance",
    ("report/optuna_plots.py", ".load_study"):
        "the mirror's study, in the storage sampler.open_storage opened after "
        "storage_url's check_mirror_file",
    ("report/optuna_plots.py", ".savefig"):
        "renders Optuna's figure into an in-memory buffer; the writer writes the bytes",
}


def call_name(node: ast.Call) -> str | None:
    """'open', '.read_text' (a method on anything), 'os.replace', 'msgspec.json.decode', or
    None for a call this test does not look at."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id if func.id in BUILTINS | OPENS_FILES else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = ast.unparse(func.value)
    if func.attr in OPENS_FILES:
        return f".{func.attr}"
    if owner == SHUTIL:
        return f"{SHUTIL}.{func.attr}"
    if func.attr in MODULE_CALLS.get(owner, ()):
        return f"{owner}.{func.attr}"
    if func.attr in FILE_METHODS and owner not in MODULE_CALLS:
        return f".{func.attr}"
    return None


def file_accesses(source: str) -> list[tuple[int, str]]:
    return sorted((node.lineno, name) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Call) and (name := call_name(node)) is not None)


def package_accesses() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in THE_READER_AND_THE_WRITER:
            continue
        for line, name in file_accesses(path.read_text("utf-8")):
            found.setdefault((module, name), []).append(line)
    return found


def test_no_file_is_read_or_written_but_through_the_reader_and_the_writer():
    found = package_accesses()
    others = [f"hyperlax/{module}:{lines[0]}: {name}(...)"
              for (module, name), lines in sorted(found.items()) if (module, name) not in ALLOWED]
    assert not others, ("file access outside storage/read.py and storage/atomic.py (use the "
                        "reader or the writer, or add a commented entry to ALLOWED):\n"
                        + "\n".join(others))


def test_every_allowed_access_still_exists():
    found = package_accesses()
    stale = [key for key in ALLOWED if key not in found]
    assert not stale, f"ALLOWED entries that match no call any more, remove them: {stale}"


@pytest.mark.parametrize("line, expected", [
    ("open(p)", "open"), ("p.read_text('utf-8')", ".read_text"),
    ("Path(x).write_bytes(b'')", ".write_bytes"), ("os.replace(a, b)", "os.replace"),
    ("shutil.rmtree(d)", "shutil.rmtree"), ("json.loads(t)", "json.loads"),
    ("np.load(f)", "np.load"), ("sqlite3.connect(u)", "sqlite3.connect"),
    ("msgspec.json.decode(b)", "msgspec.json.decode"), ("d.mkdir(parents=True)", ".mkdir"),
    ("optuna.storages.RDBStorage(url)", ".RDBStorage"),
    ("optuna.create_study(storage=s)", ".create_study"),
    ("p.unlink(missing_ok=True)", ".unlink"), ("fig.savefig(path)", ".savefig"),
])
def test_the_scan_finds_each_kind_of_access(line, expected):
    assert file_accesses(line) == [(1, expected)]


@pytest.mark.parametrize("line", ["json.dumps(x)", "s.replace('a', 'b')", "t._replace(a=1)",
                                  "read_bytes(path, 'plan file', 10)", "atomic_write(p, b'', "
                                  "within=r)", "msgspec.json.encode(x)", "p.exists()"])
def test_the_scan_leaves_other_calls_alone(line):
    assert file_accesses(line) == []


# The writer's functions whose ``within`` is the point: a call without it fails when it runs
# (a required keyword), which only a test that reaches it would notice; this notices at once.
NEEDS_WITHIN = {"atomic_write", "publish_new", "make_dirs", "make_new_dir", "remove_file",
                "remove_tree", "remove_empty_dir", "rename_within", "open_lock_file",
                "append_text"}


def calls_without_within(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else \
            func.attr if isinstance(func, ast.Attribute) else None
        if name in NEEDS_WITHIN and not any(k.arg in ("within", None) for k in node.keywords):
            found.append((node.lineno, name))
    return found


def test_every_write_says_which_directory_it_must_stay_in():
    missing = [f"hyperlax/{path.relative_to(PACKAGE).as_posix()}:{line}: {name}(...) "
               "without within="
               for path in sorted(PACKAGE.rglob("*.py"))
               if path.relative_to(PACKAGE).as_posix() not in THE_READER_AND_THE_WRITER
               for line, name in calls_without_within(path.read_text("utf-8"))]
    assert not missing, "\n".join(missing)


def test_the_within_scan_finds_a_call_without_it():
    assert calls_without_within("atomic.atomic_write(p, b'')") == [(1, "atomic_write")]
    assert calls_without_within("atomic_write(p, b'', within=r)") == []
