"""pad(): encodings padded to one length in Python (the engine pads only what it encodes itself)."""

from __future__ import annotations

from typing import Optional

from ..errors import SettingError
from .request import Strategies


def pad_inputs(inputs: dict, strategies: Strategies, pad_to_multiple_of: Optional[int], side: str, fill: dict,
               return_attention_mask: bool) -> dict:
    """`inputs` (a dict of lists of ids, or of lists of such lists) padded on `side`: each key in `fill` with its
    value; an attention_mask of ones added if asked and missing. Other keys are left as they are."""
    padding, max_length = strategies.padding, strategies.max_length
    ids = inputs["input_ids"]
    single = not ids or not isinstance(ids[0], (list, tuple))
    rows = [inputs] if single else [{key: value[i] for key, value in inputs.items()} for i in range(len(ids))]
    if not single and any(len(value) != len(ids) for value in inputs.values()):
        raise SettingError("pad(): the values of the encodings have different batch sizes")
    if padding == "longest":
        max_length = max((len(row["input_ids"]) for row in rows), default=0)
    if padding != "do_not_pad" and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
        max_length += pad_to_multiple_of - max_length % pad_to_multiple_of
    padded = []
    for row in rows:
        row = dict(row)
        length = len(row["input_ids"])
        if return_attention_mask and "attention_mask" not in row:
            row["attention_mask"] = [1] * length
        missing = max_length - length if padding != "do_not_pad" else 0
        for key, value in fill.items():
            if key in row and missing > 0:
                pads = [value] * missing
                row[key] = list(row[key]) + pads if side == "right" else pads + list(row[key])
        padded.append(row)
    if single:
        return padded[0]
    return {key: [row[key] for row in padded] for key in padded[0]} if padded else inputs
