"""``python -m hyperlax``: the command line. Signals are handled from the first line on, so a
stop while the CLI is still being imported ends with the resume hint, not a traceback."""

from hyperlax.exec import stopping


def run() -> None:
    stopping.early()
    try:
        from hyperlax.cli.main import main
    except stopping.EarlyStop as stop:
        stopping.early_exit(stop.signum)
    main()


if __name__ == "__main__":
    run()
