"""Built-in recipes with the original system's names carry the original's search spaces and run
lengths (its hyperlax/configs/algo/<name>.py, written out here as the facts to match), under
hyperlax's hyperparameter names; hyperlax's own CPU-sized recipes keep names of their own."""

from __future__ import annotations

from importlib import resources

import msgspec
import pytest

from hyperlax.manifest.format import decode_recipe
from hyperlax.manifest.recipes import builtin_recipes

LOG = "log_uniform"
UNI = "uniform"


def cat(*values):
    return ("categorical", list(values))


NETWORKS = cat([32, 32], [64, 64], [128, 128])
ORIGINAL = {
    "ppo_mlp": {
        "actor_lr": (LOG, 1e-5, 1e-3), "critic_lr": (LOG, 1e-5, 1e-3),
        "gamma": (UNI, 0.9, 0.99), "gae_lambda": (UNI, 0.9, 0.99),
        "clip_eps": (UNI, 0.01, 0.5), "ent_coef": (LOG, 1e-5, 1e-1),
        "vf_coef": (UNI, 0.5, 1.0), "max_grad_norm": (UNI, 0.1, 1.0),
        "rollout_length": cat(1, 2, 4, 8), "update_epochs": cat(1, 2, 4),
        "num_minibatches": cat(128, 256, 512), "num_envs": cat(1024, 2048, 4096),
        "standardize_advantages": cat(True, False), "decay_learning_rates": cat(True, False),
        "network.actor.layer_sizes": NETWORKS, "network.critic.layer_sizes": NETWORKS,
        "network.actor.activation": cat("tanh", "relu", "silu"),
        "network.critic.activation": cat("tanh", "relu", "silu"),
        "network.actor.layer_norm": cat(True, False),
        "network.critic.layer_norm": cat(True, False),
    },
    "ppo_mlp_no_network_search": {
        "actor_lr": (LOG, 1e-5, 1e-2), "critic_lr": (LOG, 1e-5, 1e-2),
        "gamma": (UNI, 0.9, 0.99), "gae_lambda": (UNI, 0.9, 0.99),
        "clip_eps": (UNI, 0.01, 0.5), "ent_coef": (LOG, 1e-5, 1e-2),
        "vf_coef": (UNI, 0.5, 1.0), "max_grad_norm": (UNI, 0.1, 1.0),
        "rollout_length": cat(2, 4, 8, 16), "update_epochs": cat(*range(1, 10)),
        "num_minibatches": cat(16, 32, 64, 128, 256), "num_envs": cat(1024, 2048, 4096, 8192),
        "standardize_advantages": cat(True, False), "decay_learning_rates": cat(True, False),
        "normalize_observations": cat(True, False),
    },
    "dqn_mlp": {
        "learning_rate": (LOG, 1e-5, 1e-3), "tau": (UNI, 0.001, 0.1),
        "gamma": (UNI, 0.9, 0.99), "max_grad_norm": (UNI, 0.1, 1.0),
        "epsilon_end": (UNI, 0.01, 0.2), "huber_delta": (UNI, 1e-6, 1.0),
        "warmup_steps": cat(16384, 32768, 65536), "num_envs": cat(1024, 2048, 4096),
        "rollout_length": cat(1, 2, 4, 8), "train_epochs": cat(1, 2, 4),
        "buffer_size": cat(30000, 100000), "replay_batch_size": cat(128, 256, 512),
        "network.q.layer_sizes": NETWORKS, "network.activation": cat("relu", "tanh", "silu"),
        "network.q.layer_norm": cat(True, False),
    },
    "sac_mlp": {
        "actor_lr": (LOG, 1e-5, 1e-3), "q_lr": (LOG, 1e-5, 1e-3), "alpha_lr": (LOG, 1e-5, 1e-3),
        "gamma": (UNI, 0.9, 0.999), "tau": (UNI, 0.001, 0.1), "max_grad_norm": (UNI, 0.1, 1.0),
        "target_entropy_scale": (UNI, 0.5, 1.0), "num_envs": cat(1024, 2048, 4096),
        "rollout_length": cat(1, 2, 4, 8), "warmup_steps": cat(16384, 32768, 65536),
        "train_epochs": cat(1, 2, 4), "buffer_size": cat(30000, 100000),
        "replay_batch_size": cat(128, 256, 512),
        "network.actor.layer_sizes": NETWORKS, "network.critic.layer_sizes": NETWORKS,
        "network.actor.activation": cat("tanh", "relu", "silu"),
        "network.critic.activation": cat("tanh", "relu", "silu"),
        "network.actor.layer_norm": cat(True, False),
        "network.critic.layer_norm": cat(True, False),
    },
}
# Values the original fixes by one-valued categoricals, and its default run length.
FIXED = {
    "ppo_mlp": {"normalize_observations": True},
    "ppo_mlp_no_network_search": {"network.actor.layer_sizes": [128, 128],
                                  "network.critic.layer_sizes": [128, 128],
                                  "network.activation": "relu",
                                  "network.actor.layer_norm": False,
                                  "network.critic.layer_norm": False},
    "dqn_mlp": {"double_q": True, "target_update_period": 1},
    "sac_mlp": {"normalize_observations": True, "learn_alpha": True},
}


def recipe(name: str):
    text = resources.files("hyperlax.recipes").joinpath(f"{name}.toml").read_text("utf-8")
    return decode_recipe(text, name)


def as_fact(dist) -> tuple:
    raw = msgspec.to_builtins(dist)
    if raw["dist"] == "categorical":
        assert raw.get("weights") is None   # equal shares, as the original's Categorical
        return ("categorical", raw["values"])
    return (raw["dist"], raw["low"], raw["high"])


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_recipes_with_the_originals_names_carry_its_spaces(name):
    r = recipe(name)
    assert {k: as_fact(d) for k, d in r.space.items()} == ORIGINAL[name]
    s = r.settings
    assert (s.total_timesteps, s.num_evaluations, s.eval_episodes) == (1_000_000, 5, 16)
    for key, value in FIXED[name].items():
        assert r.defaults[key] == value, key


def test_the_cpu_sized_recipes_keep_names_of_their_own():
    names = set(builtin_recipes())
    assert {"ppo_mlp_small", "ppo_mlp_fixed_net", "dqn_mlp_small", "sac_mlp_small"} <= names
    for name in ("ppo_mlp_small", "ppo_mlp_fixed_net"):
        assert as_fact(recipe(name).space["num_envs"]) == cat(4, 8, 16)
    assert recipe("ppo_mlp_fixed_net").defaults["network.actor.layer_sizes"] == [64, 64]
