"""The error raised for a config file or override that cannot be applied."""

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message names the key or file."""
