"""hyperlax: reproducible hyperparameter sweeps of JAX reinforcement-learning agents.

The package is split in two halves that share only the plan file format:
the compiler (``spec/``, ``compiler/``, ``planfile.py``), which never imports JAX,
and the runtime (``runtime/``), which executes a frozen plan with JAX.
"""

__version__ = "0.1.0"
