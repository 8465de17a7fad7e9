"""The console script `roberta-prelayernorm` (also `python -m roberta_prelayernorm`).

Each subcommand lives beside the code it drives: a module listed in COMMAND_MODULES defines
`add_commands(subparsers)`, which adds its subcommands with `func` set to a function taking the parsed args
and returning an exit code. Modules are imported only when the command line is built, keeping start-up light.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import Optional, Sequence

COMMAND_MODULES = (
    "roberta_prelayernorm.demo",
    "roberta_prelayernorm.training.cli",
    "roberta_prelayernorm.training.corpus_cli",
    "roberta_prelayernorm.pipelines.cli",
    "roberta_prelayernorm.convert",
    "roberta_prelayernorm.export",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="roberta-prelayernorm",
        description="RoBERTa-PreLayerNorm models: the demo, training and evaluation, and the task pipelines "
        "(see each subcommand's --help).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_commands(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
