"""JAX-free: the sweep manifest and recipe formats, search-space distributions, built-in recipe
lookup, and resolving a manifest against its recipe and the hyperparameter declarations."""
