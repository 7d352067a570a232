"""Our recipe defaults per environment against published numbers, and the PPO Pendulum collapse.

    python tools/bench_defaults.py                      # every case, 5 seeds, a Markdown table
    python tools/bench_defaults.py --case ppo-cartpole  # one case (repeat --case for more)
    python tools/bench_defaults.py --case pqn-cartpole  # PQN at the paper's CartPole budget
    python tools/bench_defaults.py --shared             # the recipe without its env tables too
    python tools/bench_defaults.py --collapse --seeds 10 --steps 1000000

Each case plans a one-configuration manifest (an empty [space]) of a built-in recipe in an env,
so the configuration is exactly what the recipe's defaults for that env give (what
`run-single-hp` trains), trains it with `--seeds` replicates in one vmapped call at the stated
budget, and reports the mean ± std over seeds of the final return (the last evaluation point)
and of the best return (the best evaluation point of each seed's curve). Each evaluation is the
mean return of `eval_episodes` deterministic episodes. The published number comes from the
source the recipe cites for that env's defaults (see the recipes' comments); their protocols
differ (CleanRL: mean episodic return of training episodes at the end; rl-baselines3-zoo: mean
of evaluation episodes of the final policy), so compare orders of magnitude, not decimals.

`--collapse` trains PPO on Pendulum at rejax's tuned settings (keraJLi/rejax,
configs/gymnax/pendulum.yaml; rejax clips the value loss) with the same seeds under three
variants that differ in scalars only (one program): as matched (no value clipping, constant
learning rate), with value-loss clipping, and with linear learning-rate decay. It prints each
seed's returns and value losses along training.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Case(NamedTuple):
    name: str
    recipe: str
    env: str
    total_timesteps: int
    published: str   # the number, as its source reports it
    source: str
    evaluations: int = 20  # evaluation points: each a whole number of updates


CASES = [
    Case("ppo-cartpole", "ppo_mlp_small", "gymnax.cartpole", 500_000, "492.40 ± 13.05",
         "CleanRL ppo.py, 500k steps"),
    Case("ppo-acrobot", "ppo_mlp_small", "gymnax.acrobot", 500_000, "-89.93 ± 6.34",
         "CleanRL ppo.py, 500k steps"),
    # 4,096 steps per update: 12 points of 2 updates train 98,304 of the 100k steps
    Case("ppo-pendulum", "ppo_mlp_small", "gymnax.pendulum", 100_000, "-172.2 ± 104.2",
         "rl-baselines3-zoo PPO (gSDE), 100k steps", evaluations=12),
    Case("dqn-cartpole", "dqn_mlp_small", "gymnax.cartpole", 500_000, "488.69 ± 16.11",
         "CleanRL dqn.py, 500k steps"),
    Case("sac-pendulum", "sac_mlp_small", "gymnax.pendulum", 20_000, "-157.0 ± 88.7",
         "rl-baselines3-zoo SAC, 20k steps"),
    # PQN at the paper's budgets (purejaxql's pqn_cartpole.yaml: 5e5 steps; pqn_minatar.yaml:
    # 1e7). No published number is transcribed yet: compare with the paper's curves.
    Case("pqn-cartpole", "pqn_mlp", "gymnax.cartpole", 500_000, "not transcribed",
         "Gallici et al. 2024 (purejaxql pqn_cartpole.yaml), 500k steps"),
    Case("pqn-breakout", "pqn_minatar", "gymnax.breakout_minatar", 10_000_000,
         "not transcribed", "Gallici et al. 2024 (purejaxql pqn_minatar.yaml), 10M steps"),
]

MANIFEST = """\
[sweep]
name = "bench-defaults"
recipe = "{recipe}"
env = "{env}"
seed = 0
total_timesteps = {steps}
num_evaluations = {evaluations}
eval_episodes = {episodes}

