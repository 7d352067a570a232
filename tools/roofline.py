"""How close to this machine's limit is PPO training? (issue 13, item 5)

For the original system's workload shape (PPO's declared defaults, as ``ppo_mlp_small`` has
them, on ``gymnax.pendulum``: 8 envs x 64 steps, 4 epochs x 4 minibatches, [64, 64] tanh actor
and critic, 16 samples x 8 replicates), at a small budget:

1. Runs the real program (exec's: ``batched_program(...).run``) and measures env steps/s.
2. Counts its FLOPs with XLA's own cost analysis. XLA's ``cost_analysis()`` counts a while
   loop's body once, whatever its trip count (checked here on a toy scan), so the figure for
   the whole program is not the work done; the work is rebuilt from the cost analysis of the
   loop-free bodies (one rollout step, one minibatch step, one evaluation step, GAE step) at
   the same vmapped shapes, times their trip counts.
3. Times sub-programs built from the same building blocks (``MLP``, ``make_optimizer``, the
   gymnax env, ``envs.evaluate``) at the same shapes, each jitted and vmapped over [samples,
   replicates] as the real program is: env steps alone, the rollout (policy + critic + env),
   GAE, the per-epoch permutation and minibatch gather (and the permutation alone), the
   gradient steps (grad + clip + Adam), one evaluation. Their sum, scaled by trip counts, is compared with the real run.
4. Times matmuls of the MLP's shapes, batched over the vmapped lanes as XLA sees them
   (``[lanes, rows, 64] x [lanes, 64, 64]``, rows = minibatch or num_envs), and a large
   2048^3 matmul (the attainable peak).

    python tools/roofline.py                      # about 2-3 minutes on 2 cores
    python tools/roofline.py --samples 4 --replicates 2 --updates 8

The sub-programs are local copies of PPO's steps (the tool never edits or patches the
algorithm); if ``hyperlax.train.algos.ppo`` changes, update them to match.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperlax.hyperparams import PPOConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.train.batched import batched_program, replicate_keys, stack
from hyperlax.train.envs import action_info, evaluate, make_env
from hyperlax.train.networks import MLP, make_optimizer


def timeit(fn: Callable, *args, repeats: int = 5, best: bool = False) -> float:
    """Median (or best) wall seconds of a compiled call (after one warm-up call)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times) if best else statistics.median(times)


def flops(compiled: Any) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):  # older jax returned one dict per computation
        cost = cost[0]
    return float(cost.get("flops", 0.0))


def toy_loop_check() -> tuple[float, float]:
    """cost_analysis flops of a 1-step and a 100-step scan of the same matmul body."""
    def f(x, w, n):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, n)[0]
    x, w = jnp.ones((128, 64)), jnp.ones((64, 64))
    return tuple(flops(jax.jit(f, static_argnums=2).lower(x, w, n).compile()) for n in (1, 100))


# --- local copies of PPO's building blocks (hyperlax.train.algos.ppo) -----------------------

class Learner(NamedTuple):
    actor: Any
    critic: Any
    actor_opt: Any
    critic_opt: Any


