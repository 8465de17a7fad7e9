"""The package's error vocabulary. Every mistake of the user's (a bad argument, option, setting, file or input)
raises a UserError, which the command line reports as one line with exit code 2; anything else is an internal
error (exit code 1, "--debug shows where"). Each class keeps the builtin parent that callers already catch
(ValueError, OSError, RuntimeError), so `except ValueError` still works."""

from __future__ import annotations


class UserError(Exception):
    """A mistake of the user's: the message names the argument, file or setting, the value and what is allowed."""


class SettingError(UserError, ValueError):
    """A bad argument, option, setting, config value or input value."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output the user named is already there and is not to be replaced."""
