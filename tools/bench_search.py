"""Benchmark adaptive search (issues 16 and 25): plain Sobol, successive halving, TPE rounds and
population-based training, on one fixed budget of env steps, over several manifest seeds and
environments.

All four spend the same budget: N full trainings' worth of env steps on the same space.
Sobol plans N configurations at once (one vmapped batch); TPE asks N in rounds of K (the
first round is random, the model is used from the second on); successive halving draws as
many Sobol configurations as the budget allows when most of them stop early (rungs at
1, 3 and 8 of 8 evaluations, the top third going on from the rung before's carries), so
it tries about 3.6 N configurations (116 for N = 32), and hands over the best of those that
trained the full budget. PBT trains a population of N Sobol configurations the full budget in
one vmapped batch (Sobol's program), and every ``--pbt-interval`` evaluations the bottom quarter
takes the training state of a member of the top quarter and a perturbed copy of its values
(Ray Tune's defaults; every name of the space explored); it hands over the best final member,
whose values changed during training: its recheck trains the values it ended with, fixed, from
scratch (what a user who wants one configuration would take; PBT's own product, a schedule
with its trained weights, is not rechecked). Per (env, seed, method) it reports the best
final return found (mean over the trial's replicates, as `report` ranks), the median over the
trials that trained the full budget (where a method spends its budget; for halving: over its
last rung's survivors, so it is not comparable) and, because the maximum of N noisy evaluations flatters
whoever evaluated the luckiest run, the best configuration trained again with R fresh seeds
("recheck"): the quality of what each method would hand to the user. From the Sobol runs'
full curves it also prints how well each evaluation point ranks the configurations as the
final one does (Spearman's rho), which is what successive halving's early rungs rely on.

    python tools/bench_search.py [--envs cartpole pendulum] [--seeds 0 1 2] [--trials 32]
                                 [--per-round 8] [--recheck 4] [--work DIR]
                                 [--methods sobol halving tpe pbt] [--rungs 1 3 8] [--eta 3]
                                 [--pbt-interval 2] [--timesteps N]

Everything runs in this process (JAX imported once); each run has its own directory under
--work, and a persistent compilation cache there, so each program compiles once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """\
algorithm = "ppo"
description = "PPO with small fixed networks for the search benchmark"

[settings]
total_timesteps = 65_536
num_evaluations = 8
eval_episodes = 8

[defaults]
num_envs = 8
rollout_length = 32
update_epochs = 2
num_minibatches = 2
"network.actor.layer_sizes" = [32, 32]
"network.critic.layer_sizes" = [32, 32]
"network.activation" = "tanh"

