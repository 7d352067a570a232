"""Write tests/bad_plans/: damaged or hostile plan files, each with the message hyperlax must
refuse it with (tests/bad_plans/expected.json). Most are edited on purpose and re-encoded with
their plan id recomputed, as an attacker would, so only a check of the content can catch them.

    python tools/make_bad_plans.py      # rewrite the corpus (from tests/golden/quickstart)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import msgspec

from hyperlax.plan.format import FORMAT, FORMAT_VERSION, Plan, PlanFile, plan_id

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests" / "golden" / "quickstart.plan.msgpack"
OUT = ROOT / "tests" / "bad_plans"


def base_plan() -> dict[str, Any]:
    envelope = msgspec.msgpack.decode(BASE.read_bytes())
    return envelope["plan"]


def encode(plan: dict[str, Any]) -> bytes:
    """Re-encode an edited plan with its id recomputed (no content check on the way)."""
    typed = msgspec.convert(plan, Plan)
    return msgspec.msgpack.encode(PlanFile(format=FORMAT, format_version=FORMAT_VERSION,
                                           plan_id=plan_id(typed), plan=typed))


def set_path(i: int, path: str) -> Callable[[dict], None]:
    def edit(p: dict) -> None:
        p["entries"][i]["path"] = path
    return edit


def edit_sample_value(p: dict) -> None:
    name = p["sampled"][0]
    p["samples"][0]["values"][name] = "0.001; rm -rf /"


def flip_role(p: dict) -> None:
    for row in p["hyperparams"]:
        if row["name"] == "num_envs":
            row["role"] = "scalar"


def nest_entries(p: dict) -> None:
    p["entries"][0]["path"] = "ppo_mlp/x"
    p["entries"].append(copy.deepcopy(p["entries"][0]))
    p["entries"][1].update(index=1, path="ppo_mlp/x/inner")


def duplicate_entries(p: dict) -> None:
    p["entries"].append(copy.deepcopy(p["entries"][0]))
    p["entries"][1]["index"] = 1


def structure_mismatch(p: dict) -> None:
    p["structures"][0]["values"]["num_envs"] += 1


def cnn_on_flat_env(p: dict) -> None:
    p["constants"]["network.torso"] = "cnn"
    for structure in p["structures"]:
        structure["values"]["network.torso"] = "cnn"


CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "01_absolute_entry_path": (set_path(0, "/tmp/hyperlax-escape/batch"),
                               "plan.entries[0].path: '/tmp/hyperlax-escape/batch' is absolute"),
    "02_climbing_entry_path": (set_path(0, "../escape/batch_00000"),
                               "plan.entries[0].path: '../escape/batch_00000' is not a plain "
                               "relative path"),
    "03_empty_entry_path": (set_path(0, ""), "plan.entries[0].path: is empty"),
    "04_root_entry_path": (set_path(0, "."), "plan.entries[0].path: '.' is not a plain"),
    "05_nul_in_entry_path": (set_path(0, "ppo\0x/batch"),
                             "plan.entries[0].path: contains a NUL character"),
    "06_entry_over_plan_copy": (set_path(0, "plan.msgpack"),
                                "would overwrite the sweep directory's own files"),
    "07_nested_entries": (nest_entries, "plan.entries[1].path: 'ppo_mlp/x/inner' lies inside"),
    "08_duplicate_entries": (duplicate_entries, "plan.entries: two entries share a path"),
    "09_sample_structure_out_of_range": (
        lambda p: p["samples"][0].update(structure=7),
        "plan.samples[0].structure: 7 is out of range"),
    "10_sub_batch_structure_out_of_range": (
        lambda p: p["entries"][0]["sub_batches"][0].update(structure=99),
        "plan.entries[0].sub_batches[0]: has no samples or an unknown structure"),
    "11_string_for_a_number": (edit_sample_value,
                               "plan.samples[0].values.actor_lr: expected a number"),
    "12_unknown_algorithm": (lambda p: p["settings"].update(algorithm="a2c"),
                             "plan.settings.algorithm: unknown algorithm 'a2c'"),
    "13_unknown_env": (lambda p: p["settings"].update(env="gymnax.breakout"),
                       "plan.settings.env: unknown env 'gymnax.breakout'"),
    "14_role_flipped": (flip_role, "plan.hyperparams.num_envs: says int scalar"),
    "15_sample_index": (lambda p: p["samples"][1].update(index=0),
                        "plan.samples[1].index: is 0, expected 1"),
    "16_width_too_small": (lambda p: p["entries"][0]["sub_batches"][0].update(width=1),
                           "plan.entries[0].sub_batches[0].width: 1 cannot hold"),
    "17_entry_sample_out_of_range": (lambda p: p["entries"][0]["samples"].append(4096),
                                     "plan.entries[0].samples: must list samples that exist"),
    "18_illegal_constant": (lambda p: p["constants"].update(gamma=2.0),
                            "plan.constants.gamma: must be <= 1, got 2"),
    "19_structure_mismatch": (structure_mismatch,
                              "plan.samples[0].structure: structure 0's values differ"),
    "20_negative_seed": (lambda p: p["samples"][0].update(seed=-1),
                         "plan.samples[0].seed: must be in [0, 2**32)"),
    "21_num_samples_mismatch": (lambda p: p["settings"].update(num_samples=9),
                                "plan.settings.num_samples: is 9 but the plan has 8 samples"),
    "22_huge_replicates": (lambda p: p["settings"].update(seeds_per_sample=10**9),
                           "plan.settings.seeds_per_sample: must be in [1, 1024]"),
    "23_cnn_torso_on_flat_env": (cnn_on_flat_env,
                                 "plan.constants.network.torso: 'cnn' needs image observations"),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    expected = {}
    for name, (edit, message) in CASES.items():
        plan = base_plan()
        edit(plan)
        (OUT / f"{name}.msgpack").write_bytes(encode(plan))
        expected[f"{name}.msgpack"] = message
    # not re-encoded: damage the id check and the decoder must catch
    good = BASE.read_bytes()
    (OUT / "30_truncated.msgpack").write_bytes(good[: len(good) // 2])
    expected["30_truncated.msgpack"] = "not a hyperlax plan file (corrupt or truncated"
    edited = bytearray(good)
    at = edited.find(b"quickstart")
    edited[at] = ord("Q")  # the name, by hand, without recomputing the id
    (OUT / "31_hand_edited.msgpack").write_bytes(bytes(edited))
    expected["31_hand_edited.msgpack"] = "plan id does not match its contents"
    (OUT / "32_a_manifest.msgpack").write_bytes(b"[sweep]\nname = 'a manifest'\n")
    expected["32_a_manifest.msgpack"] = "this is a sweep manifest (TOML), not a plan file"
    (OUT / "33_random_bytes.msgpack").write_bytes(bytes(range(7, 200, 3)))
    expected["33_random_bytes.msgpack"] = "not a hyperlax plan file"
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} bad plans to {OUT}")


if __name__ == "__main__":
    main()
