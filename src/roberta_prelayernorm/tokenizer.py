"""RoBERTa's byte-level BPE tokenizer on the `tokenizers` Rust engine, with transformers' tokenizer API.

`RobertaPreLayerNormTokenizer` reads and writes the same files as transformers' `RobertaTokenizerFast`
(tokenizer.json, or vocab.json + merges.txt with tokenizer_config.json and special_tokens_map.json) and gives
the same ids, masks and offsets: both drive one `tokenizers.Tokenizer` built the same way. Only the Python
layer around it (argument handling, BatchEncoding, loading and saving) lives here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections import namedtuple
from typing import Iterable, Optional, Sequence, Union

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from .files import atomic_write_text
from .hub import CheckpointNotFoundError, pop_hub_kwargs, resolve_file

logger = logging.getLogger(__name__)

__all__ = [
    "AutoTokenizer",
    "BatchEncoding",
    "CharSpan",
    "RobertaPreLayerNormTokenizer",
    "TokenSpan",
    "train_byte_level_bpe",
]

# transformers' "no limit" model_max_length, kept identical so saved configs round-trip between the two.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)

# Same order as transformers' SPECIAL_TOKENS_ATTRIBUTES: it decides all_special_tokens' order and the ids
# special tokens missing from the vocabulary get.
SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
ROBERTA_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
TENSOR_TYPES = ("pt", "np")
FILES = {
    "tokenizer_file": "tokenizer.json",
    "vocab_file": "vocab.json",
    "merges_file": "merges.txt",
    "config": "tokenizer_config.json",
    "special_tokens_map": "special_tokens_map.json",
    "added_tokens": "added_tokens.json",
}
# tokenizer_config.json keys that are options of this class; other keys (tokenizer_class, errors, auto_map...)
# concern other tokenizers or are fixed here.
CONFIG_OPTIONS = (
    "model_max_length",
    "padding_side",
    "truncation_side",
    "clean_up_tokenization_spaces",
    "add_prefix_space",
    "trim_offsets",
    "additional_special_tokens",
) + SPECIAL_TOKENS_ATTRIBUTES
# from_pretrained arguments transformers users pass that mean nothing here (this tokenizer is always "fast").
IGNORED_KWARGS = ("use_fast", "trust_remote_code")

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
        _check_tensor_type(tensor_type)
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
                raise ValueError(
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
            raise ValueError("alignment methods need the encodings of a tokenizer call (pad() output has none)")
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


def _special_token_property(attribute: str):
    def get(self) -> Optional[str]:
        return self._special_tokens.get(attribute)

    def set(self, value) -> None:
        self._special_tokens[attribute] = None if value is None else str(value)

    return property(get, set, doc=f"The {attribute.replace('_', ' ')} (a string), or None.")


def _special_token_id_property(attribute: str):
    def get(self) -> Optional[int]:
        token = self._special_tokens.get(attribute)
        return None if token is None else self.convert_tokens_to_ids(token)

    return property(get, doc=f"The id of the {attribute.replace('_', ' ')}, or None.")


class RobertaPreLayerNormTokenizer:
    """RoBERTa's byte-level BPE tokenizer with the API of transformers' `RobertaTokenizerFast`.

    Build it with `from_pretrained` (a folder or hub id), from files (`vocab_file` + `merges_file`, or
    `tokenizer_file`), or around a `tokenizers.Tokenizer` (`tokenizer_object`). Inputs made of
    pre-split words (`is_split_into_words=True`) work without `add_prefix_space=True`: each word is tokenized
    as if a space preceded it, like the slow RobertaTokenizer does.
    """

    model_input_names = ["input_ids", "attention_mask"]
    is_fast = True

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_token_id_property("bos_token")
    eos_token_id = _special_token_id_property("eos_token")
    unk_token_id = _special_token_id_property("unk_token")
    sep_token_id = _special_token_id_property("sep_token")
    pad_token_id = _special_token_id_property("pad_token")
    cls_token_id = _special_token_id_property("cls_token")
    mask_token_id = _special_token_id_property("mask_token")
    pad_token_type_id = 0

    def __init__(
        self,
        vocab_file: Optional[str] = None,
        merges_file: Optional[str] = None,
        *,
        tokenizer_file: Optional[str] = None,
        tokenizer_object: Optional[Tokenizer] = None,
        added_tokens_decoder: Optional[dict] = None,
        model_max_length: Optional[int] = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        additional_special_tokens: Sequence[Union[str, AddedToken, dict]] = (),
        name_or_path: str = "",
        **special_tokens,
    ):
        unknown = set(special_tokens) - set(SPECIAL_TOKENS_ATTRIBUTES)
        if unknown:
            raise TypeError(
                f"unexpected argument(s) {sorted(unknown)}; special tokens are {list(SPECIAL_TOKENS_ATTRIBUTES)}"
            )
        if tokenizer_object is not None:
            backend = tokenizer_object
        elif tokenizer_file is not None:
            backend = Tokenizer.from_file(os.fspath(tokenizer_file))
        elif vocab_file is not None and merges_file is not None:
            backend = _roberta_backend(*models.BPE.read_file(os.fspath(vocab_file), os.fspath(merges_file)))
        else:
            raise ValueError("give vocab_file and merges_file, tokenizer_file, or tokenizer_object")
        # Truncation and padding are set for each call; a saved tokenizer.json may carry its own.
        backend.no_truncation()
        backend.no_padding()

        self.name_or_path = os.fspath(name_or_path)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.add_prefix_space = bool(add_prefix_space)
        self.trim_offsets = bool(trim_offsets)
        self._tokenizer = _with_prefix_space(backend, self.add_prefix_space, self.trim_offsets)
        self._pretokenized_tokenizer = None  # built on first use, see _backend()
        self._warned_too_long = False

        # Register the tokens the files list (in id order, so new ones get their saved ids), then any special
        # token not registered yet: transformers registers every special token, so "<s>" in a text is one token.
        saved = sorted((added_tokens_decoder or {}).items(), key=lambda item: int(item[0]))
        self._register([_as_added_token(token) for _, token in saved])
        self._special_tokens = {}
        extended = []
        for attribute in SPECIAL_TOKENS_ATTRIBUTES:
            value = special_tokens.get(attribute, ROBERTA_SPECIAL_TOKENS[attribute])
            token = None if value is None else _as_special_token(value, lstrip=attribute == "mask_token")
            self._special_tokens[attribute] = None if token is None else token.content
            if token is not None:
                extended.append(token)
        additional = [_as_special_token(value) for value in additional_special_tokens]
        self.additional_special_tokens = [token.content for token in additional]
        self._register(extended + additional)

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **kwargs) -> "RobertaPreLayerNormTokenizer":
        """Load from a folder or a hub id (hub options: revision, cache_dir, token, local_files_only, ...).

        Other keyword arguments override tokenizer_config.json: model_max_length, padding_side, special tokens...
        """
        hub = pop_hub_kwargs(kwargs)
        for key in IGNORED_KWARGS:
            kwargs.pop(key, None)
        unknown = set(kwargs) - set(CONFIG_OPTIONS)
        if unknown:
            raise TypeError(f"from_pretrained got unexpected argument(s) {sorted(unknown)}; allowed: {CONFIG_OPTIONS}")
        paths = {key: resolve_file(name_or_path, filename, **hub) for key, filename in FILES.items()}
        if paths["tokenizer_file"] is None and (paths["vocab_file"] is None or paths["merges_file"] is None):
            raise CheckpointNotFoundError(
                f"{os.fspath(name_or_path)!r} has no tokenizer: it needs tokenizer.json, or vocab.json and merges.txt"
            )
        config = _read_json(paths["config"])
        tokenizer_class = config.get("tokenizer_class")
        if tokenizer_class and "Roberta" not in tokenizer_class and tokenizer_class != cls.__name__:
            logger.warning(
                "%s's tokenizer_config.json names %s; loading it as RoBERTa's byte-level BPE tokenizer anyway",
                name_or_path,
                tokenizer_class,
            )
        if "max_len" in config:  # transformers' old name
            config.setdefault("model_max_length", config["max_len"])
        options = {key: config[key] for key in CONFIG_OPTIONS if key in config}

        added_tokens = {}
        if "added_tokens_decoder" in config:
            added_tokens = config["added_tokens_decoder"]
        else:
            # Older checkpoints: special tokens (maybe with flags) in special_tokens_map.json, extra tokens in
            # added_tokens.json, handled as transformers does.
            for key, value in _read_json(paths["special_tokens_map"]).items():
                if key in CONFIG_OPTIONS:
                    options[key] = value
            specials = {_content(value) for key, value in options.items() if key in SPECIAL_TOKENS_ATTRIBUTES}
            specials.update(_content(value) for value in options.get("additional_special_tokens", ()))
            for content, index in _read_json(paths["added_tokens"]).items():
                special = content in specials
                added_tokens[index] = AddedToken(
                    content, lstrip=False, rstrip=False, normalized=not special, special=special
                )
        options.update(kwargs)
        if options.get("model_max_length") is None:
            options.pop("model_max_length", None)

        if paths["tokenizer_file"] is not None:
            files = {"tokenizer_file": paths["tokenizer_file"]}
        else:
            files = {"vocab_file": paths["vocab_file"], "merges_file": paths["merges_file"]}
        return cls(**files, added_tokens_decoder=added_tokens, name_or_path=os.fspath(name_or_path), **options)

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> tuple[str, ...]:
        """Write tokenizer.json, vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json.

        transformers' AutoTokenizer and RobertaTokenizer(Fast) load the folder. Each file is replaced atomically.
        """
        save_directory = os.fspath(save_directory)
        os.makedirs(save_directory, exist_ok=True)
        state = json.loads(self._tokenizer.to_str())
        state["truncation"] = state["padding"] = None
        special_map = {
            attribute: _token_dict(self._added_token(token))
            for attribute, token in self._special_tokens.items()
            if token is not None
        }
        if self.additional_special_tokens:
            special_map["additional_special_tokens"] = [
                _token_dict(self._added_token(token)) for token in self.additional_special_tokens
            ]
        config = {
            "tokenizer_class": "RobertaTokenizer",
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "errors": "replace",
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "added_tokens_decoder": {
                str(index): {**_token_dict(token), "special": token.special}
                for index, token in sorted(self._tokenizer.get_added_tokens_decoder().items())
            },
            **{attribute: token for attribute, token in self._special_tokens.items() if token is not None},
            "additional_special_tokens": list(self.additional_special_tokens),
        }
        written = []
        for filename, payload in (
            ("tokenizer.json", state),
            ("tokenizer_config.json", config),
            ("special_tokens_map.json", special_map),
        ):
            target = os.path.join(save_directory, filename)
            atomic_write_text(target, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
            written.append(target)
        # The model writes vocab.json and merges.txt itself (the format transformers' slow tokenizer reads);
        # write them into a temporary folder beside the target and move them in.
        staging = tempfile.mkdtemp(prefix=".tmp-tokenizer-", dir=save_directory)
        try:
            for path in self._tokenizer.model.save(staging):
                target = os.path.join(save_directory, os.path.basename(path))
                os.replace(path, target)
                written.append(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return tuple(written)

    # ---------------------------------------------------------------- vocabulary

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The `tokenizers.Tokenizer` doing the work."""
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the BPE vocabulary, without added tokens (as in transformers)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def get_added_vocab(self) -> dict[str, int]:
        return {token.content: index for index, token in sorted(self._tokenizer.get_added_tokens_decoder().items())}

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def special_tokens_map(self) -> dict:
        """Special token attributes that are set, as in transformers: {"bos_token": "<s>", ...}."""
        mapping = {attribute: token for attribute, token in self._special_tokens.items() if token is not None}
        if self.additional_special_tokens:
            mapping["additional_special_tokens"] = list(self.additional_special_tokens)
        return mapping

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [token for token in self._special_tokens.values() if token is not None]
        return list(dict.fromkeys(tokens + list(self.additional_special_tokens)))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens: Union[None, str, Iterable[str]]):
        """Id of a token (or ids of a list of tokens); unknown tokens give unk_token_id."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> Optional[int]:
        index = self._tokenizer.token_to_id(token)
        if index is None and self.unk_token is not None:
            return self._tokenizer.token_to_id(self.unk_token)
        return index

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of an id (or tokens of a list of ids); None for ids outside the vocabulary."""
        ids = _to_python(ids)
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._tokenizer.id_to_token(int(index)) for index in ids if index not in skip]

    def add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """Add tokens (str or tokenizers.AddedToken) to the vocabulary; returns how many were new."""
        if not new_tokens:
            return 0
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        before = len(self)
        if special_tokens:
            self._tokenizer.add_special_tokens(list(new_tokens))
        else:
            self._tokenizer.add_tokens(list(new_tokens))
        self._pretokenized_tokenizer = None
        return len(self) - before

    def add_special_tokens(self, special_tokens_dict: dict, replace_additional_special_tokens: bool = True) -> int:
        """Set special tokens ({"pad_token": "[PAD]", "additional_special_tokens": [...]}) and add them to the
        vocabulary; returns how many tokens were new."""
        tokens = []
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"additional_special_tokens must be a list of tokens, got {value!r}")
                new = [_as_special_token(token) for token in value]
                names = [token.content for token in new]
                if replace_additional_special_tokens:
                    self.additional_special_tokens = names
                else:
                    self.additional_special_tokens += [n for n in names if n not in self.additional_special_tokens]
                tokens += new
            elif key in SPECIAL_TOKENS_ATTRIBUTES:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"{key} must be a str or tokenizers.AddedToken, got {value!r}")
                token = _as_special_token(value)
                self._special_tokens[key] = token.content
                tokens.append(token)
            else:
                raise ValueError(
                    f"unknown special token key {key!r}; allowed: {list(SPECIAL_TOKENS_ATTRIBUTES)} and "
                    "'additional_special_tokens'"
                )
        return self.add_tokens(tokens, special_tokens=True)

    def _register(self, tokens: Sequence[AddedToken]) -> None:
        # Re-adding a registered token would overwrite the flags its file gave it (lstrip...), so skip those.
        known = {token.content for token in self._tokenizer.get_added_tokens_decoder().values()}
        for token in tokens:
            if token.content not in known:
                known.add(token.content)
                self.add_tokens([token], special_tokens=token.special)

    def _added_token(self, content: str) -> AddedToken:
        for token in self._tokenizer.get_added_tokens_decoder().values():
            if token.content == content:
                return token
        return AddedToken(content, special=True)

    # ---------------------------------------------------------------- encoding

    def __call__(
        self,
        text,
        text_pair=None,
        *,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text, a pair of texts, or a batch of either, as transformers' tokenizers do.

        `text` is a str, a list of str (a batch; or one pre-split text with is_split_into_words=True) or a
        list of lists of str (a batch of pre-split texts); `text_pair` has the same form. A single input gives
        lists of ints, a batch gives lists of lists; return_tensors="pt" or "np" gives 2-D arrays.
        """
        _check_text("text", text, is_split_into_words)
        if text_pair is not None:
            _check_text("text_pair", text_pair, is_split_into_words)
        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))
        if batched:
            if text_pair is not None and (isinstance(text_pair, str) or len(text_pair) != len(text)):
                raise ValueError(
                    f"text is a batch of {len(text)}, so text_pair must be a list of the same length; got "
                    f"{'a str' if isinstance(text_pair, str) else f'a list of {len(text_pair)}'}"
                )
            inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
        else:
            # Unlike transformers' fast tokenizer, an empty text_pair ("") still makes a pair, as in the slow one.
            inputs = [(text, text_pair) if text_pair is not None else text]
        return self._encode(
            inputs,
            batched=batched,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
            verbose=verbose,
        )

    def encode_plus(self, text, text_pair=None, **kwargs) -> BatchEncoding:
        """transformers' older name for calling the tokenizer on one input."""
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs, **kwargs) -> BatchEncoding:
        """transformers' older batch API: a list of texts or of (text, text_pair) tuples."""
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(f"batch_text_or_text_pairs must be a list or tuple, got {type(batch_text_or_text_pairs)}")
        pairs = [item for item in batch_text_or_text_pairs if isinstance(item, tuple)]
        if pairs and len(pairs) != len(batch_text_or_text_pairs):
            raise ValueError("batch_text_or_text_pairs mixes texts and (text, text_pair) tuples")
        if pairs:
            return self([a for a, _ in pairs], [b for _, b in pairs], **kwargs)
        if not batch_text_or_text_pairs:  # with is_split_into_words, [] alone would read as one empty text
            kwargs = {**kwargs, "is_split_into_words": False}
        return self(list(batch_text_or_text_pairs), **kwargs)

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, **kwargs) -> list[int]:
        """The input_ids of one text (or pair)."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def tokenize(self, text: str, pair: Optional[str] = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        """The BPE tokens (byte-level strings, "Ġ" for a space) of a text; the ids are
        convert_tokens_to_ids(tokenize(text)), which transformers' fast tokenizer breaks for "a <mask>"."""
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    def _encode(
        self,
        inputs: list,
        *,
        batched: bool,
        add_special_tokens: bool,
        padding,
        truncation,
        max_length: Optional[int],
        stride: int,
        is_split_into_words: bool,
        pad_to_multiple_of: Optional[int],
        padding_side: Optional[str],
        return_tensors: Optional[str],
        return_token_type_ids: Optional[bool],
        return_attention_mask: Optional[bool],
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
        verbose: bool,
    ) -> BatchEncoding:
        if return_tensors is not None:
            _check_tensor_type(return_tensors)
        if not isinstance(stride, int) or stride < 0:
            raise ValueError(f"stride must be an int >= 0, got {stride!r}")
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of, verbose)
        side = _check_side("padding_side", padding_side) if padding_side is not None else self.padding_side
        has_pair = any(isinstance(item, tuple) for item in inputs)
        if truncation != "do_not_truncate":
            added = self.num_special_tokens_to_add(pair=has_pair) if add_special_tokens else 0
            if max_length <= added:
                raise ValueError(
                    f"max_length={max_length} leaves no room for text: it must be larger than the {added} special "
                    "tokens added to each sequence"
                )
            if stride >= max_length - added:
                raise ValueError(
                    f"stride={stride} must be smaller than max_length={max_length} minus the {added} special tokens "
                    f"({max_length - added}): each overflowing window moves by max_length - specials - stride tokens"
                )

        backend = self._backend(is_split_into_words)
        if return_overflowing_tokens and has_pair and truncation in ("only_first", "only_second"):
            self._check_room_past_stride(backend, inputs, truncation, max_length, stride, added, is_split_into_words)
        if truncation == "do_not_truncate":
            backend.no_truncation()
        else:
            backend.enable_truncation(max_length, stride=stride, strategy=truncation, direction=self.truncation_side)
        if padding == "do_not_pad":
            backend.no_padding()
        else:
            backend.enable_padding(
                direction=side,
                pad_id=self.pad_token_id,
                pad_type_id=self.pad_token_type_id,
                pad_token=self.pad_token,
                length=max_length if padding == "max_length" else None,
                pad_to_multiple_of=pad_to_multiple_of,
            )
        try:
            encodings = backend.encode_batch(
                inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
            )
        except BaseException as err:  # the Rust engine raises plain Exceptions for impossible truncations...
            if type(err).__name__ == "PanicException":  # ...and panics when a window has no room past stride
                raise ValueError(
                    f"stride={stride} leaves no room for the text being cut: with truncation={truncation!r} and "
                    f"max_length={max_length}, each window holds no more than stride tokens of it (the other "
                    "text and the special tokens take the rest); lower stride or raise max_length"
                ) from None
            if "Truncation error" not in str(err):
                raise
            raise ValueError(
                f"truncation={truncation!r} with max_length={max_length} cannot be applied to this input "
                f"({err}); use truncation='longest_first', or 'only_second'/'only_first' with pairs whose chosen "
                "text is long enough to cut"
            ) from None

        if return_overflowing_tokens:
            rows = [(sample, row) for sample, e in enumerate(encodings) for row in [e, *e.overflowing]]
            sample_of_row = [sample for sample, _ in rows]
            encodings = [row for _, row in rows]
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        data = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in encodings]
        if return_length:
            data["length"] = [len(e.ids) for e in encodings]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_of_row

        if max_length is None and verbose and data["input_ids"]:
            self._warn_if_too_long(max(len(ids) for ids in data["input_ids"]))
        if not batched and return_tensors is None and not return_overflowing_tokens:
            # One input: drop the batch axis of every key, "length" included (an int, as in the slow tokenizer;
            # transformers' fast one leaves it as [n]).
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, encodings, return_tensors, self._tokenizer.id_to_token)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of, verbose):
        """Normalise padding/truncation/max_length as transformers' _get_padding_truncation_strategies does."""
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be an int >= 0 or None, got {max_length!r}")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be an int >= 1 or None, got {pad_to_multiple_of!r}")
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
            raise ValueError(f"padding={padding!r} is not valid; use True, False or one of {PADDING_STRATEGIES}")
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation is None:
            truncation = "do_not_truncate"
        elif truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(
                f"truncation={truncation!r} is not valid; use True, False or one of {TRUNCATION_STRATEGIES}"
            )
        padding, truncation = str(padding), str(truncation)  # transformers' str enums compare equal; plain str here

        unlimited = self.model_max_length > LARGE_INTEGER
        if max_length is None and padding == "max_length":
            if unlimited:
                raise ValueError(
                    "padding='max_length' needs a length: pass max_length=, or load the tokenizer with "
                    "model_max_length= (this one has no model_max_length)"
                )
            max_length = self.model_max_length
        if max_length is None and truncation != "do_not_truncate":
            if unlimited:
                if verbose:
                    logger.warning(
                        "Asking to truncate to max_length but no maximum length is provided and the model has no "
                        "predefined maximum length. Default to no truncation."
                    )
                truncation = "do_not_truncate"
            else:
                max_length = self.model_max_length
        if padding != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None):
            raise ValueError(
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
            raise ValueError(
                f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
                f"pad_to_multiple_of={pad_to_multiple_of}"
            )
        return padding, truncation, max_length

    def _warn_if_too_long(self, length: int) -> None:
        if length > self.model_max_length and self.model_max_length != 0 and not self._warned_too_long:
            self._warned_too_long = True  # once per tokenizer, as transformers does
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({length} > {self.model_max_length}). Running this sequence through the model will result "
                "in indexing errors"
            )

    def _backend(self, is_split_into_words: bool) -> Tokenizer:
        if not is_split_into_words or self.add_prefix_space:
            return self._tokenizer
        # Pre-split words are each tokenized as if a space preceded them (the slow RobertaTokenizer's behaviour
        # and the fast one's with add_prefix_space=True, which otherwise refuses such input): a copy of the
        # backend with add_prefix_space on, rebuilt after the vocabulary changes.
        if self._pretokenized_tokenizer is None:
            self._pretokenized_tokenizer = _with_prefix_space(
                Tokenizer.from_str(self._tokenizer.to_str()), True, self.trim_offsets
            )
        return self._pretokenized_tokenizer

    def pad(
        self,
        encoded_inputs,
        padding: Union[bool, str] = True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_attention_mask: Optional[bool] = None,
        return_tensors: Optional[str] = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encodings to one length: a dict of (lists of) ids, or a list of such dicts (a collator's input).

        Pads input_ids (pad_token_id), attention_mask (0), token_type_ids (0), special_tokens_mask (1) and
        offset_mapping ((0, 0)); other keys are left as they are. Tensor inputs give tensors of the same kind.
        """
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], dict):
            encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0]}
        if not isinstance(encoded_inputs, dict) or "input_ids" not in encoded_inputs:
            keys = list(encoded_inputs.keys()) if isinstance(encoded_inputs, dict) else type(encoded_inputs).__name__
            raise ValueError(f"pad() needs an encoding or list of encodings with input_ids; got {keys}")
        if return_tensors is None:
            return_tensors = _tensor_type_of(encoded_inputs["input_ids"])
        elif return_tensors is not None:
            _check_tensor_type(return_tensors)
        inputs = {key: _to_python(value) for key, value in encoded_inputs.items()}
        padding, _, max_length = self._strategies(padding, False, max_length, pad_to_multiple_of, verbose)
        side = _check_side("padding_side", padding_side) if padding_side is not None else self.padding_side
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        ids = inputs["input_ids"]
        single = not ids or not isinstance(ids[0], (list, tuple))
        rows = [inputs] if single else [{key: value[i] for key, value in inputs.items()} for i in range(len(ids))]
        if not single and any(len(value) != len(ids) for value in inputs.values()):
            raise ValueError("pad(): the values of the encodings have different batch sizes")
        if padding == "longest":
            max_length = max((len(row["input_ids"]) for row in rows), default=0)
        if padding != "do_not_pad" and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length += pad_to_multiple_of - max_length % pad_to_multiple_of
        fill = {
            "input_ids": self.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
        }
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
        data = padded[0] if single else {key: [row[key] for row in padded] for key in padded[0]} if padded else inputs
        return BatchEncoding(data, tensor_type=return_tensors)

    # ---------------------------------------------------------------- decoding

    def decode(
        self,
        token_ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        **kwargs,
    ) -> str:
        """Text of a list of ids (or a 1-D tensor/array, or one id)."""
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        text = self._tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)
        return self._clean_up(text, clean_up_tokenization_spaces)

    def batch_decode(
        self,
        sequences,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        **kwargs,
    ) -> list[str]:
        """Texts of a batch of id sequences (list of lists, or a 2-D tensor/array)."""
        sequences = [list(ids) if not isinstance(ids, int) else [ids] for ids in _to_python(sequences)]
        texts = self._tokenizer.decode_batch(sequences, skip_special_tokens=skip_special_tokens)
        return [self._clean_up(text, clean_up_tokenization_spaces) for text in texts]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._tokenizer.decoder.decode(tokens)

    def _clean_up(self, text: str, clean_up_tokenization_spaces: Optional[bool]) -> str:
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    @staticmethod
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

    # ---------------------------------------------------------------- helpers for hand-built inputs

    @staticmethod
    def _check_room_past_stride(backend, inputs, truncation, max_length, stride, added, is_split_into_words):
        """With only_first/only_second windows, the text kept whole must leave more than `stride` tokens for
        the text being cut (the Rust engine panics otherwise)."""
        kept = [item[1 if truncation == "only_first" else 0] for item in inputs if isinstance(item, tuple)]
        backend.no_truncation()
        backend.no_padding()
        for item, encoding in zip(kept, backend.encode_batch(kept, add_special_tokens=False,
                                                             is_pretokenized=is_split_into_words)):
            room = max_length - added - len(encoding.ids)
            if stride >= room:
                raise ValueError(
                    f"stride={stride} leaves no room for the text being cut: with truncation={truncation!r} and "
                    f"max_length={max_length}, {item!r} and the {added} special tokens leave {max(room, 0)} "
                    "tokens per window; stride must be smaller (or max_length larger)"
                )

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None):
        """<s> A </s>, or <s> A </s></s> B </s>."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where build_inputs_with_special_tokens puts (or, with already_has_special_tokens, where the ids hold)
        a special token."""
        if already_has_special_tokens:
            special = set(self.all_special_ids)
            return [1 if index in special else 0 for index in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1, 1] + [0] * len(token_ids_1) + [1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"len={len(self)}, model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"special_tokens={self.special_tokens_map})"
        )


class AutoTokenizer:
    """Stand-in for transformers' AutoTokenizer: `from_pretrained` returns a RobertaPreLayerNormTokenizer."""

    def __init__(self):
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(name_or_path)")

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs) -> RobertaPreLayerNormTokenizer:
        return RobertaPreLayerNormTokenizer.from_pretrained(name_or_path, **kwargs)


def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2
) -> RobertaPreLayerNormTokenizer:
    """Train a RoBERTa-style byte-level BPE vocabulary on `texts` (for demos and tests without downloads).

    Ids: <s>=0, <pad>=1, </s>=2, <unk>=3, then the 256 byte symbols and the learned merges, and <mask> last
    (id vocab_size - 1), the layout of RoBERTa's own vocabulary.
    """
    from tokenizers import trainers

    if vocab_size < 261:
        raise ValueError(f"vocab_size={vocab_size} is too small: 4 special tokens + 256 bytes + <mask> need 261")
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        min_frequency=min_frequency,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    learner.train_from_iterator(texts, trainer=trainer)
    model = json.loads(learner.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab["<mask>"] = len(vocab)
    # tokenizers serialises merges as ["a", "b"] pairs (0.20+) or "a b" strings (older).
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return RobertaPreLayerNormTokenizer(tokenizer_object=_roberta_backend(vocab, merges))


# -------------------------------------------------------------------- module helpers


def _roberta_backend(vocab: dict, merges: list) -> Tokenizer:
    """The pipeline transformers' RobertaConverter builds from vocab.json + merges.txt."""
    backend = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    sep, cls = vocab.get("</s>"), vocab.get("<s>")
    if sep is not None and cls is not None:
        # sep and cls positionally: tokenizers 0.23 renamed the keyword `cls` to `cls_token`
        backend.post_processor = processors.RobertaProcessing(
            ("</s>", sep), ("<s>", cls), add_prefix_space=False, trim_offsets=True
        )
    return backend


def _with_prefix_space(backend: Tokenizer, add_prefix_space: bool, trim_offsets: bool) -> Tokenizer:
    """Set add_prefix_space (pre-tokenizer, post-processor) and trim_offsets (post-processor) where the
    pipeline has them, as transformers does when it loads a tokenizer with these options."""
    state = json.loads(backend.to_str())
    changed = False

    def update(component: Optional[dict], values: dict) -> None:
        nonlocal changed
        if not component:
            return
        for key, value in values.items():
            if key in component and component[key] != value:
                component[key] = value
                changed = True
        for child in component.get("pretokenizers", []) + component.get("processors", []):
            update(child, values)

    update(state.get("pre_tokenizer"), {"add_prefix_space": add_prefix_space})
    update(state.get("post_processor"), {"add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets})
    return Tokenizer.from_str(json.dumps(state)) if changed else backend


def _as_special_token(value, lstrip: bool = False) -> AddedToken:
    """A special AddedToken from a str (transformers' RoBERTa flags), a saved dict, or an AddedToken."""
    if isinstance(value, AddedToken):
        return AddedToken(
            value.content,
            single_word=value.single_word,
            lstrip=value.lstrip,
            rstrip=value.rstrip,
            normalized=value.normalized,
            special=True,
        )
    if isinstance(value, dict):
        return AddedToken(**{**{k: v for k, v in value.items() if k != "__type"}, "special": True})
    if isinstance(value, str):
        # RoBERTa's mask token eats the space before it ("a <mask>" -> "a", "<mask>") and is matched on raw text.
        return AddedToken(value, lstrip=lstrip, rstrip=False, normalized=not lstrip, special=True)
    raise ValueError(f"a special token must be a str, dict or tokenizers.AddedToken, got {value!r}")


def _as_added_token(value) -> AddedToken:
    if isinstance(value, AddedToken):
        return value
    # Older transformers configs tag saved tokens with "__type": "AddedToken".
    return AddedToken(**{key: item for key, item in value.items() if key != "__type"})


def _content(value) -> str:
    if isinstance(value, dict):
        return value["content"]
    return value.content if isinstance(value, AddedToken) else str(value)


def _token_dict(token: AddedToken) -> dict:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
    }


def _read_json(path: Optional[str]) -> dict:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _check_side(name: str, value: str) -> str:
    if value not in ("right", "left"):
        raise ValueError(f"{name}={value!r} is not valid; use 'right' or 'left'")
    return value


def _check_tensor_type(value) -> None:
    if value not in TENSOR_TYPES:
        raise ValueError(f"return_tensors={value!r} is not supported; use 'pt' (torch), 'np' (numpy) or None")


def _check_text(name: str, value, is_split_into_words: bool) -> None:
    if isinstance(value, str):
        if is_split_into_words:
            raise ValueError(
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
    raise ValueError(
        f"{name} must be a str (one text), list[str] (a batch, or one pre-split text with "
        f"is_split_into_words=True) or list[list[str]] (a batch of pre-split texts); got {type(value).__name__}"
    )


def _to_python(value):
    """Lists/ints from torch tensors and numpy arrays (and lists of them)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "tolist"):
        return [item.tolist() for item in value]
    return value


def _tensor_type_of(ids) -> Optional[str]:
    """"pt" or "np" when pad() receives torch tensors or numpy arrays, to hand back the same kind."""
    first = ids[0] if isinstance(ids, (list, tuple)) and ids else ids
    module = type(first).__module__
    if module.startswith("torch"):
        return "pt"
    if module.startswith("numpy"):
        return "np"
    return None
