"""RobertaPreLayerNormConfig: the hyper-parameters of a model, read from and written to config.json.

Field names and defaults are those of transformers' RobertaPreLayerNormConfig, so a config.json written by
either library loads in the other. Keys this class does not know are kept as attributes and written back.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from .errors import SettingError
from .hub import WEIGHT_FILES, CheckpointNotFoundError, pop_hub_kwargs, resolve_file, resolve_first

CONFIG_NAME = "config.json"
MODEL_TYPE = "roberta-prelayernorm"

ACTIVATIONS = ("gelu", "gelu_python", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh", "quick_gelu")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
DTYPES = ("float32", "float16", "bfloat16", "float64", "auto")

# Fields every config.json of this model family carries (written always, like transformers does).
MODEL_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "classifier_dropout": None,
}

# Generic fields shared by all transformers configs: written only when they differ from these defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    "is_decoder": False,
    "add_cross_attention": False,
    "problem_type": None,
    "architectures": None,
    "torch_dtype": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
    "tie_word_embeddings": True,
    "chunk_size_feed_forward": 0,
    "pruned_heads": {},
    "finetuning_task": None,
    "sep_token_id": None,
    "decoder_start_token_id": None,
    "tokenizer_class": None,
    "is_encoder_decoder": False,
}

# This package's own fields (transformers keeps them as unknown keys): written only when they differ from these.
# sparse_prediction (ModernBERT's convention): with labels, ForMaskedLM predicts only the labelled positions.
PACKAGE_DEFAULTS: dict[str, Any] = {
    "sparse_prediction": False,
    "sparse_pred_ignore_index": -100,
}

# Bounds on a config's sizes, far above any checkpoint of the family (the largest is 24 x 1024, 50,265 tokens,
# 514 positions): a value past them is a typo, refused before it allocates terabytes or loops for hours.
SIZE_BOUNDS = {"vocab_size": 1 << 22, "hidden_size": 1 << 16, "intermediate_size": 1 << 18,
               "num_hidden_layers": 1024, "num_attention_heads": 1 << 12, "max_position_embeddings": 1 << 20,
               "type_vocab_size": 1 << 16}
MAX_PARAMETERS = 10**11

# transformers >= 4.56 writes "dtype"; older releases (and this package) write "torch_dtype".
KEY_ALIASES = {"dtype": "torch_dtype"}
# Written by transformers' save but not part of a model's description.
NOT_SAVED = ("_name_or_path", "_commit_hash", "_attn_implementation", "_attn_implementation_autoset")


def max_sequence_length(config) -> int:
    """The most tokens one sequence may have: the position table's rows, less RoBERTa's offset (positions
    start at pad_token_id + 1). Tokenizers that know no limit of their own get this one (see
    tokenizer.fit_to_model)."""
    return config.max_position_embeddings - (config.pad_token_id or 0) - 1


class RobertaPreLayerNormConfig:
    """Configuration of a RoBERTa-PreLayerNorm model; keyword arguments override the defaults.

    `num_labels` (default 2) sets `id2label`/`label2id` to LABEL_0..; passing `id2label` sets `num_labels`.
    """

    model_type = MODEL_TYPE
    # Read by transformers' pipelines: the hub revision it came from, and per-task generation settings.
    _commit_hash = None
    task_specific_params = None

    def __init__(self, **kwargs):
        for alias, key in KEY_ALIASES.items():
            if alias in kwargs:
                value = kwargs.pop(alias)
                kwargs.setdefault(key, value)
        for key, default in {**MODEL_DEFAULTS, **COMMON_DEFAULTS, **PACKAGE_DEFAULTS}.items():
            setattr(self, key, copy.deepcopy(kwargs.pop(key, default)))
        kwargs.pop("model_type", None)
        num_labels = kwargs.pop("num_labels", None)
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        if id2label is not None:
            self.id2label = {int(k): v for k, v in dict(id2label).items()}
            if num_labels is not None and num_labels != len(self.id2label):
                raise SettingError(
                    f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} labels"
                )
        else:
            self.num_labels = 2 if num_labels is None else num_labels
        if label2id is not None:
            self.label2id = {k: int(v) for k, v in dict(label2id).items()}
        else:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.pruned_heads = {int(k): list(v) for k, v in (self.pruned_heads or {}).items()}
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.validate()

    # -- labels ---------------------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SettingError(f"num_labels must be a positive int, got {value!r}")
        if getattr(self, "id2label", None) is None or len(self.id2label) != value:
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        return bool(self.return_dict)

    @property
    def dtype(self):
        return self.torch_dtype

    # -- validation -----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field, its value and what is allowed, for an impossible config."""

        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingError(f"config.{name} must be a positive int, got {value!r}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads:
            raise SettingError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of config.num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise SettingError(f"config.{name} must be a number in [0, 1], got {value!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise SettingError(f"config.{name} must be a positive number, got {value!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise SettingError(f"config.hidden_act={self.hidden_act!r} is not supported; use one of {ACTIVATIONS}")
        if self.position_embedding_type != "absolute":
            raise SettingError(
                f"config.position_embedding_type={self.position_embedding_type!r} is not supported; this package "
                "implements 'absolute' (the type of every published RoBERTa-PreLayerNorm checkpoint)"
            )
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise SettingError(f"config.id2label must have the keys 0..{len(self.id2label) - 1} (one per class, in "
                               f"order), got {sorted(self.id2label)}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise SettingError(f"config.problem_type={self.problem_type!r} is not one of {PROBLEM_TYPES} or None")
        if self.add_cross_attention and not self.is_decoder:
            raise SettingError("config.add_cross_attention=True needs config.is_decoder=True")
        if self.pruned_heads:
            raise SettingError(f"config.pruned_heads={self.pruned_heads!r}: pruned checkpoints are not supported")
        if self.torch_dtype is not None and str(self.torch_dtype).replace("torch.", "") not in DTYPES:
            raise SettingError(f"config.torch_dtype={self.torch_dtype!r} is not one of {DTYPES} or None")
        if not isinstance(self.sparse_prediction, bool):
            raise SettingError(f"config.sparse_prediction must be true or false, got {self.sparse_prediction!r}")
        if not isinstance(self.sparse_pred_ignore_index, int) or isinstance(self.sparse_pred_ignore_index, bool):
            raise SettingError(f"config.sparse_pred_ignore_index must be an int, got {self.sparse_pred_ignore_index!r}")
        pad = self.pad_token_id
        if pad is not None and (not isinstance(pad, int) or not 0 <= pad < self.vocab_size):
            raise SettingError(f"config.pad_token_id must be an int in [0, vocab_size={self.vocab_size}), got {pad!r}")
        if pad is not None and pad + 1 >= self.max_position_embeddings:
            raise SettingError(
                f"config.max_position_embeddings ({self.max_position_embeddings}) leaves no room for positions: "
                f"RoBERTa positions start at pad_token_id + 1 = {pad + 1}"
            )
        self.check_types()
        self.check_sizes()

    def check_types(self) -> None:
        """Each known field of its default's type: config.json's "is_decoder": "false" is a string, which Python
        would take as true (and run a causal mask)."""
        for name, default in {**MODEL_DEFAULTS, **COMMON_DEFAULTS, **PACKAGE_DEFAULTS}.items():
            value = getattr(self, name)
            if default is None or (value is None and name.endswith("_token_id")):
                continue
            kinds = (int, float) if type(default) is float else type(default)
            if isinstance(value, bool) != (type(default) is bool) or not isinstance(value, kinds):
                allowed = {bool: "true or false", int: "an int", float: "a number", str: "a string",
                           dict: "an object"}[type(default)]
                raise SettingError(f"config.{name} must be {allowed}, got {type(value).__name__} {value!r:.80}")

    def check_sizes(self) -> None:
        """Sizes within bounds before anything is allocated: a config's typo (a vocabulary of 10^12, 10^9
        layers) would otherwise try to allocate terabytes, or build layers for hours, before a weight is read."""
        for name, bound in SIZE_BOUNDS.items():
            if getattr(self, name) > bound:
                raise SettingError(f"config.{name}={getattr(self, name)} is larger than this package builds (at most "
                                   f"{bound})")
        h = self.hidden_size
        parameters = ((self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h
                      + self.num_hidden_layers * (4 * h * h + 2 * h * self.intermediate_size))
        if parameters > MAX_PARAMETERS:
            raise SettingError(f"config describes about {parameters:.2g} parameters (hidden_size={h}, "
                               f"num_hidden_layers={self.num_hidden_layers}, intermediate_size="
                               f"{self.intermediate_size}, vocab_size={self.vocab_size}), more than this package "
                               f"builds (at most {MAX_PARAMETERS:.0e})")

    # -- dict / JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every field, JSON-ready (id2label keys as strings, as in config.json)."""
        out = {key: copy.deepcopy(value) for key, value in vars(self).items() if key not in NOT_SAVED}
        out["model_type"] = self.model_type
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        if out.get("torch_dtype") is not None:
            out["torch_dtype"] = str(out["torch_dtype"]).replace("torch.", "")
        return dict(sorted(out.items()))

    def to_diff_dict(self) -> dict:
        """What config.json holds: model fields always, generic fields only where they differ from defaults."""
        out = self.to_dict()
        default_labels = {str(i): f"LABEL_{i}" for i in range(2)}
        if out["id2label"] == default_labels and out["label2id"] == {v: int(k) for k, v in default_labels.items()}:
            del out["id2label"], out["label2id"]
        for key, default in {**COMMON_DEFAULTS, **PACKAGE_DEFAULTS}.items():
            if key in out and out[key] == default:
                del out[key]
        return out

    def to_json_string(self, use_diff: bool = True) -> str:
        return json.dumps(self.to_diff_dict() if use_diff else self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, config_dict: dict, **overrides) -> "RobertaPreLayerNormConfig":
        model_type = config_dict.get("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise SettingError(
                f"config model_type is {model_type!r}, but this package implements {MODEL_TYPE!r} models only"
            )
        config = cls(**config_dict)
        config.update(overrides)
        return config

    def update(self, values: dict) -> None:
        """Set fields as from_pretrained's overrides do (num_labels=3 re-labels), then validate."""
        for key, value in values.items():
            setattr(self, KEY_ALIASES.get(key, key), value)
        if "id2label" in values:
            self.id2label = {int(k): v for k, v in dict(values["id2label"]).items()}
            if "label2id" not in values:
                self.label2id = {v: k for k, v in self.id2label.items()}
        self.validate()

    def __eq__(self, other) -> bool:
        return isinstance(other, RobertaPreLayerNormConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    @classmethod
    def coerce(cls, config) -> "RobertaPreLayerNormConfig":
        """`config` itself, or this package's copy of a transformers RobertaPreLayerNormConfig (read through
        its to_diff_dict, what its config.json would hold; no transformers import); TypeError for the rest."""
        if isinstance(config, cls):
            return config
        if getattr(config, "model_type", None) == MODEL_TYPE and callable(getattr(config, "to_diff_dict", None)):
            converted = cls.from_dict(config.to_diff_dict())
            converted._name_or_path = getattr(config, "_name_or_path", "")
            return converted
        raise TypeError(
            f"config must be a RobertaPreLayerNormConfig (this package's or transformers'), got {type(config).__name__}"
        )

    # -- files ----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs) -> "RobertaPreLayerNormConfig":
        """Load config.json from a folder or hub id; remaining keyword arguments override its values."""
        hub_kwargs = pop_hub_kwargs(kwargs)
        path = resolve_file(name_or_path, CONFIG_NAME, **hub_kwargs)
        if path is None:

            if resolve_first(name_or_path, WEIGHT_FILES, **hub_kwargs)[1] is not None:
                raise CheckpointNotFoundError(
                    f"{name_or_path!r} has weights but no {CONFIG_NAME}: a bare state dict, as transformers' Trainer "
                    "saves models it does not know; train with roberta_prelayernorm.integrations.Trainer, or "
                    "write the config beside the weights with model.config.save_pretrained(folder)"
                )
            raise CheckpointNotFoundError(f"{name_or_path!r} has no {CONFIG_NAME}")
        return cls.from_json_file(path, **kwargs)

    @classmethod
    def from_json_file(cls, path, **overrides) -> "RobertaPreLayerNormConfig":
        try:
            with open(path, encoding="utf-8") as f:
                config_dict = json.load(f)
        except json.JSONDecodeError as err:
            raise SettingError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(config_dict, dict):
            raise SettingError(f"{path} must hold a JSON object, got {type(config_dict).__name__}")
        try:
            return cls.from_dict(config_dict, **overrides)
        except (TypeError, ValueError) as err:
            raise SettingError(f"{path}: {err}") from None

    def save_pretrained(self, save_directory) -> None:
        """Write config.json into `save_directory`, atomically (one file: no need to swap the whole folder)."""
        from .files import atomic_write_text

        os.makedirs(save_directory, exist_ok=True)
        atomic_write_text(os.path.join(save_directory, CONFIG_NAME), self.to_json_string())

