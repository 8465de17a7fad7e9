"""RoBERTa's byte-level BPE tokenizer on the `tokenizers` Rust engine, with transformers' tokenizer API.

`RobertaPreLayerNormTokenizer` reads and writes the same files as transformers' `RobertaTokenizerFast`
(tokenizer.json, or vocab.json + merges.txt with tokenizer_config.json and special_tokens_map.json) and gives
the same ids, masks and offsets: both drive one `tokenizers.Tokenizer` built the same way. Only the Python
layer around it lives here:

    tokenizer.py       the tokenizer class (vocabulary, encode, pad, decode), AutoTokenizer
    special_tokens.py  the special-token registry the class inherits
    request.py         one call's arguments as an EncodeRequest, resolved to padding/truncation strategies;
                       the room a window has past its stride
    engine.py          the driver of the Rust engine and the model inputs it returns
    padding.py         pad() of encodings in Python
    encoding.py        BatchEncoding, the output
    formats.py         the files, read and written as transformers does
"""

from .encoding import BatchEncoding, CharSpan, TokenSpan
from .request import window_room
from .tokenizer import AutoTokenizer, RobertaPreLayerNormTokenizer, fit_to_model, train_byte_level_bpe

__all__ = [
    "AutoTokenizer",
    "BatchEncoding",
    "CharSpan",
    "RobertaPreLayerNormTokenizer",
    "TokenSpan",
    "fit_to_model",
    "train_byte_level_bpe",
    "window_room",
]
