"""The command line's entry point: ``python -m hyperlax`` and the ``hyperlax`` console script
(pyproject.toml). Its first line installs the start-up stop handling (``exec.starting``, which
imports nothing heavy), so a stop while the CLI is still being imported ends with the resume
hint and 130 / 143, not a traceback. Before that line, in the interpreter's own start-up,
Python's defaults apply (docs/guarantees.md, "Stopping")."""


def run() -> None:
    try:
        from hyperlax.exec import starting
    except KeyboardInterrupt:  # Python's own SIGINT handler, in the millisecond this import takes
        import signal

        from hyperlax.exec import starting
        starting.early_exit(signal.SIGINT)
    try:
        starting.early()
        from hyperlax.cli.main import main
    except (starting.EarlyStop, KeyboardInterrupt) as stop:
        starting.early_exit(starting.stop_signal(stop))
    main()


if __name__ == "__main__":
    run()
