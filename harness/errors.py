"""Errors the CLI turns into one clear line and a non-zero exit code."""


class HarnessError(Exception):
    """A user-facing error: its message says what to change. Exit code 1 unless overridden."""

    exit_code = 1


class ConfigError(HarnessError):
    """A bad config value, flag or plugin option (exit code 2)."""

    exit_code = 2


class UnknownPluginError(ConfigError):
    """A plugin name that nothing registered."""


class PluginError(HarnessError):
    """A plugin that broke a rule (duplicate name, wrong return value)."""


class DataError(HarnessError):
    """A data file that is missing or malformed."""
