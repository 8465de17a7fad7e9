"""A pipeline's subcommand (`classify`, `tag`...), declared beside the pipeline in its module: the command line
(pipelines/cli.py) is generated from these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..flags import positive_int

TEXT = {"text": str}  # the JSON Lines fields of a command that takes one text


@dataclass
class Command:
    name: str
    help: str
    fields: dict  # field -> type, required
    optional: dict  # field -> type
    example: str
    add_options: Callable  # adds the command's options to a parser
    options: Callable  # parsed args -> pipeline options
    from_args: Callable  # parsed args -> list of input objects given as arguments


def top_k_or_all(value: str):
    return value if value == "all" else positive_int(value)


__all__ = ["TEXT", "Command", "positive_int", "top_k_or_all"]
