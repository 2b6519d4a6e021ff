"""Shim so that `python cli.py ...` works from a checkout; the app lives in mamo_l2l/cli/."""
from mamo_l2l.cli.main import main

if __name__ == "__main__":
    main()
