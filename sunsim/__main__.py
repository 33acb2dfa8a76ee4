"""``python -m sunsim``: the command line (same as the ``sunsim`` console script)."""

from sunsim.cli import main

if __name__ == "__main__":
    main()
