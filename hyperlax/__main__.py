from hyperlax.cli import main

main()
