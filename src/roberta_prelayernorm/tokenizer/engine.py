"""The driver of the `tokenizers` Rust engine: one configured backend per truncation/padding setting, the
call into it, and its errors as one-line ValueErrors naming the arguments."""

from __future__ import annotations

from typing import Optional

from tokenizers import Tokenizer

from ..errors import SettingError
from .formats import with_prefix_space
from .request import EncodeRequest, Strategies, window_room

# Configured backends kept per tokenizer; a new setting beyond this drops the oldest.
MAX_CONFIGURED = 16


class Engine:
    """Runs encode_batch on copies of one backend, each configured once for one (pre-split input,
    truncation, padding) setting and never changed after: a call never alters what another call sees.

    `backend` is the tokenizer's own `tokenizers.Tokenizer`, which stays without truncation and padding;
    call `reset()` after changing its vocabulary.
    """

    def __init__(self, backend: Tokenizer, trim_offsets: bool):
        self.backend = backend
        self.trim_offsets = trim_offsets
        self._configured: dict[tuple, Tokenizer] = {}

    def reset(self) -> None:
        self._configured.clear()

    def __getstate__(self) -> dict:
        # The configured copies are a cache: left out, so a pickle (and datasets' fingerprint of a map that uses
        # the tokenizer) is the same before and after calls.
        return {**self.__dict__, "_configured": {}}

    def configured(self, prefix_space: bool, truncation: Optional[tuple] = None, padding: Optional[tuple] = None):
        """The backend for a setting: `prefix_space` for pre-split words (each tokenized as if a space preceded
        it, the slow RobertaTokenizer's behaviour), `truncation` and `padding` as enable_* keywords (items)."""
        key = (prefix_space, truncation, padding)
        if key == (False, None, None):
            return self.backend
        backend = self._configured.get(key)
        if backend is None:
            backend = Tokenizer.from_str(self.backend.to_str())
            if prefix_space:
                backend = with_prefix_space(backend, True, self.trim_offsets)
            if truncation is not None:
                backend.enable_truncation(**dict(truncation))
            if padding is not None:
                backend.enable_padding(**dict(padding))
            if len(self._configured) >= MAX_CONFIGURED:
                self._configured.pop(next(iter(self._configured)))
            self._configured[key] = backend
        return backend

    def encode(self, inputs: list, request: EncodeRequest, strategies: Strategies, *, prefix_space: bool,
               truncation_side: str, padding_side: str, pad: Optional[tuple]) -> list:
        """The `tokenizers.Encoding` of each input (overflowing windows attached to their first row).

        `pad` is (pad_id, pad_type_id, pad_token) where the strategies pad."""
        truncation = padding = None
        if strategies.truncation != "do_not_truncate":
            truncation = (("max_length", strategies.max_length), ("stride", request.stride),
                          ("strategy", strategies.truncation), ("direction", truncation_side))
        if strategies.padding != "do_not_pad":
            length = strategies.max_length if strategies.padding == "max_length" else None
            padding = (("direction", padding_side), ("pad_id", pad[0]), ("pad_type_id", pad[1]),
                       ("pad_token", pad[2]), ("length", length), ("pad_to_multiple_of", request.pad_to_multiple_of))
        backend = self.configured(prefix_space, truncation, padding)
        try:
            return backend.encode_batch(
                inputs, add_special_tokens=request.add_special_tokens, is_pretokenized=request.is_split_into_words
            )
        except BaseException as err:  # the Rust engine raises plain Exceptions for impossible truncations...
            # ...and panics where a window has no room past the stride that check_room_past_stride cannot
            # foresee (longest_first shares the room between both texts by the engine's own rule).
            if type(err).__name__ == "PanicException":
                raise SettingError(
                    f"stride={request.stride} leaves no room for the text being cut: with truncation="
                    f"{strategies.truncation!r} and max_length={strategies.max_length}, each window holds no more "
                    "than stride tokens of it (the other text and the special tokens take the rest); lower stride "
                    "or raise max_length"
                ) from None
            if "Truncation error" not in str(err):
                raise
            raise SettingError(
                f"truncation={strategies.truncation!r} with max_length={strategies.max_length} cannot be applied to "
                f"this input ({err}); use truncation='longest_first', or 'only_second'/'only_first' with pairs whose "
                "chosen text is long enough to cut"
            ) from None

    def check_room_past_stride(self, inputs: list, request: EncodeRequest, strategies: Strategies, *,
                               prefix_space: bool, special_tokens: int) -> None:
        """With only_first/only_second windows, the text kept whole must leave more than `stride` tokens for
        the text being cut."""
        truncation, max_length, stride = strategies.truncation, strategies.max_length, request.stride
        kept = [item[1 if truncation == "only_first" else 0] for item in inputs if isinstance(item, tuple)]
        encodings = self.configured(prefix_space).encode_batch(
            kept, add_special_tokens=False, is_pretokenized=request.is_split_into_words
        )
        for item, encoding in zip(kept, encodings):
            room = window_room(max_length, special_tokens, len(encoding.ids))
            if stride >= room:
                raise SettingError(
                    f"stride={stride} leaves no room for the text being cut: with truncation={truncation!r} and "
                    f"max_length={max_length}, {item!r} and the {special_tokens} special tokens leave "
                    f"{max(room, 0)} tokens per window; stride must be smaller (or max_length larger)"
                )


def model_inputs(encodings: list, request: EncodeRequest, model_input_names: list) -> tuple[dict, list]:
    """The output keys a request asks for (a list per key, a row per encoding and window), and the rows."""
    if request.return_overflowing_tokens:
        rows = [(sample, row) for sample, e in enumerate(encodings) for row in [e, *e.overflowing]]
        sample_of_row = [sample for sample, _ in rows]
        encodings = [row for _, row in rows]
    return_token_type_ids, return_attention_mask = request.return_token_type_ids, request.return_attention_mask
    if return_token_type_ids is None:
        return_token_type_ids = "token_type_ids" in model_input_names
    if return_attention_mask is None:
        return_attention_mask = "attention_mask" in model_input_names
    data = {"input_ids": [e.ids for e in encodings]}
    if return_token_type_ids:
        data["token_type_ids"] = [e.type_ids for e in encodings]
    if return_attention_mask:
        data["attention_mask"] = [e.attention_mask for e in encodings]
    if request.return_special_tokens_mask:
        data["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
    if request.return_offsets_mapping:
        data["offset_mapping"] = [e.offsets for e in encodings]
    if request.return_length:
        data["length"] = [len(e.ids) for e in encodings]
    if request.return_overflowing_tokens:
        data["overflow_to_sample_mapping"] = sample_of_row
    return data, encodings


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces English word tokenizers put before punctuation and contractions (transformers')."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text
