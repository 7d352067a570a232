"""Pure JAX training: algorithms, networks, environments, replay. No files, no processes.

    algos/       one module per algorithm and the registry that names them
    batched.py   the one entry point: ``train`` wrapped into vmap(samples) x vmap(replicates)
    configs.py   a plan's sample values -> the algorithm's hyperparameter pytree
    networks.py  MLP torsos and heads (flax.linen)
    recurrent.py the GRU torso: a hidden state carried from step to step, reset at episode ends
    envs.py      gymnax and Brax environments behind one interface, observation wrappers
    replay.py    the replay buffer for off-policy algorithms
    obs_norm.py  running observation normalization
"""
