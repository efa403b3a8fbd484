"""Run the ``reid`` command line from a checkout: ``python cli.py inspect --params``."""

from reid.cli import main

if __name__ == "__main__":
    main()
