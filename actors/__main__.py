"""``python -m actors``: the command line (see :mod:`actors._cli`)."""

from actors._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
