"""The tokenizer's files: tokenizer.json, or vocab.json + merges.txt with tokenizer_config.json,
special_tokens_map.json and added_tokens.json, read and written as transformers' RobertaTokenizer(Fast) does;
and the `tokenizers` pipeline RoBERTa's vocabulary runs in."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Iterable, Optional

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from ..errors import SettingError
from ..files import atomic_folder, atomic_write_text, read_json_object
from ..hub import CheckpointNotFoundError, pop_hub_kwargs, read_one_save, resolve_file

logger = logging.getLogger(__name__)

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
FILES = {
    "tokenizer_file": "tokenizer.json",
    "vocab_file": "vocab.json",
    "merges_file": "merges.txt",
    "config": "tokenizer_config.json",
    "special_tokens_map": "special_tokens_map.json",
    "added_tokens": "added_tokens.json",
}
# Where checkpoints older than tokenizer_config.json's added_tokens_decoder keep their special and added tokens.
OLDER_FILES = ("special_tokens_map", "added_tokens")
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


def read_pretrained(name_or_path, kwargs: dict, class_name: str) -> dict:
    """The constructor arguments of the tokenizer in a folder or hub id; `kwargs` (hub options and
    tokenizer_config.json overrides) as from_pretrained received them."""
    hub = pop_hub_kwargs(kwargs)
    for key in IGNORED_KWARGS:
        kwargs.pop(key, None)
    unknown = set(kwargs) - set(CONFIG_OPTIONS)
    if unknown:
        raise TypeError(f"from_pretrained got unexpected argument(s) {sorted(unknown)}; allowed: {CONFIG_OPTIONS}")

    def read(source, hub_kwargs):  # every file of one save (hub.read_one_save), as the model's config and weights
        paths = {key: resolve_file(source, filename, **hub_kwargs) for key, filename in FILES.items()}
        if paths["tokenizer_file"] is None and (paths["vocab_file"] is None or paths["merges_file"] is None):
            raise CheckpointNotFoundError(f"{os.fspath(name_or_path)!r} has no tokenizer: it needs tokenizer.json, "
                                          "or vocab.json and merges.txt")
        config = read_json(paths["config"])
        check_config(paths["config"], config)
        # The backend is read here too, not by the constructor from paths that may hold a later save by then.
        backend = read_files(paths["tokenizer_file"], paths["vocab_file"], paths["merges_file"])
        older = "added_tokens_decoder" not in config  # only older checkpoints' tokens are in the other two files
        return config, *(read_json(paths[key] if older else None) for key in OLDER_FILES), backend

    config, special_tokens_map, added_tokens_file, backend = read_one_save(name_or_path, hub, read)
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class and "Roberta" not in tokenizer_class and tokenizer_class != class_name:
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
        for key, value in special_tokens_map.items():
            if key in CONFIG_OPTIONS:
                options[key] = value
        specials = {content(value) for key, value in options.items() if key in SPECIAL_TOKENS_ATTRIBUTES}
        specials.update(content(value) for value in options.get("additional_special_tokens", ()))
        for text, index in added_tokens_file.items():
            special = text in specials
            added_tokens[index] = AddedToken(text, lstrip=False, rstrip=False, normalized=not special, special=special)
    options.update(kwargs)
    if options.get("model_max_length") is None:
        options.pop("model_max_length", None)

    return {"tokenizer_object": backend, "added_tokens_decoder": added_tokens, "name_or_path": os.fspath(name_or_path),
            **options}


def write_pretrained(
    save_directory: str, backend: Tokenizer, options: dict, special_tokens: dict, additional_special_tokens: list
) -> tuple[str, ...]:
    """Write tokenizer.json, tokenizer_config.json (with `options`), special_tokens_map.json, vocab.json and
    merges.txt of `backend`. The folder is replaced whole (files already there are kept), so a crash leaves the
    previous folder intact."""
    state = json.loads(backend.to_str())
    state["truncation"] = state["padding"] = None
    special_map = {
        attribute: token_dict(added_token(backend, token))
        for attribute, token in special_tokens.items()
        if token is not None
    }
    if additional_special_tokens:
        special_map["additional_special_tokens"] = [
            token_dict(added_token(backend, token)) for token in additional_special_tokens
        ]
    config = {
        "tokenizer_class": "RobertaTokenizer",
        "add_prefix_space": options["add_prefix_space"],
        "trim_offsets": options["trim_offsets"],
        "errors": "replace",
        "model_max_length": options["model_max_length"],
        "padding_side": options["padding_side"],
        "truncation_side": options["truncation_side"],
        "clean_up_tokenization_spaces": options["clean_up_tokenization_spaces"],
        "added_tokens_decoder": {
            str(index): {**token_dict(token), "special": token.special}
            for index, token in sorted(backend.get_added_tokens_decoder().items())
        },
        **{attribute: token for attribute, token in special_tokens.items() if token is not None},
        "additional_special_tokens": list(additional_special_tokens),
    }
    names = []
    with atomic_folder(save_directory) as folder:
        for filename, payload in (
            ("tokenizer.json", state),
            ("tokenizer_config.json", config),
            ("special_tokens_map.json", special_map),
        ):
            text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(os.path.join(folder, filename), text)
            names.append(filename)
        # The model writes vocab.json and merges.txt itself (the format transformers' slow tokenizer reads);
        # write them into a temporary folder beside the target and move them in.
        staging = tempfile.mkdtemp(prefix=".tmp-tokenizer-", dir=folder)
        try:
            for path in backend.model.save(staging):
                os.replace(path, os.path.join(folder, os.path.basename(path)))
                names.append(os.path.basename(path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return tuple(os.path.join(save_directory, name) for name in names)


def read_backend(vocab_file=None, merges_file=None, tokenizer_file=None, tokenizer_object=None) -> Tokenizer:
    """The `tokenizers.Tokenizer` of an object, a tokenizer.json, or vocab.json + merges.txt, without truncation
    and padding (a saved tokenizer.json may carry its own; the engine sets them for each call)."""
    if tokenizer_object is not None:
        backend = tokenizer_object
    elif tokenizer_file is not None or (vocab_file is not None and merges_file is not None):
        backend = read_files(tokenizer_file, vocab_file, merges_file)
    else:
        raise SettingError("give vocab_file and merges_file, tokenizer_file, or tokenizer_object")
    backend.no_truncation()
    backend.no_padding()
    return backend


def read_files(tokenizer_file, vocab_file, merges_file) -> Tokenizer:
    """The backend from tokenizer.json, else from vocab.json + merges.txt; a file that cannot be read is named."""
    try:
        if tokenizer_file is not None:
            return Tokenizer.from_file(os.fspath(tokenizer_file))
        return roberta_backend(*models.BPE.read_file(os.fspath(vocab_file), os.fspath(merges_file)))
    except Exception as err:  # tokenizers raises plain Exceptions
        bad = tokenizer_file
        if bad is None:
            try:
                read_json(os.fspath(vocab_file))
                bad = merges_file
            except ValueError:
                bad = vocab_file
        raise SettingError(f"cannot read tokenizer file {os.fspath(bad)}: {err} (truncated or corrupt?)") from None


def train_backend(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """A RoBERTa-style byte-level BPE backend trained on `texts` (see train_byte_level_bpe)."""
    from tokenizers import trainers


    if vocab_size < 261:
        raise SettingError(f"vocab_size={vocab_size} is too small: 4 special tokens + 256 bytes + <mask> need 261")
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
    return roberta_backend(vocab, merges)


def roberta_backend(vocab: dict, merges: list) -> Tokenizer:
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


def with_prefix_space(backend: Tokenizer, add_prefix_space: bool, trim_offsets: bool) -> Tokenizer:
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


def as_special_token(value, lstrip: bool = False) -> AddedToken:
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
    raise SettingError(f"a special token must be a str, dict or tokenizers.AddedToken, got {value!r}")


def as_added_token(value) -> AddedToken:
    if isinstance(value, AddedToken):
        return value
    # Older transformers configs tag saved tokens with "__type": "AddedToken".
    return AddedToken(**{key: item for key, item in value.items() if key != "__type"})


def content(value) -> str:
    if isinstance(value, dict):
        return value["content"]
    return value.content if isinstance(value, AddedToken) else str(value)


def token_dict(token: AddedToken) -> dict:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
    }


def read_json(path: Optional[str]) -> dict:
    """A JSON object file's content ({} without the file); ValueError naming the file otherwise."""
    return {} if path is None else read_json_object(path)


