"""JAX-free description of what can be swept: hyperparameters, distributions, recipes, envs,
and the manifest format. Nothing in this package may import jax, flax, optax or gymnax."""
