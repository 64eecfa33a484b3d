"""Error types a user can cause. Every message says what was expected, where, and what to do."""


class MMDDError(Exception):
    """Base class for errors caused by user input (config, data, run directories)."""


class ConfigError(MMDDError, ValueError):
    """A recipe or override is invalid: unknown key, wrong type or impossible value."""


class DataError(MMDDError):
    """A dataset root is missing, has the wrong layout, or holds a corrupt file."""


class RunError(MMDDError):
    """A run cannot go on (NaN loss, missing checkpoint, incomplete run directory)."""