[space]
"""


def configuration(case: Case, evaluations: int, episodes: int, shared_only: bool):
    """(config, budget) of the recipe's defaults for the case's env: planned, so exactly what
    the compiler gives. ``shared_only``: the recipe without its env tables (the defaults every
    env got before they existed)."""
    from hyperlax.compiler import compile_manifest
    from hyperlax.manifest.recipes import split_defaults

    with tempfile.TemporaryDirectory() as tmp:
        recipe = case.recipe
        if shared_only:
            import tomli_w

            from hyperlax.manifest.format import parse_toml
            from hyperlax.manifest.recipes import load_recipe_text
            raw = parse_toml(load_recipe_text(recipe, Path(tmp), "bench")[1], recipe)
            raw["defaults"] = split_defaults(raw.get("defaults", {}))[0]
            (Path(tmp) / "shared.toml").write_text(tomli_w.dumps(raw))
            recipe = "shared.toml"
        path = Path(tmp) / "sweep.toml"
        path.write_text(MANIFEST.format(recipe=recipe, env=case.env, steps=case.total_timesteps,
                                        evaluations=evaluations, episodes=episodes))
        plan, _ = compile_manifest(path)
    return plan.sample_config(0), plan.settings.budget


def train(algorithm: str, env: str, budget, configs: list, seeds: int):
    """Metrics [len(configs), seeds, num_evaluations] as numpy, and the wall seconds."""
    import jax

    from hyperlax.train.batched import batched_program, replicate_keys, stack

    start = time.perf_counter()
    metrics = batched_program(algorithm, env, budget).run(
        stack(configs), replicate_keys([0] * len(configs), seeds))
    metrics = jax.tree.map(np.asarray, metrics)
    return metrics, time.perf_counter() - start


def mean_std(x: np.ndarray) -> str:
    return f"{x.mean():.1f} ± {x.std():.1f}"


def run_case(case: Case, seeds: int, evaluations: int | None, episodes: int,
             shared_only: bool) -> dict:
    config, budget = configuration(case, evaluations or case.evaluations, episodes,
                                   shared_only)
    metrics, seconds = train(type(config).algorithm, case.env, budget, [config], seeds)
    returns = metrics.eval_returns[0]                       # [seeds, evaluations]
    return {"case": case.name, "recipe": case.recipe, "env": case.env,
            "defaults": "shared" if shared_only else "env", "seeds": seeds,
            "steps": int(metrics.eval_steps[0, 0, -1]), "seconds": round(seconds, 1),
            "final": mean_std(returns[:, -1]), "best": mean_std(returns.max(axis=1)),
            "finite": bool(metrics.finite.all()), "published": case.published,
            "source": case.source, "returns": returns.round(2).tolist()}


def table(rows: list[dict]) -> str:
    lines = ["| algorithm | env | recipe defaults | env steps | final return | best return "
             "| published | source | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        algorithm = r["case"].split("-")[0].upper()
        lines.append(f"| {algorithm} | {r['env']} | {r['recipe']} ({r['defaults']}) | "
                     f"{r['steps']:,} | {r['final']} | {r['best']} | {r['published']} | "
                     f"{r['source']} | {r['seconds']} |")
    return "\n".join(lines)


# --- the PPO Pendulum collapse -------------------------------------------------------------------

# rejax's tuned PPO Pendulum-v1 (configs/gymnax/pendulum.yaml), in hyperlax's names.
REJAX_PENDULUM = dict(num_envs=100, rollout_length=100, update_epochs=10, num_minibatches=10,
                      actor_lr=1e-3, critic_lr=1e-3, max_grad_norm=10.0, gamma=0.995,
                      gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, vf_coef=0.5,
                      normalize_observations=True, activation="silu",
                      actor_layer_sizes=[64, 64], critic_layer_sizes=[64, 64])
VARIANTS = {"as matched": {}, "value clipping": dict(clip_value_loss=True),
            "lr decay": dict(decay_learning_rates=True)}


def collapse(seeds: int, steps: int, evaluations: int) -> dict:
    from hyperlax.hyperparams import PPOConfig
    from hyperlax.hyperparams.budget import Budget

    configs = [PPOConfig(**REJAX_PENDULUM, **v) for v in VARIANTS.values()]
    budget = Budget(total_timesteps=steps, num_evaluations=evaluations, eval_episodes=16)
    metrics, seconds = train("ppo", "gymnax.pendulum", budget, configs, seeds)
    out = {"seconds": round(seconds, 1), "steps": metrics.eval_steps[0, 0].tolist(),
           "variants": {}}
    for i, name in enumerate(VARIANTS):
        returns, value_loss = metrics.eval_returns[i], metrics.losses["value_loss"][i]
        drop = returns.max(axis=1) - returns[:, -1]
        out["variants"][name] = {
            "final": mean_std(returns[:, -1]), "best": mean_std(returns.max(axis=1)),
            # a collapse: the end of training lost more than 300 of the best return
            "collapsed": int((drop > 300).sum()),
            "last_quarter_value_loss_max": [
                round(float(x), 1)
                for x in value_loss[:, -max(evaluations // 4, 1):].max(axis=1)],
            "returns": returns.round(1).tolist(), "value_loss": value_loss.round(2).tolist()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=[c.name for c in CASES])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evaluations", type=int,
                        help="evaluation points (default: the case's, 20; --collapse: 50)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--shared", action="store_true",
                        help="also train each case with the recipe's shared defaults only")
    parser.add_argument("--collapse", action="store_true")
    parser.add_argument("--steps", type=int, default=1_000_000, help="--collapse's budget")
    parser.add_argument("--json", type=Path, help="write every result (curves included) here")
    args = parser.parse_args()

    if args.collapse:
        result = collapse(args.seeds, args.steps, args.evaluations or 50)
        for name, v in result["variants"].items():
            print(f"{name:15s} final {v['final']:>16s}  best {v['best']:>16s}  "
                  f"collapsed (final < best - 300) {v['collapsed']}/{args.seeds}  value loss, "
                  f"last quarter max per seed: {v['last_quarter_value_loss_max']}")
        print(f"({result['seconds']} s, {args.seeds} seeds, {args.steps:,} env steps)")
        rows: object = result
    else:
        rows = []
        for case in [c for c in CASES if not args.case or c.name in args.case]:
            for shared_only in ([False, True] if args.shared else [False]):
                row = run_case(case, args.seeds, args.evaluations, args.episodes, shared_only)
                print(f"{row['case']} ({row['defaults']}): final {row['final']}, best "
                      f"{row['best']}, {row['seconds']} s", file=sys.stderr, flush=True)
                rows.append(row)
        print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
