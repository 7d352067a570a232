"""Property-based tests of the compiler's front door and the plan decoder (hypothesis).

- Valid manifests, built from the real hyperparameter tables (random subsets, in-bounds
  distributions and fixed values that respect the cross-field rules): always plan.
- Invalid manifests, a valid one with one mutation whose place is known: always a located
  error naming that place, exit status 2, no traceback, no plan file.
- Anything at all in a field: a plan or a clean exit 2, never a traceback.
- Random bytes, and damaged real plans, as a plan file: a HyperlaxError, never a crash.

Runs in-process through click's CliRunner; example counts are capped to keep it quick.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hyperlax.cli.main import main
from hyperlax.errors import HyperlaxError
from hyperlax.plan.format import decode_plan
from hyperlax.hyperparams import ALGORITHMS, HyperParam

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# recipe -> (algorithm, envs it fits)
RECIPES = {
    "ppo_mlp_fixed_net": ("ppo", ["gymnax.cartpole", "gymnax.pendulum"]),
    "ppo_mlp_small": ("ppo", ["gymnax.acrobot", "gymnax.mountain_car_continuous"]),
    "dqn_mlp_small": ("dqn", ["gymnax.cartpole", "gymnax.mountain_car"]),
    "sac_mlp_small": ("sac", ["gymnax.pendulum"]),
}

# Values that keep every combination valid: num_envs x rollout_length stays a multiple of 8
# (num_minibatches <= 8, a power of two) and at most 64 x 256, so total_timesteps = 100_000
# fits num_evaluations <= 5 evaluations; replay batches never exceed the smallest buffer.
CONSTRAINED: dict[str, list[int]] = {
    "num_envs": list(range(1, 65)),
    "rollout_length": [8 * k for k in range(1, 33)],
    "num_minibatches": [1, 2, 4, 8],
    "replay_batch_size": list(range(1, 257)),
    "buffer_size": list(range(256, 100_001)),
}
TIMESTEPS = 100_000


# --- values and distributions of one hyperparameter ----------------------------------------

def legal_values(p: HyperParam) -> st.SearchStrategy[Any]:
    if p.name in CONSTRAINED:
        return st.sampled_from(CONSTRAINED[p.name])
    if p.type == "float":
        high = p.high if p.high is not None else 1e3
        return st.floats(min_value=p.low, max_value=high, exclude_min=p.low_open,
                         exclude_max=p.high_open, allow_nan=False, allow_subnormal=False)
    if p.type == "int":
        return st.integers(min_value=int(p.low), max_value=min(int(p.high), 100_000))
    if p.type == "bool":
        return st.booleans()
    if p.type == "str":  # not an image-only value (a CNN torso): most envs have flat obs
        return st.sampled_from([c for c in p.choices if c not in p.image_only])
    return st.lists(st.integers(min_value=1, max_value=512), min_size=1, max_size=3)


def _distinct(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


@st.composite
def legal_distribution(draw, p: HyperParam) -> dict[str, Any]:
    categorical = st.lists(legal_values(p), min_size=1, max_size=4).map(_distinct).map(
        lambda vs: {"dist": "categorical", "values": vs})
    if p.name in CONSTRAINED or p.type in ("bool", "str", "int_list"):
        dist = draw(categorical)
        if draw(st.booleans()):
            dist["weights"] = draw(st.lists(st.floats(0.1, 10.0), min_size=len(dist["values"]),
                                            max_size=len(dist["values"])))
        return dist
    a, b = draw(legal_values(p)), draw(legal_values(p))
    low, high = min(a, b), max(a, b)
    if p.type == "int":
        kind = draw(st.sampled_from(["int_uniform", "int_log_uniform", "categorical"]))
        if kind == "int_log_uniform" and low < 1:
            kind = "int_uniform"
        if kind == "categorical":
            return draw(categorical)
        return {"dist": kind, "low": low, "high": high}
    assume(low < high)
    kind = draw(st.sampled_from(["uniform", "log_uniform", "categorical"]))
    if kind == "log_uniform" and low <= 0:
        kind = "uniform"
    if kind == "categorical":
        return draw(categorical)
    return {"dist": kind, "low": low, "high": high}


@st.composite
def valid_manifest(draw) -> dict[str, Any]:
    recipe = draw(st.sampled_from(sorted(RECIPES)))
    algorithm, envs = RECIPES[recipe]
    table = ALGORITHMS[algorithm]
    sweep = {
        "name": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        "recipe": recipe,
        "recipe_space": "include",  # the recipe's space joins [space], as the draw below assumes
        "env": draw(st.sampled_from(envs)),
        "num_samples": draw(st.integers(1, 12)),
        "sampling": draw(st.sampled_from(["qmc_sobol", "random"])),
        "seed": draw(st.integers(0, 2**63 - 1)),
        "mode": draw(st.sampled_from(["batched", "sequential", "grouped"])),
        "batch_size": draw(st.integers(1, 8)),
        "seeds_per_sample": draw(st.integers(1, 3)),
        "total_timesteps": TIMESTEPS,
        "num_evaluations": draw(st.integers(1, 5)),
        "eval_episodes": draw(st.integers(1, 4)),
    }
    # The recipes' own spaces must stay within the constraints too: pin those in [fixed]
    # unless the draw puts them in [space].
    names = sorted(table)
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=6))
    in_space = {n for n in chosen if draw(st.booleans())}
    fixed: dict[str, Any] = {}
    space: dict[str, Any] = {}
    for name in names:
        p = table[name]
        if name in in_space:
            space[name] = draw(legal_distribution(p))
        elif name in chosen or name in CONSTRAINED:
            fixed[name] = draw(legal_values(p))
    return {"sweep": sweep, "fixed": fixed, "space": space}


def toml_text(doc: dict[str, Any]) -> str:
    # no [space] table, not an empty one: an empty [space] means "no space at all"
    return tomli_w.dumps({k: v for k, v in doc.items() if not (k == "space" and not v)})


def plan(tmp_path: Path, text: str) -> tuple[Any, Path]:
    manifest = tmp_path / "sweep.toml"
    manifest.write_text(text)
    output = tmp_path / "plan.msgpack"
    output.unlink(missing_ok=True)
    result = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(output)])
    return result, output


def assert_clean_refusal(result: Any, output: Path) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.output.startswith("error: "), result.output
    assert not output.exists()


# --- properties ------------------------------------------------------------------------------

@FAST
@given(doc=valid_manifest())
def test_valid_manifests_always_plan(tmp_path, doc):
    result, output = plan(tmp_path, toml_text(doc))
    assert result.exit_code == 0, (toml_text(doc), result.output, result.exception)
    assert output.exists()
    decoded, _ = decode_plan(output.read_bytes(), "plan")
    assert len(decoded.samples) == doc["sweep"]["num_samples"]


def _first_float(table: dict) -> str:
    return next(n for n, p in table.items() if p.type == "float")


# Each mutation: (doc, draw) -> location the error must name (after "sweep.toml: ").
MUTATIONS = {
    "num_samples zero or negative": lambda d, draw: (
        d["sweep"].__setitem__("num_samples", draw(st.integers(-5, 0))), "sweep.num_samples"),
    "num_samples wrong type": lambda d, draw: (
        d["sweep"].__setitem__("num_samples", draw(st.sampled_from(["8", 1.5, True, [1]]))),
        "sweep.num_samples"),
    "batch_size zero": lambda d, draw: (d["sweep"].__setitem__("batch_size", 0),
                                        "sweep.batch_size"),
    "negative seed": lambda d, draw: (
        d["sweep"].__setitem__("seed", draw(st.integers(-2**63, -1))), "sweep.seed"),
    "bad mode": lambda d, draw: (
        d["sweep"].__setitem__("mode", draw(st.sampled_from(["batch", "", "GROUPED"]))),
        "sweep.mode"),
    "bad name": lambda d, draw: (
        d["sweep"].__setitem__("name", draw(st.sampled_from(["../x", "", "a b", "-x", "x/y"]))),
        "sweep.name"),
    "unknown sweep key": lambda d, draw: (
        d["sweep"].__setitem__("num_sample", 4), "sweep.num_sample"),
    "unknown section": lambda d, draw: (d.__setitem__("spaces", {}), "spaces"),
    "missing sweep key": lambda d, draw: (
        d["sweep"].pop(draw(st.sampled_from(["name", "recipe", "env", "num_samples"]))),
        "sweep: missing required key"),
    "unknown env": lambda d, draw: (
        d["sweep"].__setitem__("env", draw(st.sampled_from(["gymnax.cartpol", "cartpole",
                                                            "gymnax."]))), "sweep.env"),
    "unknown recipe": lambda d, draw: (d["sweep"].__setitem__("recipe", "ppo_mpl"),
                                       "sweep.recipe"),
    "unknown fixed hyperparameter": lambda d, draw: (
        d["fixed"].__setitem__(draw(st.sampled_from(["gama", "lr", "x.y"])), 1), "fixed."),
    "unknown space hyperparameter": lambda d, draw: (
        d["space"].__setitem__("actor_lrr", {"dist": "uniform", "low": 0.1, "high": 0.2}),
        "space.actor_lrr"),
}


def _table(doc: dict) -> dict[str, HyperParam]:
    return ALGORITHMS[RECIPES[doc["sweep"]["recipe"]][0]]


def _free_name(doc: dict, draw, kinds: tuple[str, ...]) -> str:
    table = _table(doc)
    names = [n for n, p in table.items() if p.type in kinds and n not in CONSTRAINED]
    name = draw(st.sampled_from(names))
    doc["fixed"].pop(name, None)
    doc["space"].pop(name, None)
    return name


def _out_of_bounds(doc, draw) -> str:
    name = _free_name(doc, draw, ("float",))
    p = _table(doc)[name]
    below = p.low - draw(st.floats(0.0 if p.low_open else 1e-3, 10.0))
    candidates = [below] + ([p.high + draw(st.floats(1e-3, 10.0))] if p.high is not None else [])
    doc["fixed"][name] = draw(st.sampled_from(candidates))
    return f"fixed.{name}"


def _wrong_type(doc, draw) -> str:
    name = _free_name(doc, draw, ("float", "int", "bool", "int_list"))
    p = _table(doc)[name]
    wrong = {"float": ["0.5", True, [0.5]], "int": ["8", 2.5, False],
             "bool": [1, "true"], "int_list": [64, [64.0], "64", []]}[p.type]
    doc["fixed"][name] = draw(st.sampled_from(wrong))
    return f"fixed.{name}"


def _bad_distribution(doc, draw) -> str:
    name = _free_name(doc, draw, ("float",))
    p = _table(doc)[name]
    high = p.high if p.high is not None else 10.0
    kind = draw(st.sampled_from(["inverted", "log_nonpositive", "unknown", "missing_dist",
                                 "extra_key", "empty_categorical", "int_dist", "nan"]))
    dist = {
        "inverted": {"dist": "uniform", "low": high, "high": p.low},
        "log_nonpositive": {"dist": "log_uniform", "low": -draw(st.floats(0, 5)), "high": 1.0},
        "unknown": {"dist": draw(st.sampled_from(["normal", "uniforn", "loguniform"])),
                    "low": 0.1, "high": 0.2},
        "missing_dist": {"low": 0.1, "high": 0.2},
        "extra_key": {"dist": "uniform", "low": 0.1, "high": 0.2, "step": 0.1},
        "empty_categorical": {"dist": "categorical", "values": []},
        "int_dist": {"dist": "int_uniform", "low": 0, "high": 1},
        "nan": {"dist": "uniform", "low": math.nan, "high": 0.5},
    }[kind]
    doc["space"][name] = dist
    return f"space.{name}"


def _both_fixed_and_space(doc, draw) -> str:
    name = _free_name(doc, draw, ("float",))
    p = _table(doc)[name]
    doc["fixed"][name] = p.default
    doc["space"][name] = {"dist": "categorical", "values": [p.default]}
    return f"space.{name}"


def _cross_field(doc, draw) -> str:
    if RECIPES[doc["sweep"]["recipe"]][0] == "ppo":
        doc["fixed"].update(num_envs=3, rollout_length=8, num_minibatches=16)
        doc["space"].pop("num_envs", None)
        doc["space"].pop("rollout_length", None)
        doc["space"].pop("num_minibatches", None)
        return "sample"  # "sample 0: ..." or "every sample: ..."
    doc["fixed"].update(replay_batch_size=300, buffer_size=256)
    doc["space"].pop("replay_batch_size", None)
    doc["space"].pop("buffer_size", None)
    return "sample"


MUTATIONS.update({
    "out-of-bounds fixed value": _out_of_bounds,
    "wrong-typed fixed value": _wrong_type,
    "bad distribution": _bad_distribution,
    "same name in fixed and space": _both_fixed_and_space,
    "cross-field rule broken": _cross_field,
})


@st.composite
def invalid_manifest(draw) -> tuple[str, str, str]:
    doc = draw(valid_manifest())
    kind = draw(st.sampled_from(sorted(MUTATIONS)))
    mutate = MUTATIONS[kind]
    returned = mutate(doc, draw)
    location = returned[1] if isinstance(returned, tuple) else returned
    return kind, toml_text(doc), location


@FAST
@given(case=invalid_manifest())
def test_invalid_manifests_give_a_located_error(tmp_path, case):
    kind, text, location = case
    result, output = plan(tmp_path, text)
    assert_clean_refusal(result, output)
    assert location in result.output, (kind, text, result.output)
    assert result.output.startswith("error: sweep.toml: "), result.output


any_value = st.recursive(
    st.none().map(lambda _: "") | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


@st.composite
def scrambled_manifest(draw) -> str:
    """A valid manifest with one field (or a whole section) replaced by anything at all."""
    doc = draw(valid_manifest())
    section = draw(st.sampled_from(["sweep", "fixed", "space", "top", "distribution"]))
    if section == "distribution":
        if not doc["space"]:
            doc["space"]["gamma"] = {"dist": "uniform", "low": 0.9, "high": 0.99}
        target = doc["space"][draw(st.sampled_from(sorted(doc["space"])))]
    else:
        target = doc if section == "top" else doc[section]
    keys = sorted(target) + [draw(st.text(min_size=1, max_size=6))]
    key = draw(st.sampled_from(keys))
    target[key] = draw(any_value)
    try:
        return toml_text(doc)
    except (TypeError, ValueError):  # not expressible in TOML (e.g. huge ints)
        assume(False)
        raise


@settings(FAST, max_examples=60)
@given(text=scrambled_manifest())
def test_anything_in_a_field_plans_or_exits_2_without_traceback(tmp_path, text):
    result, output = plan(tmp_path, text)
    if result.exit_code == 0:
        assert output.exists()
    else:
        assert_clean_refusal(result, output)


@settings(FAST, max_examples=60)
@given(text=st.text(max_size=300))
def test_random_text_as_a_manifest_exits_2_without_traceback(tmp_path, text):
    result, output = plan(tmp_path, text)
    assert_clean_refusal(result, output)


# --- the plan decoder ------------------------------------------------------------------------

@settings(FAST, max_examples=300)
@given(data=st.binary(max_size=600))
def test_random_bytes_never_crash_the_plan_decoder(data):
    with pytest.raises(HyperlaxError):
        decode_plan(data, "plan.msgpack")


packable = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)

envelope_like = st.fixed_dictionaries(
    {}, optional={"format": st.sampled_from(["hyperlax-plan", "other"]) | packable,
                  "format_version": st.sampled_from([0, 1, 2, -1, 2**64 - 1]) | packable,
                  "plan_id": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
                  | packable,
                  "plan": st.dictionaries(st.sampled_from(
                      ["hyperlax_version", "settings", "samples", "entries", "manifest_text"]),
                      packable, max_size=5) | packable,
                  "extra": packable})


@settings(FAST, max_examples=150)
@given(obj=packable | envelope_like)
def test_random_msgpack_never_crashes_the_plan_decoder(obj):
    with pytest.raises(HyperlaxError):
        decode_plan(msgspec.msgpack.encode(obj), "plan.msgpack")


@pytest.fixture(scope="module")
def real_plan(tmp_path_factory) -> bytes:
    tmp = tmp_path_factory.mktemp("plan")
    result, output = plan(tmp, (Path(__file__).parent.parent / "specs" /
                                "quickstart.toml").read_text())
    assert result.exit_code == 0, result.output
    return output.read_bytes()


@settings(FAST, max_examples=200)
@given(data=st.data())
def test_damaged_real_plans_are_refused(real_plan, data):
    """Truncations, byte flips and splices of a real plan: refused, never accepted, never a
    crash. (A flip can only be accepted if it leaves the plan's bytes unchanged.)"""
    n = len(real_plan)
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        bad = real_plan[:data.draw(st.integers(0, n - 1))]
    elif how == "flip":
        i = data.draw(st.integers(0, n - 1))
        bad = real_plan[:i] + bytes([real_plan[i] ^ data.draw(st.integers(1, 255))]) + \
            real_plan[i + 1:]
    else:
        i = data.draw(st.integers(0, n))
        bad = real_plan[:i] + data.draw(st.binary(min_size=1, max_size=8)) + real_plan[i:]
    try:
        decoded, pid = decode_plan(bad, "plan.msgpack")
    except HyperlaxError:
        return
    # Accepted: only possible when the change did not touch the plan itself (msgpack allows
    # some equivalent encodings of the envelope); the plan must then be the original one.
    _, original_id = decode_plan(real_plan, "plan.msgpack")
    assert pid == original_id