class Tr(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    bootstrap: jax.Array


class Parts:
    """PPO's per-lane steps for one structure, as pure functions of (state, key)."""

    def __init__(self, env_id: str, c: PPOConfig):
        self.env, self.params = make_env(env_id)
        self.discrete, self.adim, self.low, self.high = action_info(self.env, self.params)
        self.obs_shape = tuple(self.env.observation_space(self.params).shape)
        self.c = c
        self.batch = c.num_envs * c.rollout_length
        self.mb = self.batch // c.num_minibatches
        self.actor = MLP(c.actor_layer_sizes, c.activation, out_dim=self.adim, gain=2 ** 0.5,
                         head_gain=0.01)
        self.critic = MLP(c.critic_layer_sizes, c.activation, out_dim=1, gain=2 ** 0.5)
        self.tx = make_optimizer(jnp.float32(3e-4), jnp.float32(0.5), eps=1e-5)

    # policy pieces
    def logp_ent(self, ap, obs, action):
        out = self.actor.apply(ap["net"], obs)
        if self.discrete:
            lp = jax.nn.log_softmax(out)
            logp = jnp.take_along_axis(lp, action[..., None].astype(jnp.int32), -1)[..., 0]
            return logp, -jnp.sum(jnp.exp(lp) * lp, -1)
        ls = ap["log_std"]
        z = (action - out) * jnp.exp(-ls)
        logp = jnp.sum(-0.5 * z * z - ls - 0.5 * np.log(2 * np.pi), -1)
        return logp, jnp.broadcast_to(jnp.sum(0.5 + 0.5 * np.log(2 * np.pi) + ls), logp.shape)

    def sample(self, ap, obs, key):
        out = self.actor.apply(ap["net"], obs)
        if self.discrete:
            action = jax.random.categorical(key, out, -1)
        else:
            action = out + jnp.exp(ap["log_std"]) * jax.random.normal(key, out.shape)
        return action, self.logp_ent(ap, obs, action)[0]

    def value(self, cp, obs):
        return self.critic.apply(cp, obs)[..., 0]

    def env_action(self, a):
        return a if self.discrete else jnp.clip(a, self.low, self.high)

    def init(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        dummy = jnp.zeros((1,) + self.obs_shape)
        ap = {"net": self.actor.init(k1, dummy)}
        if not self.discrete:
            ap["log_std"] = jnp.zeros(self.adim)
        cp = self.critic.init(k2, dummy)
        learner = Learner(ap, cp, self.tx.init(ap), self.tx.init(cp))
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(
            jax.random.split(k3, self.c.num_envs), self.params)
        return learner, state, obs

    # one step of each loop
    def env_only_step(self, carry, key):
        state, obs = carry
        k1, k2 = jax.random.split(key)
        if self.discrete:
            a = jax.random.randint(k1, (self.c.num_envs,), 0, self.adim)
        else:
            a = jax.random.uniform(k1, (self.c.num_envs, self.adim), minval=self.low,
                                   maxval=self.high)
        obs, state, r, term, trunc, info = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k2, self.c.num_envs), state, a, self.params)
        return (state, obs), r

    def rollout_step(self, learner, carry, key):
        state, obs, mean, var, count = carry
        k1, k2 = jax.random.split(key)
        nobs = jnp.clip((obs - mean) / jnp.sqrt(var + 1e-8), -10, 10)
        action, logp = self.sample(learner.actor, nobs, k1)
        value = self.value(learner.critic, nobs)
        next_obs, state, r, term, trunc, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None))(jax.random.split(k2, self.c.num_envs),
                                                    state, self.env_action(action), self.params)
        fin = jnp.clip((info["final_observation"] - mean) / jnp.sqrt(var + 1e-8), -10, 10)
        boot = jnp.where(term, 0.0, self.value(learner.critic, fin))
        n = next_obs.shape[0]  # parallel Welford, as ppo._norm_update
        bm, bv = next_obs.mean(0), next_obs.var(0)
        total = count + n
        d = bm - mean
        mean2 = mean + d * (n / total)
        var2 = (var * count + bv * n + d * d * count * n / total) / total
        tr = Tr(nobs, action, logp, value, r.astype(jnp.float32), term | trunc, boot)
        return (state, next_obs, mean2, var2, total), tr

    def gae(self, traj: Tr, last_value):
        def step(carry, t):
            adv, nv = carry
            nv = jnp.where(t.done, t.bootstrap, nv)
            delta = t.reward + 0.99 * nv - t.value
            adv = delta + 0.99 * 0.95 * jnp.where(t.done, 0.0, adv)
            return (adv, t.value), adv
        _, adv = jax.lax.scan(step, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
        return adv, adv + traj.value

    def shuffle(self, batch, key):
        order = jax.random.permutation(key, self.batch)
        return jax.tree.map(lambda x: x[order].reshape(
            (self.c.num_minibatches, self.mb) + x.shape[1:]), batch)

    def minibatch_step(self, learner: Learner, mb):
        obs, action, old_logp, adv, target = mb

        def loss(params):
            ap, cp = params
            logp, ent = self.logp_ent(ap, obs, action)
            lr = logp - old_logp
            ratio = jnp.exp(lr)
            a = (adv - adv.mean()) / (adv.std() + 1e-8)
            pl = -jnp.minimum(ratio * a, jnp.clip(ratio, 0.8, 1.2) * a).mean()
            vl = 0.5 * jnp.square(self.value(cp, obs) - target).mean()
            return pl - 0.0 * ent.mean() + 0.5 * vl, ((ratio - 1) - lr).mean()

        grads, kl = jax.grad(loss, has_aux=True)((learner.actor, learner.critic))
        au, ao = self.tx.update(grads[0], learner.actor_opt, learner.actor)
        cu, co = self.tx.update(grads[1], learner.critic_opt, learner.critic)
        return Learner(optax.apply_updates(learner.actor, au),
                       optax.apply_updates(learner.critic, cu), ao, co), kl

    def greedy(self, ap):
        def act(obs, key):
            out = self.actor.apply(ap["net"], obs)
            return jnp.argmax(out, -1) if self.discrete else self.env_action(out)
        return act

    def eval_step(self, ap, carry, key):
        """One step of ``envs.evaluate``'s loop (for its FLOP count)."""
        obs, state, ret, alive = carry
        n = obs.shape[0]
        ak, ek = jnp.split(jax.random.split(key, 2 * n), 2)
        action = jax.vmap(self.greedy(ap))(obs, ak)
        obs, state, r, term, trunc, _ = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(
            ek, state, action, self.params)
        return obs, state, ret + jnp.where(alive, r, 0.0), alive & ~(term | trunc)


# pieces that are part of another piece (not added to the sum)
INSIDE_OTHERS = ("env steps only", "permutation only")


def lanes2(fn: Callable) -> Callable:
    """vmap over [samples, replicates], as ``batched_program`` does."""
    return jax.vmap(jax.vmap(fn))


def scalar_sum(tree) -> jax.Array:
    return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(tree))


