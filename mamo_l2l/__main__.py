"""``python -m mamo_l2l ...`` works like the ``mamo-l2l`` command."""
from .cli import main

if __name__ == "__main__":
    main()
