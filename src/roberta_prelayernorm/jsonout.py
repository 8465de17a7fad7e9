"""JSON as the package writes it: strict (RFC 8259), so any reader takes it. Python's json writes NaN and
infinities as the bare words NaN and Infinity, which are not JSON; here they are written as null. JSON Lines
records (`line`) stay one line for every reader."""

from __future__ import annotations

import json
import math


def finite(value):
    """`value` with every float that is NaN or infinite (in lists, tuples and dicts) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value, **kwargs) -> str:
    """json.dumps of `value` with non-finite floats as null (allow_nan=False: anything else non-finite fails)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


# Characters JSON may leave raw in a string but that some readers split lines at (Python's str.splitlines,
# JavaScript's line terminators); json.dumps(ensure_ascii=False) escapes every other control character.
LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def line(value) -> str:
    """One JSON Lines record (no newline): readable UTF-8, with the line-break characters JSON leaves raw escaped,
    so that every reader sees one record a line; the same value as dumps(value)."""
    text = dumps(value, ensure_ascii=False)
    for raw, escaped in LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text
