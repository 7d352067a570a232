"""Environments for the runtime, behind one interface, and the evaluation loop every algorithm
shares.

Every env is a gymnax-style object: ``reset(key, params) -> (obs, state)``, ``step(key, state,
action, params) -> (obs, state, reward, terminated, truncated, info)`` with auto-reset and
``info["final_observation"]``, ``observation_space(params).shape``, ``action_space(params)``
(``.n``, or ``.shape``/``.low``/``.high``) and ``params.max_steps_in_episode``; the algorithms
vmap ``reset`` and ``step`` over parallel envs. Observations are flat float32 vectors: images
(MinAtar, Pong) are flattened, integer or boolean observations cast, a discrete observation
(FrozenLake's position) one-hot encoded; rewards are float32; ``EnvInfo.obs_shape`` keeps the shape before
flattening. Brax environments (the ``brax`` extra) get the same interface from ``BraxEnv``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import math
import warnings
from typing import Any, Callable

import gymnax
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from hyperlax.environments import BRAX_EPISODE_LENGTH, ENVS, unknown_env_message
from hyperlax.errors import HyperlaxError


def make_env(env_id: str) -> tuple[Any, Any]:
    """(env, env_params) for a hyperlax env id such as ``gymnax.pendulum``."""
    info = ENVS.get(env_id)
    if info is None:
        raise HyperlaxError("settings.env", unknown_env_message(env_id))
    if info.backend == "brax":
        return _brax_env(info.name), BraxParams()
    env, params = gymnax.make(info.name)
    return FlatEnv(env, params), params


class FlatEnv:
    """A gymnax env whose observations are flat float32 vectors (see the module docstring)."""

    def __init__(self, env: Any, params: Any):
        self.env = env
        space = env.observation_space(params)
        self.one_hot = int(space.n) if hasattr(space, "n") else 0  # a discrete observation
        self.obs_size = self.one_hot or math.prod(space.shape)

    def flat(self, obs: jax.Array) -> jax.Array:
        """One observation, flat and float32."""
        if self.one_hot:
            return jax.nn.one_hot(obs, self.one_hot, dtype=jnp.float32)
        return jnp.reshape(obs, (-1,)).astype(jnp.float32)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset(key, params)
        return self.flat(obs), state

    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params)
        info = {**info, "final_observation": self.flat(info["final_observation"])}
        # float32 rewards everywhere (UmbrellaChain's are int32)
        return self.flat(obs), state, reward.astype(jnp.float32), terminated, truncated, info

    def observation_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)

    def action_space(self, params: Any = None) -> Any:
        return self.env.action_space(params)


# --- Brax ---------------------------------------------------------------------------------------

@struct.dataclass
class BraxParams:
    # static: evaluation's loop length and the truncation test read it as a Python int
    max_steps_in_episode: int = struct.field(pytree_node=False, default=BRAX_EPISODE_LENGTH)


@struct.dataclass
class BraxState:
    brax: Any          # brax.envs.State: pipeline state, obs, reward, done, metrics, info
    time: jax.Array    # int32: steps in this episode


class BraxEnv:
    """A Brax environment with the gymnax interface: a time limit (Brax has none of its own),
    auto-reset to a freshly sampled initial state (as gymnax does) and the action bounds of its
    actuators' control range, to which Brax clips actions."""

    def __init__(self, env: Any):
        self.env = env
        ctrl = env.sys.actuator.ctrl_range
        self.low, self.high = jnp.asarray(ctrl[:, 0]), jnp.asarray(ctrl[:, 1])

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, BraxState]:
        state = self.env.reset(key)
        return state.obs, BraxState(state, jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: BraxState, action: jax.Array, params: Any = None):
        if params is None:
            params = BraxParams()
        stepped = self.env.step(state.brax, action)
        time = state.time + 1
        terminated = stepped.done > 0.5
        truncated = time >= params.max_steps_in_episode
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state,
                                  BraxState(stepped, time))
        obs = jnp.where(done, reset_obs, stepped.obs)
        info = {"final_observation": stepped.obs}
        return obs, next_state, stepped.reward, terminated, truncated, info

    def observation_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.env.observation_size,), jnp.float32)

    def action_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(self.low, self.high, (self.env.action_size,), jnp.float32)


