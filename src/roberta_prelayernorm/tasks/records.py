"""Reading training data: JSON Lines or CSV files (or a `datasets` dataset saved to disk), one record per row.

Every record is kept with where it came from, so a bad one is reported by file, line and field. Field types
are checked by the task (see the task modules); nothing is silently skipped.

In CSV files, list and object fields (tokens, tags, choices, answers, multi-label labels) are JSON text in
their cell; numbers are parsed as numbers, except in text fields, which keep the cell as written ("1984",
"nan"); an empty cell is a missing field. A UTF-8 byte order mark at the start of a file is skipped.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import MissingFileError, SettingError


class DataError(SettingError):
    """A record is malformed: the message names the file, the line and the field."""

    def __init__(self, where: "Where", field: str, problem: str):
        self.where, self.field = where, field
        super().__init__(f"{where}: field {field!r}: {problem}")


@dataclass(frozen=True)
class Where:
    """A record's origin: file and line (1-based; a CSV's header is line 1), or row for a dataset."""

    path: str
    line: int
    unit: str = "line"

    def __str__(self) -> str:
        return f"{self.path}, {self.unit} {self.line}"


@dataclass
class Record:
    fields: dict
    where: Where
    texts: Optional[dict] = None  # a CSV row's cells as written: a text field gets "1984" or "nan" back as text

    def get(self, name: str, kind, required: bool = True, default=None) -> Any:
        """The field `name`, checked to be of `kind` (a type or tuple of types); DataError otherwise."""
        if name not in self.fields or self.fields[name] is None:
            if required:
                raise DataError(self.where, name, f"missing (record has fields {sorted(self.fields)})")
            return default
        value = self.fields[name]
        if kind is str and self.texts and name in self.texts:
            value = self.texts[name]  # a CSV cell that reads as a number (1984, nan) is text in a text field
        # bool is an int in Python, but never a valid label, index or text here.
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise DataError(self.where, name, f"expected {names}, got {type(value).__name__} {value!r:.80}")
        return value

    def error(self, name: str, problem: str) -> DataError:
        return DataError(self.where, name, problem)


def read_records(path: str) -> list[Record]:
    """All records of a .jsonl/.json (JSON Lines) or .csv/.tsv file, or of a dataset saved by `datasets`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return _read_dataset(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"data file {path!r} does not exist")
    extension = os.path.splitext(path)[1].lower()
    if extension in (".jsonl", ".json", ".ndjson"):
        records = _read_jsonl(path)
    elif extension in (".csv", ".tsv"):
        records = _read_csv(path, "\t" if extension == ".tsv" else ",")
    else:
        raise SettingError(f"data file {path!r} has extension {extension!r}; allowed: .jsonl, .json, .csv, .tsv "
                           "(or a folder written by datasets' save_to_disk)")
    if not records:
        raise SettingError(f"data file {path!r} holds no records")
    return records


def _lines(path: str):
    """The lines of a UTF-8 file (without a byte order mark), decoded one at a time, so a line that is not
    UTF-8 is a DataError naming the file and the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(Where(path, number), "(record)", f"not UTF-8 text (byte {err.start + 1} of the line "
                                                                 f"is {raw[err.start]:#04x}); only UTF-8 files are "
                                                                 "read") from None


def _read_jsonl(path: str) -> list[Record]:
    records = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = Where(path, number)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(where, "(record)", f"not valid JSON: {err.msg} at column {err.colno}") from None
        if not isinstance(value, dict):
            raise DataError(where, "(record)", f"expected a JSON object, got {type(value).__name__}")
        records.append(Record(value, where))
    return records


def _cell(text: str):
    """A CSV cell as a value: JSON for lists/objects, a number when it reads as one, else the text."""
    stripped = text.strip()
    if stripped == "":
        return None
    if stripped[0] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    for number in (int, float):
        try:
            return number(stripped)
        except ValueError:
            pass
    return text


# The longest CSV cell read (csv's own limit is 128 KiB; a long document in a cell is data, not an error).
CSV_CELL_LIMIT = 64 << 20


def _read_csv(path: str, delimiter: str) -> list[Record]:
    records = []
    reader = csv.DictReader(_lines(path), delimiter=delimiter)
    limit = csv.field_size_limit(CSV_CELL_LIMIT)
    try:
        for row in _csv_rows(reader, path):
            where = Where(path, reader.line_num)
            if None in row:
                raise DataError(where, "(record)", f"has more cells than the header's {len(reader.fieldnames)}")
            records.append(Record({k: _cell(v) if v is not None else None for k, v in row.items()}, where,
                                  texts={k: v for k, v in row.items() if v is not None and v.strip()}))
    finally:
        csv.field_size_limit(limit)
    return records


def _csv_rows(reader: csv.DictReader, path: str):
    """The reader's rows; csv's own errors (a cell past CSV_CELL_LIMIT, a stray quote) as DataErrors."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem = (f"a cell is longer than {CSV_CELL_LIMIT >> 20} MiB, the longest read" if "field larger" in
                       str(err) else f"not valid CSV ({err})")
            raise DataError(Where(path, reader.line_num), "(record)", problem) from None


def _read_dataset(path: str) -> list[Record]:
    try:
        import datasets  # optional: only needed for folders written by datasets' save_to_disk
    except ImportError:
        raise SettingError(f"{path!r} is a folder; reading a saved dataset needs the optional `datasets` package "
                           "(pip install datasets), or pass a .jsonl/.csv file") from None
    dataset = datasets.load_from_disk(path)
    if isinstance(dataset, datasets.DatasetDict):
        raise SettingError(f"{path!r} holds splits {list(dataset)}; pass the folder of one split")
    return [Record(dict(row), Where(path, i, "row")) for i, row in enumerate(dataset)]
