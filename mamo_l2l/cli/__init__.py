"""Layer 11, cli: the `mamo-l2l` command line, one module per command group (docs/architecture.md)."""
from mamo_l2l.cli.main import app, main

__all__ = ["app", "main"]
