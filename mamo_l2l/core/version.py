"""The package version (setup.cfg reads it here)."""
__version__ = "0.1.0"
