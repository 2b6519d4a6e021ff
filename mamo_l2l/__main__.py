"""``python -m mamo_l2l ...`` works like the ``mamo-l2l`` command."""
from mamo_l2l.cli.main import main

if __name__ == "__main__":
    main()
