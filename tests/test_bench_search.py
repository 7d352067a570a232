"""tools/bench_search.py's manifests plan: PBT's population is the same N Sobol configurations
as the plain Sobol run (same values, one batch), with every name of the recipe's space explored,
on the same budget; neither manifest is refused (since hyperlax 0.2 one without [space] must say
recipe_space)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from bench_search import (ENVS, PBT_EXPLORE, RECIPE, pbt_manifest,  # noqa: E402
                          sweep_table)

from hyperlax.compiler import compile_manifest  # noqa: E402


def test_pbt_population_is_the_sobol_configurations_on_the_same_budget(tmp_path):
    (tmp_path / "bench.toml").write_text(RECIPE)
    env, steps = ENVS["cartpole"]
    (tmp_path / "pbt.toml").write_text(pbt_manifest("pbt", env, 1, steps, 8))
    (tmp_path / "sobol.toml").write_text(sweep_table("sobol", env, 1, steps, 8)
                                         + 'num_samples = 8\nsampling = "qmc_sobol"\n')
    pbt, _ = compile_manifest(tmp_path / "pbt.toml")
    sobol, _ = compile_manifest(tmp_path / "sobol.toml")
    assert pbt.pbt is not None and sorted(pbt.pbt.explore) == sorted(PBT_EXPLORE)
    assert [s.values for s in pbt.samples] == [s.values for s in sobol.samples]
    assert len(pbt.samples) == 8 and len(pbt.entries) == len(sobol.entries) == 1
    assert pbt.settings.total_timesteps == sobol.settings.total_timesteps == steps
