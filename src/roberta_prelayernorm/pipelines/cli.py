"""Subcommands `classify`, `tag`, `answer`, `choose` and `fill-mask`: the task pipelines on the command line.

Inputs come from arguments, a JSON Lines file (--input) or stdin, read a window at a time (memory does not grow
with the input); each result is written as one JSON line (strict JSON: a NaN score is null), the input object
with a "result" key added, to stdout or --output, in input order as soon as its window is done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Iterator

from ..errors import SettingError
from ..flags import positive_int
from .. import jsonout
from . import pipeline_classes
from .command import TEXT, Command


def add_commands(subparsers) -> None:
    for cls in pipeline_classes():  # each pipeline's module declares its command
        command = cls.command
        fields = ", ".join(f'"{name}": ...' for name in {**command.fields, **command.optional})
        parser = subparsers.add_parser(
            command.name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"{command.help[0].upper()}{command.help[1:]} (the {cls.task} pipeline).\n\n"
                        "Inputs: the arguments, else --input FILE, else stdin, as JSON Lines: one object per line "
                        f"with {fields}" + (f' ("{next(iter(command.optional))}" optional)' if command.optional
                                            else "") + ".\nOutput: one JSON line per input: the input object "
                        'with its "result" added.',
            epilog=f"example:\n  {command.example}",
        )
        command.add_options(parser)
        parser.add_argument("--model", required=True, help="model folder or hub id (with its tokenizer)")
        parser.add_argument("--input", metavar="FILE", help="JSON Lines file of inputs ('-': stdin)")
        parser.add_argument("--output", metavar="FILE", help="write the results here (default: stdout)")
        parser.add_argument("--batch-size", type=positive_int, default=8, help="inputs per batch (default 8)")
        parser.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, or a GPU index")
        parser.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                            help="on a malformed input line: stop (default, exit 1) or report it on stderr "
                                 "and go on with the other lines")
        parser.set_defaults(func=lambda args, cls=cls: run(cls, args))


# -- running --------------------------------------------------------------------------------------------
class InputLineError(SettingError):
    """A malformed input line; the message starts with FILE:LINE."""


def read_inputs(command: Command, args) -> Iterator[tuple[str, object]]:
    """(where, input line or object) for each input, read one at a time: from the arguments, --input or stdin.
    A missing input is an error at once, not at the first read."""
    given = command.from_args(args)
    if given:
        if args.input is not None:
            raise SettingError(f"{command.name}: give inputs as arguments or with --input, not both")
        return iter([(f"argument {i + 1}", item) for i, item in enumerate(given)])
    if args.input in (None, "-"):
        if args.input is None and sys.stdin.isatty():
            raise SettingError(f"{command.name}: no input: give it as arguments, with --input FILE, or as JSON Lines "
                               "on stdin (see --help)")
        stdin = getattr(sys.stdin, "buffer", None)  # a replaced sys.stdin may be text only
        return numbered_lines("<stdin>", stdin if stdin is not None else
                              (line.encode("utf-8", "surrogatepass") for line in sys.stdin))
    try:
        source = open(args.input, "rb")
    except OSError as err:
        raise SettingError(f"{command.name}: --input {args.input}: {err.strerror}") from None
    return numbered_lines(args.input, source)


def numbered_lines(name: str, source) -> Iterator[tuple[str, bytes]]:
    """("NAME:LINE", line) for each non-blank line of a binary stream (closed at the end), without a UTF-8 byte
    order mark. Lines stay bytes: one that is not UTF-8 is that line's error (parse_line), not the whole input's.
    Numbered as str.splitlines counts lines (a lone "\r" ends one too)."""
    number = 0
    with contextlib.closing(source) if hasattr(source, "close") else contextlib.nullcontext():
        for i, raw in enumerate(source):
            for line in (raw.removeprefix(b"\xef\xbb\xbf") if i == 0 else raw).splitlines():
                number += 1
                if line.strip():
                    yield f"{name}:{number}", line


def parse_line(command: Command, where: str, line) -> dict:
    """The input object of one JSON line, checked against the task's fields."""
    if isinstance(line, dict):  # from arguments
        item = line
    else:
        try:
            item = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InputLineError(f"{where}: not UTF-8 text (byte {err.start + 1} is {line[err.start]:#04x})") from None
        except json.JSONDecodeError as err:
            raise InputLineError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(item, dict):
        raise InputLineError(f"{where}: expected a JSON object, got {type(item).__name__}")
    allowed = {**command.fields, **command.optional}
    missing = [name for name in command.fields if name not in item]
    unknown = [name for name in item if name not in allowed and name != "result"]
    if missing or unknown:
        problem = f"missing {missing}" if missing else f"unknown field(s) {unknown}"
        raise InputLineError(f"{where}: {problem}; expected fields {list(allowed)}")
    for name, kind in allowed.items():
        if name in item and not isinstance(item[name], kind):
            raise InputLineError(f"{where}: {name!r} must be a {kind.__name__}, got {type(item[name]).__name__}")
        texts = item.get(name) if isinstance(item.get(name), list) else [item.get(name)]
        for text in texts:
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as err:  # JSON "\ud800" escapes decode to lone surrogates
                    raise InputLineError(f"{where}: {name!r} holds a lone surrogate ({text[err.start]!r} at "
                                         f"character {err.start + 1}), which is not text") from None
    return {name: item[name] for name in allowed if name in item}


