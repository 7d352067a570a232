"""Samples that are enumerated or given rather than drawn: grid sampling, listed samples (inline
or from a CSV/JSON file next to the manifest), and a manifest without a space (one
configuration). All go through the same validation as sampled values."""

from __future__ import annotations

import itertools
import json

from click.testing import CliRunner

from hyperlax.cli.main import main
from hyperlax.plan.read import read_plan

HEAD = """\
[sweep]
name = "m"
recipe = "ppo_mlp_fixed_net"
recipe_space = "include"
env = "gymnax.pendulum"
"""


def plan(tmp_path, text, name="sweep.toml"):
    manifest = tmp_path / name
    manifest.write_text(text)
    out = tmp_path / "plan.msgpack"
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(main, ["plan", str(manifest), "-o", str(out)])
    return result, (read_plan(out)[0] if result.exit_code == 0 else None)


def test_grid_enumerates_every_combination_once(tmp_path):
    result, p = plan(tmp_path, HEAD + """sampling = "grid"
[space]
num_envs = { dist = "categorical", values = [4, 8] }
update_epochs = { dist = "int_uniform", low = 1, high = 3 }
actor_lr = { dist = "quantized", low = 0.001, high = 0.003, step = 0.001 }
""")
    assert result.exit_code == 0, result.output
    combos = [(s.values["actor_lr"], s.values["num_envs"], s.values["update_epochs"])
              for s in p.samples]
    expected = list(itertools.product([0.001, 0.002, 0.003], [4, 8], [1, 2, 3]))
    assert combos == expected and p.settings.num_samples == 18
    # the recipe's continuous space is not part of a grid: its defaults apply
    assert p.sampled == ["actor_lr", "num_envs", "update_epochs"]
    assert p.constants["gamma"] == 0.99


def test_grid_refuses_a_continuous_axis_and_a_wrong_count(tmp_path):
    result, _ = plan(tmp_path, HEAD + """sampling = "grid"
[space]
gamma = { dist = "uniform", low = 0.9, high = 0.99 }
""")
    assert result.exit_code == 2
    assert "space.gamma: grid sampling enumerates values, but gamma (in [space]) is uniform" \
        in result.output
    result, _ = plan(tmp_path, HEAD + """sampling = "grid"
num_samples = 5
[space]
num_envs = { dist = "categorical", values = [4, 8] }
""")
    assert result.exit_code == 2 and "sweep.num_samples: is 5, but must be 2" in result.output


def test_inline_samples_run_as_given(tmp_path):
    result, p = plan(tmp_path, HEAD + """
[fixed]
gamma = 0.95

[[samples]]
actor_lr = 0.001
num_envs = 4

[[samples]]
actor_lr = 0.0003
num_envs = 8
""")
    assert result.exit_code == 0, result.output
    assert p.settings.sampling == "listed" and p.settings.num_samples == 2
    assert [s.values for s in p.samples] == [{"actor_lr": 0.001, "num_envs": 4},
                                             {"actor_lr": 0.0003, "num_envs": 8}]
    assert all(s.unit == [] for s in p.samples)
    assert p.constants["gamma"] == 0.95 and "clip_eps" in p.constants  # no recipe space
    rows = {r.name: r for r in p.hyperparams}
    assert rows["actor_lr"].source == "samples" and rows["gamma"].source == "fixed"


def test_a_bad_row_gets_a_located_error(tmp_path):
    result, _ = plan(tmp_path, HEAD + """
[[samples]]
actor_lr = 0.001

[[samples]]
actor_lr = -1.0
""")
    assert result.exit_code == 2
    assert "samples row 2.actor_lr: must be > 0, got -1" in result.output


def test_samples_file_from_generate_hp_samples_and_check_notices_a_change(tmp_path):
    csv_text = CliRunner().invoke(main, ["generate-hp-samples", "--algo-and-network-config",
                                         "ppo_mlp_fixed_net", "--num-samples", "4",
                                         "--output-file", "-"])
    assert csv_text.exit_code == 0, csv_text.output
    (tmp_path / "picked.csv").write_text(csv_text.output)
    result, p = plan(tmp_path, HEAD + 'samples_file = "picked.csv"\n')
    assert result.exit_code == 0, result.output
    assert p.settings.num_samples == 4 and p.samples_file_sha256
    header = csv_text.output.splitlines()[0].split(",")
    first = dict(zip(header, csv_text.output.splitlines()[1].split(",")))
    assert p.samples[0].values["actor_lr"] == float(first["actor_lr"])
    # change one value of the file: the checked-in plan is stale
    (tmp_path / "picked.csv").write_text(csv_text.output.replace(first["actor_lr"], "0.005", 1))
    check = CliRunner().invoke(main, ["check", str(tmp_path / "sweep.toml"),
                                      str(tmp_path / "plan.msgpack")])
    assert check.exit_code == 1 and "the results differ" in check.output


def test_samples_file_json_and_its_errors(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps([{"num_envs": 4}, {"num_envs": 0}]))
    result, _ = plan(tmp_path, HEAD + 'samples_file = "s.json"\n')
    assert result.exit_code == 2
    assert "samples_file s.json row 2.num_envs: must be >= 1, got 0" in result.output
    result, _ = plan(tmp_path, HEAD + 'samples_file = "missing.csv"\n')
    assert result.exit_code == 2 and "sweep.samples_file: cannot read 'missing.csv'" in \
        result.output


def test_an_empty_space_is_one_configuration(tmp_path):
    """With recipe_space = "exclude" (or none: before 0.2 an empty [space] meant the same)."""
    result, p = plan(tmp_path, HEAD.replace('recipe_space = "include"\n', "")
                     + "\n[fixed]\nactor_lr = 0.001\n\n[space]\n")
    assert result.exit_code == 0, result.output
    assert p.settings.num_samples == 1 and p.sampled == []
    result, p = plan(tmp_path, HEAD.replace('"include"', '"exclude"')
                     + "\n[fixed]\nactor_lr = 0.001\n\n[space]\n")
    assert result.exit_code == 0, result.output
    assert p.settings.num_samples == 1 and p.sampled == []
    assert p.constants["actor_lr"] == 0.001 and p.constants["gamma"] == 0.99
    result, _ = plan(tmp_path, HEAD.replace('"include"', '"exclude"') + "num_samples = 3\n[space]\n")
    assert result.exit_code == 2 and "is 3, but must be 1" in result.output
