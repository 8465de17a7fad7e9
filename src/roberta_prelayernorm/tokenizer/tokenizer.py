"""RoBERTa's byte-level BPE tokenizer on the `tokenizers` Rust engine, with transformers' tokenizer API.

The class keeps the special tokens and the vocabulary and answers transformers' methods; the files live in
formats.py, the resolution of a call's arguments in request.py, the engine calls in engine.py.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable, Optional, Sequence, Union

from tokenizers import AddedToken, Tokenizer

from ..errors import SettingError
from .encoding import BatchEncoding, check_tensor_type, tensor_type_of, to_python
from .engine import Engine, clean_up_tokenization, model_inputs
from .formats import (
    read_backend,
    read_pretrained,
    train_backend,
    with_prefix_space,
    write_pretrained,
)
from .special_tokens import SpecialTokensMixin
from .padding import pad_inputs
from .request import VERY_LARGE_INTEGER, EncodeRequest, batch_inputs, check_side, check_window, resolve

logger = logging.getLogger(__name__)


class RobertaPreLayerNormTokenizer(SpecialTokensMixin):
    """RoBERTa's byte-level BPE tokenizer with the API of transformers' `RobertaTokenizerFast`.

    Build it with `from_pretrained` (a folder or hub id), from files (`vocab_file` + `merges_file`, or
    `tokenizer_file`), or around a `tokenizers.Tokenizer` (`tokenizer_object`). Inputs made of
    pre-split words (`is_split_into_words=True`) work without `add_prefix_space=True`: each word is tokenized
    as if a space preceded it, like the slow RobertaTokenizer does.
    """

    model_input_names = ["input_ids", "attention_mask"]
    is_fast = True

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
        self._check_special_tokens(special_tokens)
        backend = read_backend(vocab_file, merges_file, tokenizer_file, tokenizer_object)
        self.name_or_path = os.fspath(name_or_path)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = check_side("padding_side", padding_side)
        self.truncation_side = check_side("truncation_side", truncation_side)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.add_prefix_space = bool(add_prefix_space)
        self.trim_offsets = bool(trim_offsets)
        self._tokenizer = with_prefix_space(backend, self.add_prefix_space, self.trim_offsets)
        self._engine = Engine(self._tokenizer, self.trim_offsets)
        self._warned_too_long = False

        self._init_special_tokens(special_tokens, additional_special_tokens, added_tokens_decoder)

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **kwargs) -> "RobertaPreLayerNormTokenizer":
        """Load from a folder or a hub id (hub options: revision, cache_dir, token, local_files_only, ...).

        Other keyword arguments override tokenizer_config.json: model_max_length, padding_side, special tokens...
        """
        return cls(**read_pretrained(name_or_path, kwargs, cls.__name__))

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> tuple[str, ...]:
        """Write tokenizer.json, vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json.

        transformers' AutoTokenizer and RobertaTokenizer(Fast) load the folder. The folder is
        replaced whole (files already there are kept), so a crash leaves the previous folder intact.
        """
        options = {
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
        }
        return write_pretrained(
            os.fspath(save_directory), self._tokenizer, options, self._special_tokens, self.additional_special_tokens
        )

    def __getstate__(self) -> dict:
        # Without the once-per-tokenizer warning flag: the pickled state (datasets hashes it to fingerprint a map)
        # must not change when the tokenizer is used.
        return {**self.__dict__, "_warned_too_long": False}

    def push_to_hub(self, repo_id: str, commit_message: Optional[str] = None, private: Optional[bool] = None,
                    token=None, create_pr: bool = False, revision: Optional[str] = None):
        """Upload the tokenizer files to the hub repo `repo_id` (created if missing); returns the commit info."""
        import tempfile

        from ..hub import upload_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            return upload_folder(folder, repo_id, commit_message=commit_message or "Upload tokenizer",
                                 private=private, token=token, create_pr=create_pr, revision=revision)

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

    def _convert_id_to_token(self, index: int) -> Optional[str]:
        """The token of one id (None past the vocabulary), as transformers' fast tokenizers answer."""
        return self._tokenizer.id_to_token(int(index))

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of an id (or tokens of a list of ids); None for ids outside the vocabulary."""
        ids = to_python(ids)
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
        self._engine.reset()
        return len(self) - before

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
        inputs, batched = batch_inputs(text, text_pair, is_split_into_words)
        return self._encode(inputs, batched, EncodeRequest.of(locals()))

    def encode_plus(self, text, text_pair=None, **kwargs) -> BatchEncoding:
        """transformers' older name for calling the tokenizer on one input."""
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs, **kwargs) -> BatchEncoding:
        """transformers' older batch API: a list of texts or of (text, text_pair) tuples."""
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(f"batch_text_or_text_pairs must be a list or tuple, got {type(batch_text_or_text_pairs)}")
        pairs = [item for item in batch_text_or_text_pairs if isinstance(item, tuple)]
        if pairs and len(pairs) != len(batch_text_or_text_pairs):
            raise SettingError("batch_text_or_text_pairs mixes texts and (text, text_pair) tuples")
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

    def _encode(self, inputs: list, batched: bool, request: EncodeRequest) -> BatchEncoding:
        if request.return_tensors is not None:
            check_tensor_type(request.return_tensors)
        stride = request.stride
        if not isinstance(stride, int) or stride < 0:
            raise SettingError(f"stride must be an int >= 0, got {stride!r}")
        strategies = self._strategies(
            request.padding, request.truncation, request.max_length, request.pad_to_multiple_of, request.verbose
        )
        truncation, max_length = strategies.truncation, strategies.max_length
        side = self.padding_side if request.padding_side is None else check_side("padding_side", request.padding_side)
        has_pair = any(isinstance(item, tuple) for item in inputs)
        if truncation != "do_not_truncate":
            added = self.num_special_tokens_to_add(pair=has_pair) if request.add_special_tokens else 0
            check_window(max_length, stride, added)

        # Pre-split words are each tokenized as if a space preceded them (the slow RobertaTokenizer's behaviour
        # and the fast one's with add_prefix_space=True, which otherwise refuses such input).
        prefix_space = request.is_split_into_words and not self.add_prefix_space
        if request.return_overflowing_tokens and has_pair and truncation in ("only_first", "only_second"):
            self._engine.check_room_past_stride(
                inputs, request, strategies, prefix_space=prefix_space, special_tokens=added
            )
        encodings = self._engine.encode(
            inputs,
            request,
            strategies,
            prefix_space=prefix_space,
            truncation_side=self.truncation_side,
            padding_side=side,
            pad=None if strategies.padding == "do_not_pad" else (self.pad_token_id, self.pad_token_type_id,
                                                                   self.pad_token),
        )
        data, encodings = model_inputs(encodings, request, self.model_input_names)
        if max_length is None and request.verbose and data["input_ids"]:
            self._warn_if_too_long(max(len(ids) for ids in data["input_ids"]))
        if not batched and request.return_tensors is None and not request.return_overflowing_tokens:
            # One input: drop the batch axis of every key, "length" included (an int, as in the slow tokenizer;
            # transformers' fast one leaves it as [n]).
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, encodings, request.return_tensors, self._tokenizer.id_to_token)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of, verbose):
        return resolve(
            padding,
            truncation,
            max_length,
            pad_to_multiple_of,
            verbose,
            model_max_length=self.model_max_length,
            has_pad_token=lambda: self.pad_token is not None and self.pad_token_id is not None,
        )

    def _warn_if_too_long(self, length: int) -> None:
        if length > self.model_max_length and self.model_max_length != 0 and not self._warned_too_long:
            self._warned_too_long = True  # once per tokenizer, as transformers does
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({length} > {self.model_max_length}). Running this sequence through the model will result "
                "in indexing errors"
            )

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
            raise SettingError(f"pad() needs an encoding or list of encodings with input_ids; got {keys}")
        if return_tensors is None:
            return_tensors = tensor_type_of(encoded_inputs["input_ids"])
        elif return_tensors is not None:
            check_tensor_type(return_tensors)
        inputs = {key: to_python(value) for key, value in encoded_inputs.items()}
        strategies = self._strategies(padding, False, max_length, pad_to_multiple_of, verbose)
        side = check_side("padding_side", padding_side) if padding_side is not None else self.padding_side
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        fill = {
            "input_ids": self.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
        }
        data = pad_inputs(inputs, strategies, pad_to_multiple_of, side, fill, return_attention_mask)
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
        token_ids = to_python(token_ids)
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
        sequences = [list(ids) if not isinstance(ids, int) else [ids] for ids in to_python(sequences)]
        texts = self._tokenizer.decode_batch(sequences, skip_special_tokens=skip_special_tokens)
        return [self._clean_up(text, clean_up_tokenization_spaces) for text in texts]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._tokenizer.decoder.decode(tokens)

    def _clean_up(self, text: str, clean_up_tokenization_spaces: Optional[bool]) -> str:
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    clean_up_tokenization = staticmethod(clean_up_tokenization)

    # ---------------------------------------------------------------- helpers for hand-built inputs

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


def fit_to_model(tokenizer, config) -> None:
    """Lower the tokenizer's model_max_length to what the model takes (config.max_sequence_length), so that
    truncation, stride windows and a saved tokenizer_config.json follow the model. A tokenizer without a limit
    (1e30, unset) gets the model's; a smaller limit of its own is kept."""
    from ..config import max_sequence_length

    tokenizer.model_max_length = min(tokenizer.model_max_length, max_sequence_length(config))


def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2, model_max_length: int = 512
) -> RobertaPreLayerNormTokenizer:
    """Train a RoBERTa-style byte-level BPE vocabulary on `texts` (for demos and tests without downloads).

    Ids: <s>=0, <pad>=1, </s>=2, <unk>=3, then the 256 byte symbols and the learned merges, and <mask> last
    (id vocab_size - 1), the layout of RoBERTa's own vocabulary. `model_max_length` (default 512, as RoBERTa's
    own tokenizer records) is saved with it; pipelines and training lower it to a smaller model's length.
    """
    return RobertaPreLayerNormTokenizer(tokenizer_object=train_backend(texts, vocab_size, min_frequency),
                                        model_max_length=model_max_length)
