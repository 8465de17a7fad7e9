"""BatchEncoding, the tokenizer's output: model inputs with tensors on demand and token/char/word alignment."""

from __future__ import annotations

from collections import namedtuple
from typing import Optional

from ..errors import SettingError

TENSOR_TYPES = ("pt", "np")

CharSpan = namedtuple("CharSpan", ["start", "end"])
TokenSpan = namedtuple("TokenSpan", ["start", "end"])


class BatchEncoding(dict):
    """The output of the tokenizer: a dict of model inputs with attribute access and token/char/word alignment.

    Alignment methods (word_ids, char_to_token, ...) take a batch index first when the output holds several
    sequences, as in transformers.
    """

    def __init__(self, data=None, encodings=None, tensor_type: Optional[str] = None, id_to_token=None):
        super().__init__(data or {})
        self._encodings = encodings
        self._id_to_token = id_to_token
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        if isinstance(key, str):
            return super().__getitem__(key)
        if self._encodings is None:
            raise KeyError(f"{key!r}: integer indexing needs the encodings of a tokenizer call")
        if isinstance(key, slice):
            return BatchEncoding({k: v[key] for k, v in self.items()}, self._encodings[key], None, self._id_to_token)
        return self._encodings[key]

    def __reduce__(self):
        # Pickle (as DataLoader workers do) the data and encodings, not the whole tokenizer behind tokens().
        return BatchEncoding, (dict(self), self._encodings)

    @property
    def data(self) -> dict:
        return dict(self)

    @property
    def encodings(self):
        """The `tokenizers.Encoding` of each row, or None for outputs built by `pad()`."""
        return self._encodings

    def convert_to_tensors(self, tensor_type: Optional[str]) -> "BatchEncoding":
        """Turn every value into a "pt" (torch) or "np" (numpy) array, in place."""
        if tensor_type is None:
            return self
        check_tensor_type(tensor_type)
        if tensor_type == "pt":
            import torch

            convert = lambda value: value if isinstance(value, torch.Tensor) else torch.tensor(value)  # noqa: E731
        else:
            import numpy as np

            convert = np.asarray
        for key, value in self.items():
            try:
                self[key] = convert(value)
            except (ValueError, TypeError) as err:
                raise SettingError(
                    f"cannot make a tensor of {key!r}: its sequences have different lengths. Pass padding=True "
                    "(and truncation=True for texts longer than max_length) to get rectangular batches."
                ) from err
        return self

    def to(self, device, non_blocking: bool = False) -> "BatchEncoding":
        """Move every torch tensor to `device` (in place) and return self."""
        for key, value in self.items():
            if hasattr(value, "to") and callable(value.to):
                self[key] = value.to(device, non_blocking=non_blocking)
        return self

    def _encoding(self, batch_index: int):
        if not self._encodings:
            raise SettingError("alignment methods need the encodings of a tokenizer call (pad() output has none)")
        return self._encodings[batch_index]

    def _index(self, batch_or_index: int, index: Optional[int]):
        # transformers' convention: f(i) means (batch 0, i); f(b, i) means (batch b, i).
        return (0, batch_or_index) if index is None else (batch_or_index, index)

    def _token_index(self, batch_index: int, token_index: int) -> int:
        return token_index + len(self._encoding(batch_index)) if token_index < 0 else token_index

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The vocabulary tokens of a row. (The engine's own `Encoding.tokens` spells a token that strips
        spaces by the text it matched, " <mask>", which is no vocabulary entry: transformers' fast tokenizer
        returns that; the slow one, and this, return "<mask>".)"""
        encoding = self._encoding(batch_index)
        if self._id_to_token is None:  # unpickled: the tokenizer did not travel with the data
            return encoding.tokens
        return [self._id_to_token(index) for index in encoding.ids]

    def word_ids(self, batch_index: int = 0) -> list[Optional[int]]:
        """The word each token comes from (None for special and padding tokens)."""
        return self._encoding(batch_index).word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[Optional[int]]:
        """0 or 1: which text of a pair each token comes from (None for special and padding tokens)."""
        return self._encoding(batch_index).sequence_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        batch_index, token_index = self._index(batch_or_token_index, token_index)
        return self._encoding(batch_index).token_to_sequence(self._token_index(batch_index, token_index))

    def token_to_word(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        batch_index, token_index = self._index(batch_or_token_index, token_index)
        return self._encoding(batch_index).token_to_word(self._token_index(batch_index, token_index))

    def token_to_chars(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[CharSpan]:
        """The (start, end) characters of a token in its text, None for special tokens."""
        batch_index, token_index = self._index(batch_or_token_index, token_index)
        span = self._encoding(batch_index).token_to_chars(self._token_index(batch_index, token_index))
        return CharSpan(*span) if span is not None else None

    def char_to_token(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        """The token holding a character of text `sequence_index` (0 or 1), None for unmapped characters."""
        batch_index, char_index = self._index(batch_or_char_index, char_index)
        return self._encoding(batch_index).char_to_token(char_index, sequence_index)

    def char_to_word(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        batch_index, char_index = self._index(batch_or_char_index, char_index)
        return self._encoding(batch_index).char_to_word(char_index, sequence_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[TokenSpan]:
        batch_index, word_index = self._index(batch_or_word_index, word_index)
        span = self._encoding(batch_index).word_to_tokens(word_index, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[CharSpan]:
        batch_index, word_index = self._index(batch_or_word_index, word_index)
        span = self._encoding(batch_index).word_to_chars(word_index, sequence_index)
        return CharSpan(*span) if span is not None else None


def check_tensor_type(value) -> None:
    if value not in TENSOR_TYPES:
        raise SettingError(f"return_tensors={value!r} is not supported; use 'pt' (torch), 'np' (numpy) or None")


def to_python(value):
    """Lists/ints from torch tensors and numpy arrays (and lists of them)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "tolist"):
        return [item.tolist() for item in value]
    return value


def tensor_type_of(ids) -> Optional[str]:
    """"pt" or "np" when pad() receives torch tensors or numpy arrays, to hand back the same kind."""
    first = ids[0] if isinstance(ids, (list, tuple)) and ids else ids
    module = type(first).__module__
    if module.startswith("torch"):
        return "pt"
    if module.startswith("numpy"):
        return "np"
    return None