[space]
actor_lr = { dist = "log_uniform", low = 1e-5, high = 1e-2 }
critic_lr = { dist = "log_uniform", low = 1e-5, high = 1e-2 }
gamma = { dist = "uniform", low = 0.9, high = 0.999 }
gae_lambda = { dist = "uniform", low = 0.8, high = 0.99 }
clip_eps = { dist = "uniform", low = 0.1, high = 0.3 }
ent_coef = { dist = "uniform", low = 0.0, high = 0.02 }
"""

ENVS = {"cartpole": ("gymnax.cartpole", 16_384), "pendulum": ("gymnax.pendulum", 65_536)}
METHODS = ("sobol", "halving", "tpe", "pbt")
EVALUATIONS = 8                 # the recipe's num_evaluations
RUNGS = (1, 3, EVALUATIONS)     # successive halving's rungs, in evaluations (default)
ETA = 3
PBT_INTERVAL = 2                # evaluations between PBT's exploit/explore steps (default)
PBT_EXPLORE = ("actor_lr", "critic_lr", "gamma", "gae_lambda", "clip_eps", "ent_coef")  # all


def halving_samples(trials: int, rungs: tuple[int, ...] = RUNGS, eta: int = ETA) -> int:
    """The most samples successive halving can start with and spend at most ``trials`` full
    trainings of env steps (rung r trains its samples from the rung before's budget on)."""
    from hyperlax.plan.format import rung_sizes

    def cost(n: int) -> float:
        sizes, before, total = rung_sizes(n, eta, len(rungs)), 0, 0.0
        for size, evaluations in zip(sizes, rungs):
            total += size * (evaluations - before) / EVALUATIONS
            before = evaluations
        return total

    n = trials
    while cost(n + 1) <= trials:
        n += 1
    return n


def sweep_table(name: str, env: str, seed: int, steps: int, batch: int) -> str:
    # recipe_space = "include": the recipe's space is what is sampled (since hyperlax 0.2 a
    # manifest without [space] must say so)
    return (f'[sweep]\nname = "{name}"\nrecipe = "bench.toml"\nrecipe_space = "include"\n'
            f'env = "{env}"\nseed = {seed}\n'
            f"batch_size = {batch}\ntotal_timesteps = {steps}\n")


def run_sobol(work: Path, env: str, seed: int, steps: int, trials: int) -> dict:
    """N Sobol configurations, each trained the full budget, in one vmapped batch; also how
    well an early evaluation ranks them as the final one does (what halving relies on)."""
    row = _run_sweep(work, "sobol", seed, sweep_table("sobol", env, seed, steps, trials)
                     + f'num_samples = {trials}\nsampling = "qmc_sobol"\n')
    row["rank_agreement"] = rank_agreement(work / f"sobol-{seed}")
    return row


def rank_agreement(root: Path) -> list[float]:
    """Per evaluation point k, Spearman's rank correlation between the configurations'
    returns at k and at the end (means over replicates): 1 means an early rung would keep
    exactly the configurations that end best."""
    import numpy as np
    from scipy.stats import spearmanr

    curves = []
    for path in sorted(root.rglob("curves.npz")):
        with np.load(path) as npz:
            curves += list(np.asarray(npz["returns"]).mean(axis=1))
    table = np.array(curves)
    return [float(spearmanr(table[:, k], table[:, -1]).statistic)
            for k in range(table.shape[1] - 1)]


def run_halving(work: Path, env: str, seed: int, steps: int, trials: int,
                rungs: tuple[int, ...] = RUNGS, eta: int = ETA) -> dict:
    """As many Sobol configurations as successive halving can afford on N full trainings,
    in batches of N; the best is the best of the last rung (``report``'s ranking)."""
    method = "halving" if (rungs, eta) == (RUNGS, ETA) else \
        f"halving-{'-'.join(map(str, rungs))}-eta{eta}"
    listed = ", ".join(map(str, rungs))
    return _run_sweep(work, method, seed, sweep_table(method, env, seed, steps, trials)
                      + f"num_samples = {halving_samples(trials, rungs, eta)}\n"
                        f'sampling = "qmc_sobol"\nrungs = [{listed}]\neta = {eta}\n')


def _run_sweep(work: Path, method: str, seed: int, manifest_text: str) -> dict:
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.plan.format import encode_plan, plan_id
    from hyperlax.report.results import collect, ranked

    manifest = work / f"{method}-{seed}.toml"
    manifest.write_text(manifest_text)
    plan, _ = compile_manifest(manifest)
    plan_file = work / f"{method}-{seed}.msgpack"
    plan_file.write_bytes(encode_plan(plan))
    root = work / f"{method}-{seed}"
    start = time.monotonic()
    _exec(plan_file, root, work)
    wall = time.monotonic() - start
    collected = collect(plan, plan_id(plan), root, str(plan_file), root)
    order = ranked(collected, "final")
    best = order[0]
    full = [s for s in order if s.rung == best.rung]  # trained the full budget
    return {"method": method, "best": best.score("final"),
            "values": plan.samples[best.index].values,
            "best_dir": str(root / best.entry), "best_index": best.index,
            "median": statistics.median(s.score("final") for s in full),
            "configurations": len(plan.samples), "wall": wall,
            # a sample's last result counts all its training (a rung continues the one before)
            "steps": sum(s.summary["steps"] for s in collected.samples if s.summary)}


def pbt_manifest(name: str, env: str, seed: int, steps: int, trials: int,
                 interval: int = PBT_INTERVAL) -> str:
    """PBT's manifest: N Sobol configurations in one batch, every name of the space explored."""
    explore = ", ".join(f'"{n}"' for n in PBT_EXPLORE)
    return (sweep_table(name, env, seed, steps, trials)
            + f'num_samples = {trials}\nsampling = "qmc_sobol"\n'
              f"\n[pbt]\ninterval = {interval}\nexplore = [{explore}]\n")


def run_pbt(work: Path, env: str, seed: int, steps: int, trials: int,
            interval: int = PBT_INTERVAL) -> dict:
    """A population of N Sobol configurations, each trained the full budget in one vmapped
    batch, with exploit and explore every ``interval`` evaluations. Its best is the best final
    member (``report``'s ranking); the values it hands over are those that member trained with
    in the last interval (its entry's samples.json), not the ones it started with."""
    method = "pbt" if interval == PBT_INTERVAL else f"pbt-interval{interval}"
    row = _run_sweep(work, method, seed, pbt_manifest(method, env, seed, steps, trials,
                                                      interval))
    members = json.loads((Path(row["best_dir"]) / "samples.json").read_text())
    row["values"] = next(m["values"] for m in members if m["sample"] == row["best_index"])
    return row


def run_tpe(work: Path, env: str, seed: int, steps: int, trials: int, per_round: int) -> dict:
    from hyperlax.search.run import SearchRequest, run_search

    text = (sweep_table("tpe", env, seed, steps, per_round)
            + f'\n[search]\nmethod = "tpe"\ntrials = {trials}\n'
              f'trials_per_round = {per_round}\nobjectives = [{{ metric = "final_return" }}]\n')
    root = work / f"tpe-{seed}"
    start = time.monotonic()
    status = run_search(SearchRequest(manifest_text=text, manifest_name=f"tpe-{seed}.toml",
                                      manifest_dir=work, resume="", output_root=root,
                                      compile_cache=work / "cache", quiet=True),
                        lambda *a, **k: None)
    wall = time.monotonic() - start
    assert status == 0, status
    record = json.loads((root / "search.json").read_text())
    trials_ = {t["number"]: t for r in record["rounds"] for t in r["trials"]}
    told = [t for r in record["rounds"] for t in r["told"] if t["state"] == "complete"]
    best = max(told, key=lambda t: (t["values"][0], -t["number"]))
    by_round = [max((t["values"][0] for t in r["told"] if t["state"] == "complete"),
                    default=None) for r in record["rounds"]]
    return {"best": best["values"][0], "values": trials_[best["number"]]["values"],
            "median": statistics.median(t["values"][0] for t in told),
            "configurations": len(told), "wall": wall,
            "steps": sum(s["steps"] for summary in root.rglob("summary.json")
                         for s in json.loads(summary.read_text())["samples"]),
            "by_round": by_round}


def recheck(work: Path, tag: str, env: str, values: dict, steps: int, replicates: int) -> float:
    """The configuration trained again with ``replicates`` fresh seeds: its mean final return."""
    from hyperlax.compiler.lower import compile_manifest
    from hyperlax.plan.format import encode_plan, plan_id
    from hyperlax.report.results import collect
    from hyperlax.manifest.toml_inline import toml_key, toml_value

    manifest = work / f"recheck-{tag}.toml"
    rows = "\n".join(f"{toml_key(n)} = {toml_value(v)}" for n, v in values.items())
    manifest.write_text(sweep_table("recheck", env, 10_000, steps, 1)
                        + f"seeds_per_sample = {replicates}\n\n[[samples]]\n{rows}\n")
    plan, _ = compile_manifest(manifest)
    plan_file = work / f"recheck-{tag}.msgpack"
    plan_file.write_bytes(encode_plan(plan))
    root = work / f"recheck-{tag}"
    _exec(plan_file, root, work)
    return collect(plan, plan_id(plan), root, str(plan_file), root).samples[0].score("final")


def _exec(plan_file: Path, root: Path, work: Path) -> None:
    from hyperlax.exec.run_plan import ExecRequest, run_exec

    status = run_exec(ExecRequest(plan_file=plan_file, output_root=root,
                                  compile_cache=work / "cache", quiet=True),
                      lambda *a, **k: None)
    assert status == 0, status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--recheck", type=int, default=4, help="seeds of the recheck; 0: none")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--rungs", nargs="+", type=int, default=list(RUNGS),
                        help=f"halving's rungs in evaluations (of {EVALUATIONS})")
    parser.add_argument("--eta", type=int, default=ETA, help="halving keeps the top 1/eta")
    parser.add_argument("--pbt-interval", type=int, default=PBT_INTERVAL,
                        help=f"PBT's evaluations between exploit/explore steps (of {EVALUATIONS})")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="env steps of one full training in every env, instead of ENVS's "
                             "(a smaller budget for a quick, less telling run)")
    args = parser.parse_args(argv)
    work_root = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    rows = []
    for env_name in args.envs:
        env, steps = ENVS[env_name]
        steps = args.timesteps or steps
        for seed in args.seeds:
            work = work_root / env_name
            work.mkdir(parents=True, exist_ok=True)
            (work / "bench.toml").write_text(RECIPE)
            for method in args.methods:
                if method == "tpe":
                    row = run_tpe(work, env, seed, steps, args.trials, args.per_round)
                elif method == "pbt":
                    row = run_pbt(work, env, seed, steps, args.trials, args.pbt_interval)
                else:
                    row = run_sobol(work, env, seed, steps, args.trials) if method == "sobol" \
                        else run_halving(work, env, seed, steps, args.trials,
                                         tuple(args.rungs), args.eta)
                name = row.setdefault("method", method)  # halving's names its rungs if not default
                if args.recheck:
                    row["recheck"] = recheck(work, f"{name}-{seed}", env, row["values"],
                                             steps, args.recheck)
                row.update(env=env_name, seed=seed)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items()
                                  if k not in ("values", "best_dir")}),
                      file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\na budget of {args.trials} full trainings per run; TPE in rounds of "
          f"{args.per_round}; PBT every {args.pbt_interval} evaluations; halving starts "
          f"{halving_samples(args.trials, tuple(args.rungs), args.eta)} configurations, rungs "
          f"{args.rungs} of {EVALUATIONS} evaluations, eta {args.eta}; recheck: the best "
          f"configuration trained again with {args.recheck} new seeds\n")
    print("| env | seed | method | configurations | env steps | best final return | median | "
          "recheck | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        recheck_text = f"{r['recheck']:.1f}" if "recheck" in r else "-"
        print(f"| {r['env']} | {r['seed']} | {r['method']} | {r['configurations']} | "
              f"{r['steps']:,} | {r['best']:.1f} | {r['median']:.1f} | {recheck_text} | "
              f"{r['wall']:.0f} |")
    print("\nmeans over seeds:")
    for env_name in args.envs:
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["env"] == env_name and r["method"] == method]
            rechecks = [r["recheck"] for r in mine if "recheck" in r]
            print(f"  {env_name} {method}: best {statistics.mean(r['best'] for r in mine):.1f}"
                  f", median {statistics.mean(r['median'] for r in mine):.1f}"
                  + (f", recheck {statistics.mean(rechecks):.1f}" if rechecks else ""))
    agreement = [r for r in rows if "rank_agreement" in r]
    if agreement:
        print("\nhow well evaluation k ranks Sobol's configurations as the final one does "
              "(Spearman's rho, mean over seeds):")
        for env_name in args.envs:
            mine = [r["rank_agreement"] for r in agreement if r["env"] == env_name]
            if mine:
                means = [statistics.mean(col) for col in zip(*mine)]
                print(f"  {env_name}: " + ", ".join(f"{k + 1}: {m:.2f}"
                                                    for k, m in enumerate(means)))
    print(f"\nwork directory: {work_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
