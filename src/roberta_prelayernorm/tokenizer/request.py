"""One tokenizer call as data: the request (its arguments, built once per call) and the pure resolution of
padding, truncation and max_length that transformers' `_get_padding_truncation_strategies` does."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Optional, Union

from ..errors import SettingError

logger = logging.getLogger(__name__)

# transformers' "no limit" model_max_length, kept identical so saved configs round-trip between the two.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


@dataclasses.dataclass
class EncodeRequest:
    """The arguments of one tokenizer call (see RobertaPreLayerNormTokenizer.__call__), read, never changed."""

    add_special_tokens: bool = True
    padding: Union[bool, str, None] = False
    truncation: Union[bool, str, None] = None
    max_length: Optional[int] = None
    stride: int = 0
    is_split_into_words: bool = False
    pad_to_multiple_of: Optional[int] = None
    padding_side: Optional[str] = None
    return_tensors: Optional[str] = None
    return_token_type_ids: Optional[bool] = None
    return_attention_mask: Optional[bool] = None
    return_overflowing_tokens: bool = False
    return_special_tokens_mask: bool = False
    return_offsets_mapping: bool = False
    return_length: bool = False
    verbose: bool = True

    @classmethod
    def of(cls, arguments: dict) -> "EncodeRequest":
        """The request from a call's arguments (its locals()); other names are ignored."""
        return cls(**{name: arguments[name] for name in REQUEST_FIELDS})


REQUEST_FIELDS = tuple(field.name for field in dataclasses.fields(EncodeRequest))


@dataclasses.dataclass(frozen=True)
class Strategies:
    """What a request resolves to: padding and truncation strategies as strings, and the length they use."""

    padding: str
    truncation: str
    max_length: Optional[int]


def resolve(
    padding, truncation, max_length, pad_to_multiple_of, verbose: bool, *, model_max_length: int, has_pad_token
) -> Strategies:
    """Normalise padding/truncation/max_length as transformers' _get_padding_truncation_strategies does.
    `has_pad_token()` tells whether the tokenizer can pad (asked only where padding is on)."""
    if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
        raise SettingError(f"max_length must be an int >= 0 or None, got {max_length!r}")
    if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
        raise SettingError(f"pad_to_multiple_of must be an int >= 1 or None, got {pad_to_multiple_of!r}")
    # transformers' backward compatibility: max_length alone turns truncation on.
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"
    if padding is True:
        if verbose and max_length is not None and truncation in (None, False, "do_not_truncate"):
            warnings.warn(
                "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                "To pad to max length, use `padding='max_length'`."
            )
        padding = "longest"
    elif padding is False or padding is None:
        padding = "do_not_pad"
    elif padding not in PADDING_STRATEGIES:
        raise SettingError(f"padding={padding!r} is not valid; use True, False or one of {PADDING_STRATEGIES}")
    if truncation is True:
        truncation = "longest_first"
    elif truncation is False or truncation is None:
        truncation = "do_not_truncate"
    elif truncation not in TRUNCATION_STRATEGIES:
        raise SettingError(
            f"truncation={truncation!r} is not valid; use True, False or one of {TRUNCATION_STRATEGIES}"
        )
    # transformers' PaddingStrategy / TruncationStrategy are str enums: their values, not str() (which names the
    # member on Python 3.11+)
    padding, truncation = str(getattr(padding, "value", padding)), str(getattr(truncation, "value", truncation))

    unlimited = model_max_length > LARGE_INTEGER
    if max_length is None and padding == "max_length":
        if unlimited:
            raise SettingError(
                "padding='max_length' needs a length: pass max_length=, or load the tokenizer with "
                "model_max_length= (this one has no model_max_length)"
            )
        max_length = model_max_length
    if max_length is None and truncation != "do_not_truncate":
        if unlimited:
            if verbose:
                logger.warning(
                    "Asking to truncate to max_length but no maximum length is provided and the model has no "
                    "predefined maximum length. Default to no truncation."
                )
            truncation = "do_not_truncate"
        else:
            max_length = model_max_length
    if padding != "do_not_pad" and not has_pad_token():
        raise SettingError(
            f"padding={padding!r} needs a pad token and this tokenizer has none: set one with "
            "tokenizer.pad_token = tokenizer.eos_token or tokenizer.add_special_tokens({'pad_token': '<pad>'})"
        )
    if (
        truncation != "do_not_truncate"
        and padding != "do_not_pad"
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of != 0
    ):
        raise SettingError(
            f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
            f"pad_to_multiple_of={pad_to_multiple_of}"
        )
    return Strategies(padding, truncation, max_length)


def batch_inputs(text, text_pair, is_split_into_words: bool) -> tuple[list, bool]:
    """A call's texts as the engine's list of inputs (texts, or (text, text_pair) tuples), and whether the
    call was given a batch."""
    check_text("text", text, is_split_into_words)
    if text_pair is not None:
        check_text("text_pair", text_pair, is_split_into_words)
    if is_split_into_words:
        batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
    else:
        batched = isinstance(text, (list, tuple))
    if batched:
        if text_pair is not None and (isinstance(text_pair, str) or len(text_pair) != len(text)):
            raise SettingError(
                f"text is a batch of {len(text)}, so text_pair must be a list of the same length; got "
                f"{'a str' if isinstance(text_pair, str) else f'a list of {len(text_pair)}'}"
            )
        inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
    else:
        # Unlike transformers' fast tokenizer, an empty text_pair ("") still makes a pair, as in the slow one.
        inputs = [(text, text_pair) if text_pair is not None else text]
    return inputs, batched


def check_window(max_length: int, stride: int, added: int) -> None:
    """Truncation to max_length must leave room for text past the `added` special tokens, and overflowing
    windows must move: stride smaller than that room."""
    if max_length <= added:
        raise SettingError(
            f"max_length={max_length} leaves no room for text: it must be larger than the {added} special "
            "tokens added to each sequence"
        )
    room = window_room(max_length, added, kept_tokens=0)
    if stride >= room:
        raise SettingError(
            f"stride={stride} must be smaller than max_length={max_length} minus the {added} special tokens "
            f"({room}): each overflowing window moves by max_length - specials - stride tokens"
        )


def window_room(max_length: int, special_tokens: int, kept_tokens: int) -> int:
    """Tokens each overflowing window holds of the text being cut, when the other text (`kept_tokens` long)
    and the special tokens are kept whole. Windows move by room - stride tokens, so a stride needs a room
    larger than itself (the Rust engine panics otherwise)."""
    return max_length - special_tokens - kept_tokens


def check_side(name: str, value: str) -> str:
    if value not in ("right", "left"):
        raise SettingError(f"{name}={value!r} is not valid; use 'right' or 'left'")
    return value


def check_text(name: str, value, is_split_into_words: bool) -> None:
    if isinstance(value, str):
        if is_split_into_words:
            raise SettingError(
                f"{name} is a str but is_split_into_words=True expects a list of words (list[str]) or a batch "
                "of them (list[list[str]])"
            )
        return
    if isinstance(value, (list, tuple)):
        first = value[0] if value else ""
        if isinstance(first, str):
            return
        if isinstance(first, (list, tuple)) and (not first or isinstance(first[0], str)):
            return
    raise SettingError(
        f"{name} must be a str (one text), list[str] (a batch, or one pre-split text with "
        f"is_split_into_words=True) or list[list[str]] (a batch of pre-split texts); got {type(value).__name__}"
    )

