"""tools/bench_pbt.py compares a PBT sweep with "the same sweep without PBT": the manifest it
derives by removing ``[pbt]`` must plan the same samples (values, seeds, structures) and the
same programs, and nothing but the intervals and their decisions may differ."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from bench_pbt import CASES, set_sweep_keys, without_pbt  # noqa: E402

from hyperlax.compiler import compile_manifest  # noqa: E402


@pytest.mark.parametrize("name", sorted(CASES))
def test_without_pbt_plans_the_same_sweep(tmp_path, name):
    text = CASES[name].manifest(timesteps=None)
    (tmp_path / "pbt.toml").write_text(text)
    (tmp_path / "plain.toml").write_text(without_pbt(text))
    pbt, _ = compile_manifest(tmp_path / "pbt.toml")
    plain, _ = compile_manifest(tmp_path / "plain.toml")
    assert pbt.pbt is not None and plain.pbt is None and plain.halving is None
    assert [(s.values, s.seed, s.structure) for s in pbt.samples] == \
        [(s.values, s.seed, s.structure) for s in plain.samples]
    assert [e.sub_batches for e in pbt.entries] == [e.sub_batches for e in plain.entries]
    assert pbt.settings.num_evaluations == plain.settings.num_evaluations


def test_without_pbt_keeps_tables_after_it_and_refuses_a_manifest_without_one():
    text = ('[sweep]\nname = "x"\n\n[pbt]\ninterval = 2\nexplore = [\n  "a",\n]\n'
            '# about space\n[space]\na = { dist = "uniform", low = 0, high = 1 }\n')
    assert without_pbt(text) == ('[sweep]\nname = "x"\n\n# about space\n[space]\n'
                                 'a = { dist = "uniform", low = 0, high = 1 }\n')
    with pytest.raises(ValueError, match="no \\[pbt\\]"):
        without_pbt('[sweep]\nname = "x"\n')


def test_set_sweep_keys_replaces_and_adds_within_sweep_only():
    text = '[sweep]\nname = "x"\nseed = 0\n\n[fixed]\nseed = 3\n'
    out = set_sweep_keys(text, {"seed": 7, "num_samples": 16})
    assert out == '[sweep]\nname = "x"\nseed = 7\nnum_samples = 16\n\n[fixed]\nseed = 3\n'
