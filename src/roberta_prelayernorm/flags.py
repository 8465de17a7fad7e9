"""Settings declared once: a dataclass field that carries its command-line flag (help, choices, ...), from
which the commands generate their options (training.config.add_arguments), and the one form of a refused
setting. No torch here, so the command line's help stays fast."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

from .errors import SettingError


def flag(default=dataclasses.MISSING, help: Optional[str] = None, **argparse_options):
    """A settings field with its command-line option: `name=` (the flag, default --field-name), `group=` (flags of
    one group exclude each other), `invert=True` (a --no-... flag that sets the field False), and any
    add_argument keyword (required, choices, metavar...). The help is completed with the field's default."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


def need(ok: bool, settings, name: str, allowed: str) -> None:
    """Refuse `settings.name` unless `ok`: a ValueError naming the setting, its value and what is allowed."""
    if not ok:
        raise SettingError(f"{name}={getattr(settings, name)!r} is not allowed: {allowed}")


def positive_int(value: str) -> int:
    """An argparse type: an int >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number
