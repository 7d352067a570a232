"""The one network builder: layer norm, per-network activations and the convolutional torso are
opt-in, and off they leave the plain MLP exactly as it was (same parameters, names and values);
the torso needs image observations and its initialization stays free of LAPACK."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperlax.environments import ENVS
from hyperlax.hyperparams import DQNConfig, PPOConfig, SACConfig
from hyperlax.hyperparams.budget import Budget
from hyperlax.hyperparams.config import NetworkShape, cnn_output_size
from hyperlax.train.batched import batched_program, replicate_keys, stack
from hyperlax.train.networks import MLP, image_shape, mlp

KEY = jax.random.PRNGKey(0)
PLAIN = NetworkShape((8, 8), "tanh", False, False)


def params_of(module, width):
    return module.init(KEY, jnp.zeros((2, width)))["params"]


def test_defaults_are_the_plain_mlp_bit_for_bit():
    plain = MLP((8, 8), "tanh", out_dim=3, gain=2.0 ** 0.5, head_gain=0.01)
    built = mlp(PLAIN, "gymnax.cartpole", out_dim=3, gain=2.0 ** 0.5, head_gain=0.01)
    a, b = params_of(plain, 4), params_of(built, 4)
    assert sorted(a) == sorted(b) == ["Dense_0", "Dense_1", "Dense_2"]
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_layer_norm_normalizes_each_hidden_layer_before_its_activation():
    shape = PLAIN._replace(layer_norm=True, activation="relu")
    net = mlp(shape, "gymnax.cartpole")
    params = params_of(net, 4)
    assert sorted(params) == ["Dense_0", "Dense_1", "LayerNorm_0", "LayerNorm_1"]
    # the Dense layers keep the plain network's names, so their initial values too
    plain = params_of(mlp(PLAIN._replace(activation="relu"), "gymnax.cartpole"), 4)
    assert np.array_equal(params["Dense_0"]["kernel"], plain["Dense_0"]["kernel"])
    x = jax.random.normal(KEY, (5, 4)) * 100.0

    def layer_norm(h):  # flax's LayerNorm at init: scale 1, bias 0, epsilon 1e-6
        return (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-6)

    h = x
    for name in ("Dense_0", "Dense_1"):
        h = jax.nn.relu(layer_norm(h @ params[name]["kernel"] + params[name]["bias"]))
    out = net.apply({"params": params}, x)
    assert np.allclose(out, h, atol=1e-5)
    # normalized, so a hundredfold smaller input gives the same features (up to the biases,
    # zero for flax's default init)
    assert np.allclose(net.apply({"params": params}, x / 100.0), out, atol=1e-3)


@pytest.mark.parametrize("env_id", ["gymnax.breakout_minatar", "gymnax.pong"])
def test_cnn_torso_reshapes_the_flat_observation_and_convolves(env_id):
    obs_shape = ENVS[env_id].obs_shape
    net = mlp(PLAIN._replace(cnn=True), env_id, out_dim=3)
    flat = int(np.prod(obs_shape))
    params = params_of(net, flat)
    assert params["Conv_0"]["kernel"].shape == (3, 3, obs_shape[2], 16)
    assert params["Dense_0"]["kernel"].shape == (cnn_output_size(obs_shape), 8)
    x = jax.random.uniform(KEY, (6, flat))
    batched = net.apply({"params": params}, x)
    single = jax.vmap(lambda o: net.apply({"params": params}, o))(x)  # unbatched input
    assert batched.shape == (6, 3) and np.allclose(batched, single, atol=1e-5)
    # the same by hand: the image in height x width x channels, a VALID 3x3 convolution
    image = x[0].reshape(obs_shape)
    conv = jax.lax.conv_general_dilated(
        image[None], params["Conv_0"]["kernel"], (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))[0] + params["Conv_0"]["bias"]
    features = jax.nn.relu(conv).reshape(-1)
    hidden = jnp.tanh(features @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    hidden = jnp.tanh(hidden @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"])
    expected = hidden @ params["Dense_2"]["kernel"] + params["Dense_2"]["bias"]
    assert np.allclose(net.apply({"params": params}, x[0]), expected, atol=1e-4)


def test_cnn_torso_is_refused_without_image_observations():
    assert image_shape(PLAIN, "gymnax.cartpole") is None
    with pytest.raises(ValueError, match="needs image observations"):
        mlp(PLAIN._replace(cnn=True), "gymnax.cartpole")


def test_per_network_activation_defaults_to_the_shared_one():
    config = PPOConfig(activation="relu", critic_activation="tanh")
    assert config.network("actor").activation == "relu"      # "same"
    assert config.network("critic").activation == "tanh"
    assert SACConfig(actor_activation="gelu").network("actor").activation == "gelu"
    assert DQNConfig(activation="silu").network("q").activation == "silu"
    assert DQNConfig(torso="cnn").network("q").cnn and not PPOConfig().network("actor").cnn


DECOMPOSITIONS = ("geqrf", "orgqr", "householder", "lapack", "gesdd", "syevd", "potrf")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, config", [
    ("ppo", PPOConfig(num_envs=2, rollout_length=4, num_minibatches=2, torso="cnn",
                      actor_layer_norm=True)),
    ("dqn", DQNConfig(num_envs=2, rollout_length=4, buffer_size=64, replay_batch_size=8,
                      warmup_steps=8, torso="cnn", q_layer_norm=True, dueling=True)),
], ids=["ppo", "dqn"])
def test_the_new_networks_initialize_without_lapack(algorithm, config):
    program = batched_program(algorithm, "gymnax.breakout_minatar",
                              Budget(total_timesteps=16, num_evaluations=1, eval_episodes=1))
    lowered = program.lower(stack([config, config]), replicate_keys([0, 1], 1))
    text = "\n".join(part.as_text() for part in lowered.values())
    found = [name for name in DECOMPOSITIONS if name in text.lower()]
    assert not found, f"{algorithm}'s program contains {found}"
