"""The seed system's front end: the original's command-line flags (``--env-config``,
``--run-length-modifier``, ``--load-hyperparams``, ...) lowered into manifests, then planned
and executed as ours.

    flags.py       one flag -> manifest keys, the run-length modifiers, quick pins
    sweep.py       one sweep: flags -> manifest -> plan -> exec
    cli.py         sweep-hp-samples, generate-hp-samples, run-single-hp
    benchmark.py   run-benchmark: one sweep per algorithm x environment
    optuna.py      optuna-hp-search, onto ``hyperlax search``
    logfile.py     --save-logs: what a command prints while it runs, also in hyperlax.log
"""
