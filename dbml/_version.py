"""dbml's version, in a module of its own: code inside the package reads it without
importing the package's root (and what the root may import)."""

__version__ = "0.1.0"
