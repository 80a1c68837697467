"""cliff-hmr: CLIFF human mesh recovery."""

__version__ = "0.1.0"