def subprograms(p: Parts, keys: jax.Array, eval_episodes: int) -> dict[str, dict[str, float]]:
    """Per-update (or per-evaluation) seconds and loop-free FLOPs of each piece."""
    c = p.c
    T, E, M = c.rollout_length, c.update_epochs, c.num_minibatches
    init = jax.jit(lanes2(p.init))
    learner, state, obs = init(keys)
    obs_dim = p.obs_shape[0]
    mean, var, count = (jnp.zeros(keys.shape[:2] + (obs_dim,)),
                        jnp.ones(keys.shape[:2] + (obs_dim,)), jnp.full(keys.shape[:2], 1.0))
    res: dict[str, dict[str, float]] = {}

    def record(name, timed, timed_args, body, body_args, trips, per):
        compiled = jax.jit(timed).lower(*timed_args).compile()
        sec = timeit(compiled, *timed_args)
        body_flops = flops(jax.jit(body).lower(*body_args).compile()) if body else 0.0
        res[name] = dict(seconds=sec, flops=body_flops * trips, per=per)

    # env steps alone: a rollout of random actions
    def env_only(state, obs, key):
        (state, obs), r = jax.lax.scan(p.env_only_step, (state, obs), jax.random.split(key, T))
        return scalar_sum((obs, r))
    record("env steps only", lanes2(env_only), (state, obs, keys),
           lanes2(lambda s, o, k: scalar_sum(p.env_only_step((s, o), k))), (state, obs, keys),
           T, "update")

    # the rollout: normalization, policy, critic (twice), env step, statistics
    def rollout(learner, state, obs, mean, var, count, key):
        carry, traj = jax.lax.scan(lambda cr, k: p.rollout_step(learner, cr, k),
                                   (state, obs, mean, var, count), jax.random.split(key, T))
        return carry, traj
    rollout_l = lanes2(rollout)
    (_, obs2, mean2, var2, _), traj = jax.jit(rollout_l)(learner, state, obs, mean, var, count,
                                                           keys)
    record("rollout (policy+critic+env)",
           lambda *a: scalar_sum(rollout_l(*a)), (learner, state, obs, mean, var, count, keys),
           lanes2(lambda l, s, o, m, v, n, k: scalar_sum(p.rollout_step(l, (s, o, m, v, n), k))),
           (learner, state, obs, mean, var, count, keys), T, "update")

    # GAE (and the critic's last value)
    def gae(learner, traj, obs2, mean2, var2):
        last = p.value(learner.critic, jnp.clip((obs2 - mean2) / jnp.sqrt(var2 + 1e-8), -10, 10))
        return p.gae(traj, last)
    # (flops: the critic's last value once plus one GAE step; the other T-1 steps' few
    # elementwise flops are not counted)
    record("GAE + last value", lambda *a: scalar_sum(lanes2(gae)(*a)),
           (learner, traj, obs2, mean2, var2), lanes2(gae),
           (learner, traj, obs2, mean2, var2), 1, "update")

    adv, target = jax.jit(lanes2(gae))(learner, traj, obs2, mean2, var2)
    flat = lambda x: x.reshape(x.shape[:2] + (p.batch,) + x.shape[4:])  # noqa: E731
    batch = (flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(adv), flat(target))

    # permutation + gather into minibatches, every epoch
    def shuffles(batch, key):
        return jax.lax.map(lambda k: p.shuffle(batch, k), jax.random.split(key, E))
    record("permute + gather (x epochs)", lambda *a: scalar_sum(lanes2(shuffles)(*a)),
           (batch, keys), None, (), 0, "update")

    # the permutation alone: what of the above is the sort, not the gather
    def permutations(key):
        return jax.lax.map(lambda k: jax.random.permutation(k, p.batch), jax.random.split(key, E))
    record("permutation only", lambda k: scalar_sum(lanes2(permutations)(k)), (keys,), None,
           (), 0, "update")
    mbs = jax.jit(lanes2(shuffles))(batch, keys)  # [S, R, E, M, mb, ...]
    mbs = jax.tree.map(lambda x: x.reshape(x.shape[:2] + (E * M,) + x.shape[4:]), mbs)

    # gradient steps: grad of the loss + clip + Adam, E x M of them
    def sgd(learner, mbs):
        learner, kl = jax.lax.scan(p.minibatch_step, learner, mbs)
        return learner, kl
    one_mb = jax.tree.map(lambda x: x[:, :, 0], mbs)
    record("gradient steps (grad+Adam)", lambda *a: scalar_sum(lanes2(sgd)(*a)),
           (learner, mbs), lanes2(lambda l, m: scalar_sum(p.minibatch_step(l, m))),
           (learner, one_mb), E * M, "update")

    # one evaluation (the real envs.evaluate)
    def evaluation(learner, key):
        return evaluate(p.env, p.params, p.greedy(learner.actor), key, eval_episodes)
    eobs, estate = jax.jit(lanes2(lambda k: jax.vmap(p.env.reset, in_axes=(0, None))(
        jax.random.split(k, eval_episodes), p.params)))(keys)
    ret = jnp.zeros(keys.shape[:2] + (eval_episodes,))
    alive = jnp.ones(keys.shape[:2] + (eval_episodes,), bool)
    record("evaluation", lambda *a: jnp.sum(lanes2(evaluation)(*a)), (learner, keys),
           lanes2(lambda l, o, s, r, a, k: scalar_sum(p.eval_step(l.actor, (o, s, r, a), k))),
           (learner, eobs, estate, ret, alive, keys), p.params.max_steps_in_episode,
           "evaluation")
    return res