@functools.lru_cache(maxsize=None)
def _brax_env(name: str) -> BraxEnv:
    """Building a Brax system takes seconds (MJCF parsing, eager JAX): once per process."""
    # Importing brax prints that mujoco's optional GPU backend (warp) is missing, and brax and
    # jaxopt warn that they are unmaintained: noise in every exec, silenced here.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from brax import envs as brax_envs
        except ImportError as exc:
            raise HyperlaxError("settings.env", f"brax.{name} needs Brax, which is not "
                                                f"installed ({exc})",
                                "install the brax extra: pip install 'hyperlax[brax]'") from None
        _let_brax_fluid_clip()
        return BraxEnv(brax_envs.get_environment(name))


class _NumpyForBraxFluid:
    """``jax.numpy`` as ``brax.fluid`` sees it: the same functions, and a ``clip`` that also
    takes the ``a_min``/``a_max`` keywords, translated to ``min``/``max`` (the same clip)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)

    @staticmethod
    def clip(x: Any, min: Any = None, max: Any = None, *, a_min: Any = None,
             a_max: Any = None) -> jax.Array:
        return jnp.clip(x, min=min if a_min is None else a_min,
                        max=max if a_max is None else a_max)


def _let_brax_fluid_clip() -> None:
    """Brax 0.14.2's fluid model (``brax.fluid.force``, which only systems with a viscosity or
    density call: of Brax's eleven, Swimmer) calls ``jp.clip(..., a_min=1e-12)``, a keyword
    JAX 0.10 removed, so tracing Swimmer's step raised a TypeError. The call is in a module
    function of Brax, not a method an env subclass could override; so that module's ``jp``
    becomes ``_NumpyForBraxFluid``, and Brax's own code runs unchanged: the same clip, the same
    physics. Where JAX still takes ``a_min`` (older JAX, which may lack ``min=``) nothing is
    changed; once Brax calls ``clip(min=...)`` the translation is simply unused."""
    if "a_min" in inspect.signature(jnp.clip).parameters:
        return
    from brax import fluid
    fluid.jp = _NumpyForBraxFluid()


def action_info(env: Any, env_params: Any) -> tuple[bool, int, float, float]:
    """(discrete, action_dim_or_count, low, high) of an env's action space."""
    space = env.action_space(env_params)
    if hasattr(space, "n"):
        return True, int(space.n), 0.0, 0.0
    return False, int(space.shape[0]), float(jnp.min(space.low)), float(jnp.max(space.high))


def evaluate(env: Any, env_params: Any, act: Callable[..., Any], key: jax.Array,
             num_episodes: int, memory: Any = None) -> jax.Array:
    """Mean undiscounted return of ``num_episodes`` episodes run in parallel.

    ``act(obs, key) -> action`` acts on one observation (it is vmapped here). A recurrent
    policy passes ``memory``, its state for one episode's start (a pytree, copied to every
    episode), and ``act(obs, memory, key) -> (action, memory)``: the loop carries each
    episode's memory from step to step. Each episode counts rewards until its first
    termination or truncation; gymnax auto-resets, so later steps of a finished slot (and its
    memory) are ignored. The loop length is the env's episode limit, so every episode ends
    inside it.
    """
    if memory is None:
        def step_policy(obs, _memory, act_key):
            return act(obs, act_key), None
    else:
        step_policy = act
        memory = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_episodes,) + x.shape),
                              memory)
    reset_keys = jax.random.split(jax.random.fold_in(key, 0), num_episodes)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)

    def step(carry, step_key):
        obs, state, returns, alive, memory = carry
        act_keys, env_keys = jnp.split(jax.random.split(step_key, 2 * num_episodes), 2)
        action, memory = jax.vmap(step_policy)(obs, memory, act_keys)
        obs, state, reward, terminated, truncated, _ = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(env_keys, state, action, env_params)
        returns = returns + jnp.where(alive, reward, 0.0)
        alive = alive & ~(terminated | truncated)
        return (obs, state, returns, alive, memory), None

    # int: BernoulliBandit's limit is a float
    steps = jax.random.split(jax.random.fold_in(key, 1), int(env_params.max_steps_in_episode))
    init = (obs, state, jnp.zeros(num_episodes), jnp.ones(num_episodes, dtype=bool), memory)
    (_, _, returns, _, _), _ = jax.lax.scan(step, init, steps)
    return returns.mean()
