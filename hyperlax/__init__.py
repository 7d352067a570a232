"""hyperlax: reproducible hyperparameter sweeps of JAX reinforcement-learning agents.

Two halves share one file, the plan. The compiler side (``manifest/``, ``hyperparams/``,
``compiler/``, ``plan/``, ``storage/``) never imports JAX; ``exec/`` runs a plan with the pure
JAX training code in ``train/``. ``cli/``, ``search/`` and ``report/`` import JAX only inside the
commands that train. docs/layout.md lists every folder and module with its one job.
"""

# The version changes whenever behaviour does (CHANGELOG.md says what changed); every plan
# records the version that wrote it, and ``hyperlax check`` names the changes since.
__version__ = "0.2.0"
