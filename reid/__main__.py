"""Allow ``python -m reid …`` (and ``torchrun -m reid …``)."""

from reid.cli import main

if __name__ == "__main__":
    main()
