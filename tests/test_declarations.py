"""One declaration per hyperparameter: the config Structs in ``hyperlax.hyperparams`` are what
the compiler validates against, what the JSON Schemas carry, and (registered as pytrees) what
the runtime trains with. (The environment facts' agreement with gymnax and Brax is checked in
test_environments.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import msgspec
import pytest
from typing import ClassVar

from hyperlax.hyperparams import ALGORITHMS, CONFIGS, DQNConfig, PPOConfig, declarations
from hyperlax.hyperparams.config import AlgorithmConfig
from hyperlax.hyperparams.declare import ACTIVATION_NAMES, scalar
from hyperlax.train import configs as pytrees
from hyperlax.train.networks import ACTIVATIONS

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_activation_names_are_declared_once_and_all_run():
    for table in ALGORITHMS.values():
        assert table["network.activation"].choices == ACTIVATION_NAMES
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    x = jax.numpy.linspace(-2.0, 2.0, 5)
    assert all(ACTIVATIONS[name](x).shape == (5,) for name in ACTIVATION_NAMES)


def test_roles_follow_use():
    dqn, sac = ALGORITHMS["dqn"], ALGORITHMS["sac"]
    # integers compared with traced counters only: data
    assert dqn["warmup_steps"].role == dqn["target_update_period"].role == "scalar"
    assert sac["warmup_steps"].role == "scalar"
    # integers that size arrays or loops: structural
    for name in ("num_envs", "rollout_length", "buffer_size", "replay_batch_size",
                 "train_epochs"):
        assert dqn[name].role == "structural", name
    assert ALGORITHMS["ppo"]["num_minibatches"].role == "structural"


def test_a_field_without_a_role_is_refused():
    class Bad(AlgorithmConfig):
        algorithm: ClassVar[str] = "bad"
        action_spaces: ClassVar[tuple[str, ...]] = ("discrete",)
        num_envs: scalar(int, "envs") = 1
        rollout_length: int = 1

    with pytest.raises(TypeError, match="rollout_length"):
        declarations(Bad)


def test_bounds_are_in_the_types_and_the_schemas():
    lr = ALGORITHMS["ppo"]["actor_lr"]
    assert (lr.low, lr.low_open, lr.high) == (0.0, True, None)
    assert lr.check_value(0.0) == "must be > 0, got 0"
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    fixed = schema["$defs"]["Manifest"]["properties"]["fixed"]
    assert fixed["properties"]["actor_lr"]["exclusiveMinimum"] == 0
    assert fixed["properties"]["gamma"]["maximum"] == 1
    assert fixed["additionalProperties"] is False
    sweep = schema["$defs"]["SweepSection"]["properties"]
    assert sweep["num_samples"]["anyOf"][0]["minimum"] == 1  # optional: implied by grids
    ppo = json.loads((SCHEMAS / "hyperparams.ppo.schema.json").read_text())
    assert ppo["$defs"]["PPOConfig"]["properties"]["num_envs"]["maximum"] == 65_536


def test_config_from_manifest_names_validates():
    config = PPOConfig.from_values({"network.actor.layer_sizes": [8], "actor_lr": 1})
    assert config.actor_layer_sizes == [8] and config.actor_lr == 1.0
    with pytest.raises(msgspec.ValidationError):
        PPOConfig.from_values({"gamma": 1.5})
    assert PPOConfig(num_envs=3, rollout_length=4, num_minibatches=5).cross_field_problems()


def test_runtime_pytree_has_scalars_as_leaves_and_structure_static():
    a = pytrees.as_data(DQNConfig(learning_rate=1e-3, warmup_steps=7))
    leaves, treedef = jax.tree_util.tree_flatten(a)
    scalars = [p for p in declarations(DQNConfig).values() if p.role == "scalar"]
    assert len(leaves) == len(scalars)
    assert {str(x.dtype) for x in leaves} == {"float32", "int32", "bool"}  # bool: double_q
    # scalar values do not change the structure (one program); structural ones do
    b = pytrees.as_data(DQNConfig(learning_rate=3e-2, target_update_period=9))
    c = pytrees.as_data(DQNConfig(num_envs=8))
    assert jax.tree_util.tree_structure(b) == treedef
    assert jax.tree_util.tree_structure(c) != treedef
    stacked = pytrees.stack([a, b])
    assert stacked.warmup_steps.shape == (2,) and stacked.num_envs == 4
    assert float(pytrees.lane(stacked, 1).learning_rate) == pytest.approx(3e-2)


def test_every_algorithm_is_registered():
    for config in CONFIGS.values():
        leaves = jax.tree_util.tree_leaves(config())  # an unregistered class is one leaf
        scalars = [p for p in declarations(config).values() if p.role == "scalar"]
        assert len(leaves) == len(scalars) > 1, config.__name__
