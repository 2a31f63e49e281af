"""Ferry: database migrations you can prove and undo."""

__version__ = "0.1.0"