def matmul_bench(lanes: int, rows: int, width: int, repeats: int) -> float:
    """GFLOP/s of [lanes, rows, width] x [lanes, width, width], forward and weight-gradient
    forms, as vmapped dense layers become batched dot_generals."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    n = max(1, int(2e8 // (2 * lanes * rows * width * width)))  # ~0.2 GFLOP per call
    xs = jax.random.normal(k1, (n, lanes, rows, width))
    w = jax.random.normal(k2, (lanes, width, width)) * 0.1

    def fwd(xs, w):  # independent forward matmuls, accumulated
        return jax.lax.scan(lambda acc, x: (acc + jnp.einsum("lbi,lij->lbj", x, w), None),
                            jnp.zeros((lanes, rows, width)), xs)[0]

    def wgrad(xs, w):  # x^T @ dy: the weight gradient
        return jax.lax.scan(lambda acc, x: (acc + jnp.einsum("lbi,lbj->lij", x, x), None),
                            jnp.zeros_like(w), xs)[0]
    out = []
    for f in (fwd, wgrad):
        sec = timeit(jax.jit(f), xs, w, repeats=repeats)
        out.append(2.0 * n * lanes * rows * width * width / sec / 1e9)
    return out


def peak_bench(size: int, repeats: int) -> float:
    a = jax.random.normal(jax.random.PRNGKey(1), (size, size))
    sec = timeit(jax.jit(lambda a: a @ a), a, repeats=max(repeats, 5), best=True)
    return 2.0 * size ** 3 / sec / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="gymnax.pendulum")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--updates", type=int, default=8,
                        help="updates per training call of the measured run")
    parser.add_argument("--num-evaluations", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    c = PPOConfig(num_envs=8, rollout_length=64, update_epochs=4, num_minibatches=4,
                  actor_layer_sizes=[64, 64], critic_layer_sizes=[64, 64], activation="tanh")
    S, R, L = args.samples, args.replicates, args.samples * args.replicates
    steps_per_update = c.num_envs * c.rollout_length
    budget = Budget(total_timesteps=steps_per_update * args.updates,
                    num_evaluations=args.num_evaluations, eval_episodes=args.eval_episodes)
    updates_per_eval, updates = budget.updates(steps_per_update)
    print(f"jax {jax.__version__}, {os.cpu_count()} cores, backend {jax.default_backend()}; "
          f"{args.env}, {S}x{R} lanes, {c.num_envs} envs x {c.rollout_length} steps, "
          f"{c.update_epochs}x{c.num_minibatches} epochs x minibatches, [64, 64] tanh, "
          f"{updates} updates, {args.num_evaluations} evaluations of {args.eval_episodes} "
          "episodes per run")

    one, hundred = toy_loop_check()
    print(f"\nXLA cost_analysis of a 1-step vs 100-step scan of the same body: {one:.3g} vs "
          f"{hundred:.3g} flops (loop bodies are counted once)")

    # 1. the real program
    configs = stack([c] * S)
    keys = replicate_keys(list(range(S)), R)
    program = batched_program("ppo", args.env, budget)
    parts = {part: low.compile() for part, low in program.lower(configs, keys).items()}
    run_s = timeit(lambda c, k: program.run(c, k, parts=parts), configs, keys,
                   repeats=args.repeats)
    steps = updates * steps_per_update * L
    raw = sum(flops(part) for part in parts.values())
    print(f"\n## Real program: {run_s:.3f} s per run ({program.calls} train + evaluate calls), "
          f"{steps} env steps -> {steps / run_s:,.0f} env steps/s; raw cost_analysis "
          f"{raw / 1e9:.3f} GFLOP (its parts, loop bodies once)")

    # 2-3. pieces
    p = Parts(args.env, c)
    pieces = subprograms(p, keys, args.eval_episodes)
    print("\n## Breakdown (sub-programs at the same shapes, jit(vmap(vmap)))")
    w = [30, 11, 11, 9, 10, 8]
    print("  ".join(h.rjust(x) if i else h.ljust(x) for i, (h, x) in enumerate(zip(
        ["piece", "s/update", "s/call", "share", "GFLOP/call", "GFLOP/s"], w))))
    total_s = total_f = 0.0
    rows = []
    for name, r in pieces.items():
        times = updates if r["per"] == "update" else args.num_evaluations
        s_call, f_call = r["seconds"] * times, r["flops"] * times
        if name not in INSIDE_OTHERS:
            total_s += s_call
            total_f += f_call
        rows.append((name, r["seconds"] if r["per"] == "update" else float("nan"), s_call,
                     f_call))
    for name, per_u, s_call, f_call in rows:
        share = s_call / total_s if name not in INSIDE_OTHERS else float("nan")
        print("  ".join([name.ljust(30), f"{per_u:11.4f}", f"{s_call:11.3f}",
                         f"{share:9.1%}", f"{f_call / 1e9:10.2f}",
                         f"{f_call / s_call / 1e9 if f_call else 0:8.2f}"]))
    print("  ".join(["sum of pieces (excl. inner)".ljust(30), " " * 11, f"{total_s:11.3f}",
                     " " * 9, f"{total_f / 1e9:10.2f}", f"{total_f / total_s / 1e9:8.2f}"]))
    print(f"  real program: {run_s:.3f} s per call ({run_s / total_s:.2f}x the pieces); "
          f"achieved {total_f / run_s / 1e9:.2f} GFLOP/s on {total_f / 1e9:.2f} GFLOP "
          "(trip-count-corrected XLA cost analysis)")

    # 4. matmuls
    mb = c.num_envs * c.rollout_length // c.num_minibatches
    print("\n## Matmul microbenchmark (jit, batched over lanes as vmap makes them)")
    print("shape".ljust(40), "fwd GFLOP/s".rjust(12), "wgrad GFLOP/s".rjust(14))
    for rows_ in (mb, c.num_envs, args.eval_episodes):
        f, g = matmul_bench(L, rows_, 64, args.repeats)
        print(f"[{L}, {rows_}, 64] x [{L}, 64, 64]".ljust(40), f"{f:12.1f}", f"{g:14.1f}")
    pk = peak_bench(2048, args.repeats)
    print(f"[2048, 2048] x [2048, 2048]".ljust(40), f"{pk:12.1f}   (large-matmul peak)")
    print(f"\nachieved {total_f / run_s / 1e9:.2f} GFLOP/s = "
          f"{total_f / run_s / 1e9 / pk:.1%} of the large-matmul peak")


if __name__ == "__main__":
    main()
