"""The console script `roberta-prelayernorm` (also `python -m roberta_prelayernorm`).

Each subcommand lives beside the code it drives: a module listed in COMMAND_MODULES defines
`add_commands(subparsers)`, which adds its subcommands with `func` set to a function taking the parsed args
and returning an exit code. Modules are imported only when the command line is built, keeping start-up light.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from importlib import import_module
from typing import Optional, Sequence

DEBUG_VARIABLE = "ROBERTA_PRELAYERNORM_DEBUG"
COMMAND_MODULES = (
    "roberta_prelayernorm.demo",
    "roberta_prelayernorm.training.cli",
    "roberta_prelayernorm.training.corpus_cli",
    "roberta_prelayernorm.pipelines.cli",
    "roberta_prelayernorm.serve.cli",
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
    debug_help = f"show the full traceback of an error (also: {DEBUG_VARIABLE}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_commands(subparsers)
    for subparser in subparsers.choices.values():  # --debug before or after the subcommand
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a subcommand. An error is one line on stderr: exit code 2 for a user's mistake (errors.UserError, or
    the system's error about a file: an OSError naming it), 1 for anything else, said to be internal; --debug
    shows the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # How to start this command again (the server does, on a faster malloc); None when called from Python (or
    # from an interpreter that cannot say where it lives).
    args.program = ["-m", "roberta_prelayernorm", *sys.argv[1:]] if argv is None and sys.executable else None
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with interrupted_by(signal.SIGTERM, signal.SIGHUP):
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        number = err.args[0] if err.args and isinstance(err.args[0], int) else signal.SIGINT
        print(f"interrupted ({signal.Signals(number).name})", file=sys.stderr)
        return 128 + number
    except Exception as err:  # noqa: BLE001 - the one place errors become messages
        if args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        from .errors import UserError

        user_error = isinstance(err, UserError) or (isinstance(err, OSError) and err.filename is not None)
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in message:
            message = f"{err.filename}: {message}"
        print(f"error: {message}" if user_error else
              f"error: {type(err).__name__}: {message} (an internal error; --debug shows where)", file=sys.stderr)
        return 2 if user_error else 1


@contextlib.contextmanager
def interrupted_by(*signals):
    """Make `signals` end the command as Ctrl-C (SIGINT) does, by raising KeyboardInterrupt(number): every
    cleanup that runs for SIGINT (temporary files and folders removed, finished chunks kept, locks released)
    runs for them too. The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return

    def interrupt(number, frame):
        raise KeyboardInterrupt(number)

    # A signal ignored on purpose (nohup ignores SIGHUP) stays ignored.
    previous = {number: signal.signal(number, interrupt) for number in signals
                if signal.getsignal(number) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


if __name__ == "__main__":
    sys.exit(main())
