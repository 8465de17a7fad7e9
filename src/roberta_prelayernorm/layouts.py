"""Other layouts of this family's weights, mapped onto this package's state-dict keys.

- princeton-nlp's Hugging Face checkpoints (`princeton-nlp/efficient_mlm_m0.xx`): config.json says
  `"model_type": "roberta"`, keys use the prefix `roberta.`, the pre-LayerNorms sit at `attention.LayerNorm`,
  `intermediate.LayerNorm` and the final `roberta.LayerNorm`, and every layer carries an
  `attention.self.LayerNorm` that their modeling file created but never called (DinkyTrain,
  scripts/pre_ln_roberta/modeling_roberta.py). `from_pretrained` reads them through
  `roberta_layout_config` and `roberta_prelayernorm_state`.
- fairseq RoBERTa checkpoints trained with `--encoder-normalize-before` (DinkyTrain), both the plain layout
  (`layers.N.self_attn.q_proj`, ...) and the DeepSpeed transformer-kernel layout (`layers.N.attn_qkvw`, ...);
  the `convert` command reads them through `fairseq_to_family`.

DeepSpeed's kernel names its two LayerNorms for the post-LN order: in DeepSpeed's BertTransformerLayer::Forward
(csrc/transformer/ds_transformer_cuda.cpp) with pre_layer_norm the input is normalised with `norm_w/norm_b`
before the fused QKV projection and the attention residual with `attn_nw/attn_nb` before `inter_w`; DinkyTrain's
scripts/convert_dsfs_ckpt_to_fs_ckpt.py maps them the same way (norm_* -> self_attn_layer_norm, attn_n* ->
final_layer_norm). `attn_qkvw` stacks the query, key and value weights along dim 0 in that order.

Pickled fairseq checkpoints are read by `load_fairseq_checkpoint` without running code: torch's weights-only
unpickler with an explicit allow-list of what such checkpoints contain.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Optional

from .hub import CheckpointError, resolve_file

logger = logging.getLogger("roberta_prelayernorm")

PREFIX = "roberta_prelayernorm"
ARCHITECTURES = {"RobertaForMaskedLM": "RobertaPreLayerNormForMaskedLM", "RobertaModel": "RobertaPreLayerNormModel"}


# -- princeton-nlp's Hugging Face layout ----------------------------------------------------------------
def roberta_layout_config(name_or_path, hub_kwargs: dict) -> Optional[dict]:
    """The config of a checkpoint saved as model_type "roberta" (princeton-nlp's layout), mapped to this
    family's model_type and class names; None for any other model_type (the ordinary loader reads it). Whether
    its weights really are pre-LayerNorm is checked by `roberta_prelayernorm_state`."""
    path = resolve_file(name_or_path, "config.json", **hub_kwargs)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # the ordinary config loader reports it
    if not isinstance(config, dict) or config.get("model_type") != "roberta":
        return None
    config = {**config, "model_type": "roberta-prelayernorm"}
    config["architectures"] = [ARCHITECTURES.get(a, a) for a in config.get("architectures") or []]
    return config


def roberta_prelayernorm_state(state: dict, source: str) -> dict:
    """princeton-nlp keys -> this family's keys, after checking the checkpoint really is pre-LayerNorm; a
    one-line notice says what was done."""
    post_ln = sorted(k for k in state if re.search(r"\.(attention\.output|\d+\.output)\.LayerNorm\.", k))
    if post_ln:
        raise CheckpointError(
            f"{source} is a post-LayerNorm RoBERTa checkpoint (it has {post_ln[0]}), another architecture than "
            "RoBERTa-PreLayerNorm; load it with transformers' RobertaModel classes"
        )
    needed = ("attention.LayerNorm.weight", "intermediate.LayerNorm.weight")
    layers = {m.group(1) for k in state for m in [re.search(r"encoder\.layer\.(\d+)\.", k)] if m}
    missing = [f"encoder.layer.{i}.{n}" for i in sorted(layers, key=int) for n in needed
               if not any(k.endswith(f"encoder.layer.{i}.{n}") for k in state)]
    if not layers or missing or not any(re.fullmatch(r"(roberta\.)?LayerNorm\.weight", k) for k in state):
        raise CheckpointError(
            f"{source} says model_type 'roberta' but lacks the pre-LayerNorm weights (attention.LayerNorm, "
            f"intermediate.LayerNorm, final LayerNorm){': ' + ', '.join(missing[:4]) if missing else ''}"
        )
    mapped = {
        (PREFIX + key[len("roberta"):] if key.startswith("roberta.") else key): value
        for key, value in state.items()
        if not re.search(r"\.attention\.self\.LayerNorm\.(weight|bias)$", key)
    }
    logger.warning("%s: princeton-nlp pre-LayerNorm RoBERTa layout (model_type 'roberta'), loaded as "
                   "roberta-prelayernorm (prefix 'roberta.' renamed, %d unused attention.self.LayerNorm "
                   "tensors dropped)", source, len(state) - len(mapped))
    return mapped


# -- reading pickled fairseq checkpoints ----------------------------------------------------------------
def allowed_globals() -> list:
    """What fairseq checkpoints pickle besides tensors and plain containers: their settings
    (argparse.Namespace) and numpy scalars/arrays in the training state. numpy 1 and 2 name the
    reconstruction functions differently (numpy.core / numpy._core), so both names are allowed."""
    import argparse

    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed = [argparse.Namespace, np.ndarray, np.dtype]
    for func in (multiarray._reconstruct, multiarray.scalar):
        allowed += [(func, f"numpy.core.multiarray.{func.__name__}"),
                    (func, f"numpy._core.multiarray.{func.__name__}")]
    # numpy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...)
    allowed += [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return allowed


def load_fairseq_checkpoint(path: str) -> dict:
    """A fairseq checkpoint file as a dict, without running any code it holds."""
    import pickle
    import zipfile

    import torch

    try:
        # mmap: the optimizer state training checkpoints carry (often 2x the model) is never read into memory
        with torch.serialization.safe_globals(allowed_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        what = f"references {found.group(1)}" if found else f"cannot be read safely ({str(err).splitlines()[-1]})"
        raise CheckpointError(
            f"{path} {what}; only tensors, plain containers, argparse.Namespace, OrderedDict and numpy "
            "scalars/arrays are allowed in a checkpoint, so it was not loaded (nothing in it was run)"
        ) from None
    except Exception as err:  # truncated, not a torch file, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise CheckpointError(f"{path} is not a fairseq checkpoint: expected a dict with a 'model' state dict")
    return checkpoint


# -- fairseq layouts ----------------------------------------------------------------------------------
def fairseq_settings(checkpoint: dict, source: str) -> dict:
    """The model settings of a fairseq checkpoint: `args` (a Namespace) or `cfg["model"]` (Namespace or dict)."""
    settings = checkpoint.get("args")
    if settings is None and isinstance(checkpoint.get("cfg"), dict):
        settings = checkpoint["cfg"].get("model")
    if settings is not None and not isinstance(settings, dict):
        settings = vars(settings)
    if not isinstance(settings, dict):
        raise CheckpointError(f"{source} has no model settings: expected 'args' or 'cfg' with cfg['model']")
    nested = settings.get("encoder") if isinstance(settings.get("encoder"), dict) else {}
    # newer fairseq TransformerConfig nests encoder_layers as encoder.layers, ...
    return {**{f"encoder_{k}": v for k, v in nested.items()}, **settings}


# Bookkeeping fairseq keeps in the state dict, recomputed or unused by the model.
BOOKKEEPING = re.compile(r"(^|\.)(version|_float_tensor)$")
FAIRSEQ_LAYER = {  # plain fairseq layer key -> this family's key under encoder.layer.N
    "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm", "final_layer_norm": "intermediate.LayerNorm",
    "fc1": "intermediate.dense", "fc2": "output.dense",
}
DEEPSPEED_LAYER = {  # DeepSpeed kernel name -> this family's key (see the module docstring for the norms)
    "attn_ow": "attention.output.dense.weight", "attn_ob": "attention.output.dense.bias",
    "norm_w": "attention.LayerNorm.weight", "norm_b": "attention.LayerNorm.bias",
    "attn_nw": "intermediate.LayerNorm.weight", "attn_nb": "intermediate.LayerNorm.bias",
    "inter_w": "intermediate.dense.weight", "inter_b": "intermediate.dense.bias",
    "output_w": "output.dense.weight", "output_b": "output.dense.bias",
}
FAIRSEQ_TOP = {
    "sentence_encoder.embed_tokens.weight": "embeddings.word_embeddings.weight",
    "sentence_encoder.embed_positions.weight": "embeddings.position_embeddings.weight",
    "sentence_encoder.layernorm_embedding.weight": "embeddings.LayerNorm.weight",
    "sentence_encoder.layernorm_embedding.bias": "embeddings.LayerNorm.bias",
    "sentence_encoder.emb_layer_norm.weight": "embeddings.LayerNorm.weight",  # older fairseq's name
    "sentence_encoder.emb_layer_norm.bias": "embeddings.LayerNorm.bias",
    "sentence_encoder.layer_norm.weight": "LayerNorm.weight",
    "sentence_encoder.layer_norm.bias": "LayerNorm.bias",
}
LM_HEAD = {f"lm_head.{name}": f"lm_head.{name}" for name in (
    "dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias")}
LM_HEAD["lm_head.weight"] = "lm_head.decoder.weight"  # fairseq ties it to embed_tokens, saved under its own name
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "gelu_fast": "gelu_new"}


def fairseq_layout(model_state: dict) -> str:
    """'deepspeed' when the layers hold the DeepSpeed kernel's fused weights, else 'fairseq'."""
    return "deepspeed" if any(k.endswith(".attn_qkvw") for k in model_state) else "fairseq"


def fairseq_to_family(checkpoint: dict, source: str) -> tuple[dict, dict]:
    """(config dict, state dict in this family's keys) of a pre-LN fairseq RoBERTa checkpoint."""
    settings = fairseq_settings(checkpoint, source)
    if settings.get("encoder_normalize_before") is False:
        raise CheckpointError(f"{source} was trained without --encoder-normalize-before: a post-LayerNorm "
                              "RoBERTa, another architecture than RoBERTa-PreLayerNorm")
    state, unknown = {}, []
    for key, value in checkpoint["model"].items():
        if BOOKKEEPING.search(key):
            continue
        name = re.sub(r"^(encoder|decoder)\.", "", key)  # older fairseq saved the encoder as `decoder`
        layer = re.fullmatch(r"sentence_encoder\.layers\.(\d+)\.(.+)", name)
        if name in FAIRSEQ_TOP:
            state[f"{PREFIX}.{FAIRSEQ_TOP[name]}"] = value
        elif name in LM_HEAD:
            state[LM_HEAD[name]] = value
        elif layer and layer.group(2) in ("attn_qkvw", "attn_qkvb"):
            base = f"{PREFIX}.encoder.layer.{layer.group(1)}.attention.self"
            suffix = "weight" if layer.group(2) == "attn_qkvw" else "bias"
            for part, tensor in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                state[f"{base}.{part}.{suffix}"] = tensor.clone()
        elif layer and layer.group(2) in DEEPSPEED_LAYER:
            state[f"{PREFIX}.encoder.layer.{layer.group(1)}.{DEEPSPEED_LAYER[layer.group(2)]}"] = value
        elif layer and layer.group(2).rsplit(".", 1)[0] in FAIRSEQ_LAYER:
            module, param = layer.group(2).rsplit(".", 1)
            state[f"{PREFIX}.encoder.layer.{layer.group(1)}.{FAIRSEQ_LAYER[module]}.{param}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source} has keys this converter does not know: {', '.join(unknown)}")
    config = fairseq_config(state, settings, source)
    embeddings = state[f"{PREFIX}.embeddings.word_embeddings.weight"]
    state[f"{PREFIX}.embeddings.token_type_embeddings.weight"] = embeddings.new_zeros(1, config["hidden_size"])
    return config, state  # fairseq has no token types: one all-zero type embedding adds nothing


def fairseq_config(state: dict, settings: dict, source: str) -> dict:
    """config.json fields from the tensors' shapes, checked against the checkpoint's own settings."""
    def tensor(key):
        if f"{PREFIX}.{key}" not in state:
            raise CheckpointError(f"{source} lacks the weights for {key} (a pre-LayerNorm RoBERTa encoder has them)")
        return state[f"{PREFIX}.{key}"]

    vocab_size, hidden = tensor("embeddings.word_embeddings.weight").shape
    tensor("embeddings.LayerNorm.weight")
    tensor("LayerNorm.weight")
    layers = len({k.split(".")[3] for k in state if k.startswith(f"{PREFIX}.encoder.layer.")})
    config = {
        "model_type": "roberta-prelayernorm",
        "architectures": ["RobertaPreLayerNormForMaskedLM" if "lm_head.bias" in state else "RobertaPreLayerNormModel"],
        "vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": layers,
        "intermediate_size": tensor("encoder.layer.0.intermediate.dense.weight").shape[0],
        "max_position_embeddings": tensor("embeddings.position_embeddings.weight").shape[0],
        "type_vocab_size": 1, "layer_norm_eps": 1e-5,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,  # fairseq's Dictionary: <s> <pad> </s> <unk>
        "tie_word_embeddings": "lm_head.decoder.weight" not in state or bool(
            (state["lm_head.decoder.weight"] == state[f"{PREFIX}.embeddings.word_embeddings.weight"]).all()),
    }
    expected = {"encoder_layers": layers, "encoder_embed_dim": hidden,
                "encoder_ffn_embed_dim": config["intermediate_size"]}
    wrong = [f"{k}={settings[k]} but the weights have {v}" for k, v in expected.items()
             if settings.get(k) is not None and settings[k] != v]
    if wrong:
        raise CheckpointError(f"{source}: settings disagree with the weights: {'; '.join(wrong)}")
    heads = settings.get("encoder_attention_heads")
    if not isinstance(heads, int):
        raise CheckpointError(f"{source}: its settings lack encoder_attention_heads (needed to split attention)")
    activation = settings.get("activation_fn", "gelu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{source}: activation_fn={activation!r} is not supported; "
                              f"RoBERTa's LM head computes gelu (allowed: {', '.join(ACTIVATIONS)})")
    if settings.get("no_scale_embedding") is False:
        raise CheckpointError(f"{source}: no_scale_embedding=False (scaled embeddings) is not RoBERTa's computation")
    dropout = {key: settings[name] for key, name in (("hidden_dropout_prob", "dropout"),
                                                     ("attention_probs_dropout_prob", "attention_dropout"))
               if isinstance(settings.get(name), (int, float))}  # for further training; inference ignores them
    config.update(num_attention_heads=heads, hidden_act=ACTIVATIONS[activation], **dropout)
    return config