def is_token(value) -> bool:
    """A special token as tokenizer files write it: its text, or an AddedToken's dict with its "content"."""
    return isinstance(value, str) or isinstance(value, dict) and isinstance(value.get("content"), str)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# tokenizer_config.json fields: (check, what is allowed); None is allowed for each.
CONFIG_TYPES = {
    "model_max_length": (lambda v: is_number(v) and v > 0, "a positive int"),
    "max_len": (lambda v: is_number(v) and v > 0, "a positive int"),
    "padding_side": (lambda v: isinstance(v, str), "'right' or 'left'"),
    "truncation_side": (lambda v: isinstance(v, str), "'right' or 'left'"),
    "clean_up_tokenization_spaces": (lambda v: isinstance(v, bool), "true or false"),
    "add_prefix_space": (lambda v: isinstance(v, bool), "true or false"),
    "trim_offsets": (lambda v: isinstance(v, bool), "true or false"),
    "tokenizer_class": (lambda v: isinstance(v, str), "a class name"),
    "additional_special_tokens": (lambda v: isinstance(v, list) and all(map(is_token, v)), "a list of tokens"),
    "added_tokens_decoder": (lambda v: isinstance(v, dict) and all(k.isdigit() and is_token(t) for k, t in v.items()),
                             'an object of {"id": token}'),
    **{name: (is_token, "a token (text, or an object with its \"content\")") for name in SPECIAL_TOKENS_ATTRIBUTES},
}


def check_config(path: str, config: dict) -> None:
    """tokenizer_config.json's known fields of their types: ValueError naming the file, field and value."""
    for name, (ok, allowed) in CONFIG_TYPES.items():
        value = config.get(name)
        if value is not None and not ok(value):
            raise SettingError(f"{path}: {name} must be {allowed}, got {type(value).__name__} {value!r:.80}")


def added_token(backend: Tokenizer, text: str) -> AddedToken:
    """The registered AddedToken (with its flags) of `text`, or a plain special one."""
    for token in backend.get_added_tokens_decoder().values():
        if token.content == text:
            return token
    return AddedToken(text, special=True)
