"""The command line: click commands that parse arguments, call a use case and print. The
original system's commands (``sweep-hp-samples`` and friends) live in ``cli/seed/``.

    main.py     the ``hyperlax`` group and its commands (plan, show, check, exec, status, ...)
    errors.py   how a user error becomes one line and exit status 2, and which commands stop
    search.py   the ``hyperlax search`` command (the use case is ``search/``)
    seed/       the original system's flags turned into manifests, then run as ours

Nothing here imports JAX at module level: ``hyperlax --help``, ``plan`` and ``show`` are instant.
"""
