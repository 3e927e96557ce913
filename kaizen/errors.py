"""Errors a user can act on. The CLI prints them as one line and exits 2, never a traceback."""


class KaizenError(Exception):
    """Bad input from the user's side: config, files, market data, arguments."""

    exit_code = 2


class ConfigError(KaizenError):
    """A config file is missing, malformed, or has an unknown key or a bad value."""


class DataError(KaizenError):
    """Market data or a model file cannot be used as given (names the file and row)."""


class RegistryError(KaizenError):
    """A model registry operation is not allowed (unknown version, wrong role, bad pointer move) or
    a registry file is unreadable."""