# Inputs read ahead of the model, for length-sorted batches: at most this many batches' worth, this many bytes of
# input lines and this many tokens (a result can be larger than its line: `tag` gives a dict per entity), each
# window's results written before the next is read.
WINDOW_BATCHES = 32
WINDOW_BYTES = 4 << 20
WINDOW_TOKENS = 1 << 16


class Stopped(Exception):
    """A malformed line under --on-error stop: the message to print before exiting with code 1."""


def run(cls: type, args) -> int:
    """One subcommand: the pipeline of class `cls` (its `command`) over the inputs, results as JSON Lines."""
    from . import pipeline
    from ..checkpoint import CheckpointError
    from ..files import atomic_write, check_output
    from ..hub import CheckpointNotFoundError

    command = cls.command
    if args.output is not None:
        check_output(args.output, "--output")
    device = int(args.device) if args.device is not None and args.device.lstrip("-").isdigit() else args.device
    try:
        pipe = pipeline(cls.task, model=args.model, device=device, batch_size=args.batch_size,
                        **command.options(args))
    except (CheckpointNotFoundError, CheckpointError) as err:
        print(f"error: --model {args.model}: {err}", file=sys.stderr)
        return 2
    lines = read_inputs(command, args)
    counts = {"skipped": 0, "processed": 0}

    def checked():
        """(input object, its features, its line's size) of each good line; a bad one stops or is skipped."""
        for where, line in lines:
            try:
                item = parse_line(command, where, line)
                # Tokenizing each input here finds content errors (no <mask>, empty question...) with their line.
                features = pipe.features(pipe_input(command, item), pipe.options)
            except Exception as err:  # noqa: BLE001 - whatever one line does, it is that line's error
                message = str(err) if isinstance(err, InputLineError) else f"{where}: {err}"
                if args.on_error == "stop":
                    raise Stopped(f"error: {message} (stopped; --on-error skip processes the other lines)") from None
                print(f"skipped {message}", file=sys.stderr)
                counts["skipped"] += 1
                continue
            yield item, features, len(line) if isinstance(line, bytes) else 0

    def write(out) -> None:
        """Each window's results into `out` as soon as they are ready, in input order."""
        for window in windows(checked(), WINDOW_BATCHES * args.batch_size):
            items = [item for item, _ in window]
            results = pipe.results([pipe_input(command, item) for item in items], [f for _, f in window],
                                   pipe.options)
            out.write("".join(jsonout.line({**item, "result": result}) + "\n"
                              for item, result in zip(items, results)))
            out.flush()
            counts["processed"] += len(items)

    try:
        if args.output is None:
            write(sys.stdout)
        else:
            def write_file(name):
                with open(name, "w", encoding="utf-8") as f:
                    write(f)

            atomic_write(args.output, write_file)  # a run stopped at a bad line leaves --output as it was
    except Stopped as stop:
        print(stop, file=sys.stderr)
        return 1
    if counts["skipped"]:
        print(f"{counts['skipped']} malformed line(s) skipped; {counts['processed']} processed", file=sys.stderr)
    return 0


def windows(items: Iterator[tuple], count: int) -> Iterator[list[tuple[object, object]]]:
    """Consecutive runs of (item, features) from (item, features, line size) triples: a run ends at `count` items,
    WINDOW_BYTES of lines or WINDOW_TOKENS of features."""
    window, size, tokens = [], 0, 0
    for item, features, line_size in items:
        window.append((item, features))
        size += line_size
        tokens += sum(len(feature["input_ids"]) for feature in features)
        if len(window) >= count or size >= WINDOW_BYTES or tokens >= WINDOW_TOKENS:
            yield window
            window, size, tokens = [], 0, 0
    if window:
        yield window


def pipe_input(command: Command, item: dict):
    """The pipeline's input for one object: a text, or the dict itself (pairs, questions, prompts)."""
    if command.fields is TEXT and "text_pair" not in item:
        return item["text"]
    return item
