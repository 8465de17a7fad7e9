"""`roberta-prelayernorm convert`: any checkpoint of this family -> a folder of config.json + model.safetensors.

SOURCE is a hub id or folder (this family's layout or princeton-nlp's, .bin or safetensors, sharded or not) or
a fairseq checkpoint file (plain or DeepSpeed-kernel layout, see layouts.py). After writing, the folder is
loaded back and a fixed input run through it and through `reference_forward`, a direct computation over the
original tensors under their original names, so a wrong mapping shows as a large difference.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .errors import MissingFileError
from .files import TOKENIZER_FILES, atomic_folder, check_new_folder, copy_tokenizer

DTYPES = ("float32", "float16", "bfloat16")


# -- the original computation, over the original names -------------------------------------------------
def original_tensors(state: dict, layout: str) -> dict:
    """The tensors of `state` (fairseq, DeepSpeed or Hugging Face names) in the order the model uses them."""
    import torch

    if layout == "hf":
        p = next((p for p in ("roberta_prelayernorm.", "roberta.") if p + "LayerNorm.weight" in state), "")
        t = {"word": p + "embeddings.word_embeddings.weight", "pos": p + "embeddings.position_embeddings.weight",
             "type": p + "embeddings.token_type_embeddings.weight", "emb_ln": p + "embeddings.LayerNorm",
             "final_ln": p + "LayerNorm", "head": "lm_head.dense", "head_ln": "lm_head.layer_norm",
             "decoder": "lm_head.decoder.weight", "decoder_b": "lm_head.bias"}
        layer = p + "encoder.layer.{}."
        names = {"ln1": "attention.LayerNorm", "out": "attention.output.dense", "ln2": "intermediate.LayerNorm",
                 "fc1": "intermediate.dense", "fc2": "output.dense"}
        qkv = ("attention.self.query", "attention.self.key", "attention.self.value")
    else:
        p = "decoder." if "decoder.sentence_encoder.embed_tokens.weight" in state else "encoder."
        s = p + "sentence_encoder."
        emb_ln = s + ("emb_layer_norm" if s + "emb_layer_norm.weight" in state else "layernorm_embedding")
        t = {"word": s + "embed_tokens.weight", "pos": s + "embed_positions.weight", "type": None,
             "emb_ln": emb_ln, "final_ln": s + "layer_norm", "head": p + "lm_head.dense",
             "head_ln": p + "lm_head.layer_norm", "decoder": p + "lm_head.weight", "decoder_b": p + "lm_head.bias"}
        layer = s + "layers.{}."
        if layout == "deepspeed":  # norm_* before attention, attn_n* before the feed-forward (pre-LN kernel)
            names, qkv = {"ln1": "norm_", "out": "attn_o", "ln2": "attn_n", "fc1": "inter_", "fc2": "output_"}, None
        else:
            names = {"ln1": "self_attn_layer_norm", "out": "self_attn.out_proj", "ln2": "final_layer_norm",
                     "fc1": "fc1", "fc2": "fc2"}
            qkv = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")

    def pair(name):  # (weight, bias) of a module: `name.weight`, or DeepSpeed's `namew` (attn_ow, norm_w, ...)
        weight, bias = (name + "w", name + "b") if name + "w" in state else (name + ".weight", name + ".bias")
        return state[weight].float(), state[bias].float()

    out = {"word": state[t["word"]].float(), "pos": state[t["pos"]].float(),
           "type": state[t["type"]][0].float() if t["type"] in state else 0.0,
           "emb_ln": pair(t["emb_ln"]), "final_ln": pair(t["final_ln"]), "layers": []}
    i = 0
    while any(k.startswith(layer.format(i)) for k in state):
        prefix = layer.format(i)
        entry = {key: pair(prefix + name) for key, name in names.items()}
        if qkv is None:
            entry["qkv"] = (state[prefix + "attn_qkvw"].float(), state[prefix + "attn_qkvb"].float())
        else:
            parts = [pair(prefix + name) for name in qkv]
            entry["qkv"] = (torch.cat([w for w, _ in parts]), torch.cat([b for _, b in parts]))
        out["layers"].append(entry)
        i += 1
    if t["decoder_b"] in state:
        out["head"] = pair(t["head"])
        out["head_ln"] = pair(t["head_ln"])
        out["decoder"] = (state.get(t["decoder"], state[t["word"]]).float(), state[t["decoder_b"]].float())
    return out


def reference_forward(w: dict, input_ids, heads: int, eps: float, pad_id: int, act: str):
    """Pre-LN RoBERTa written out: LM logits (B, T, V), or the final hidden states (B, T, H) without a head.
    Positions count from pad_id + 1 over non-pad tokens, as fairseq's learned positions do."""
    import torch
    import torch.nn.functional as F

    def ln(x, wb):
        return F.layer_norm(x, x.shape[-1:], wb[0], wb[1], eps)

    def linear(x, wb):
        return x @ wb[0].T + wb[1]

    activation = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}[act]
    mask = input_ids.ne(pad_id)
    positions = torch.cumsum(mask, dim=1) * mask + pad_id
    x = ln(w["word"][input_ids] + w["pos"][positions] + w["type"], w["emb_ln"])  # (B, T, H)
    B, T, H = x.shape
    bias = torch.zeros(B, 1, 1, T).masked_fill(~mask[:, None, None, :], float("-inf"))
    for layer in w["layers"]:
        q, k, v = linear(ln(x, layer["ln1"]), layer["qkv"]).view(B, T, 3, heads, H // heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(H // heads) + bias  # (B, heads, T, T)
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H)
        x = x + linear(context, layer["out"])
        x = x + linear(activation(linear(ln(x, layer["ln2"]), layer["fc1"])), layer["fc2"])
    x = ln(x, w["final_ln"])
    if "head" not in w:
        return x
    return linear(ln(F.gelu(linear(x, w["head"])), w["head_ln"]), w["decoder"])


# -- the conversion -------------------------------------------------------------------------------------
def check_ids(vocab_size: int, length: int = 16):
    """A fixed input: <s>, ordinary tokens spread over the vocabulary, </s>, in one row (no padding)."""
    import torch

    body = [3 + (7919 * i) % (vocab_size - 3) for i in range(length - 2)]
    return torch.tensor([[0] + body + [2]])


def read_source(source: str):
    """(model, original state dict, layout) of a fairseq file, folder or hub id, the model in float32; the
    weights are read once."""
    from . import modeling
    from .checkpoint import CheckpointError, load_checkpoint_weights
    from .config import RobertaPreLayerNormConfig
    from .layouts import (fairseq_layout, fairseq_to_family, load_fairseq_checkpoint, roberta_layout_config,
                          roberta_prelayernorm_state)

    if os.path.isfile(source):
        checkpoint = load_fairseq_checkpoint(source)
        config_dict, state = fairseq_to_family(checkpoint, source)
        config = RobertaPreLayerNormConfig.from_dict(config_dict)
        model, info = getattr(modeling, config.architectures[0]).from_state_dict(config, state, source=source)
        if info["missing_keys"]:
            raise CheckpointError(f"{source} lacks weights a {config.num_hidden_layers}-layer model needs: "
                                  f"{', '.join(info['missing_keys'])}")
        return model, checkpoint["model"], fairseq_layout(checkpoint["model"])
    original, filename = load_checkpoint_weights(source, {})  # under its own names (princeton-nlp's: roberta.)
    foreign = roberta_layout_config(source, {})
    config = (RobertaPreLayerNormConfig.from_dict(foreign) if foreign
              else RobertaPreLayerNormConfig.from_pretrained(source))
    state = roberta_prelayernorm_state(original, source=f"{source}/{filename}") if foreign else original
    cls = modeling.RobertaPreLayerNormForMaskedLM if "lm_head.bias" in original else modeling.RobertaPreLayerNormModel
    model, info = cls.from_state_dict(config, state, source=f"{source}/{filename}")
    return model, original, "hf"


def convert(source: str, output: str, tokenizer=None, dtype=None) -> dict:
    """Write `output`; return what was done and the largest difference on the fixed input."""
    import torch

    check_new_folder(output)  # before the (long) reading
    model, original, layout = read_source(source)
    source_dtype = max((v for v in original.values() if v.is_floating_point()), key=torch.numel).dtype
    target = getattr(torch, dtype) if dtype else source_dtype
    if target not in (torch.float32, torch.float16, torch.bfloat16):
        target = torch.float32
    # a fairseq file's tokenizer (Hugging Face files, if any) would lie beside it
    tokenizer_source = tokenizer or (os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else source)
    with atomic_folder(output, replace=False) as folder:  # a new folder filled beside; an empty one, inside
        model.to(target).save_pretrained(folder)
        copied = copy_tokenizer(tokenizer_source, folder)
        if tokenizer and not copied:
            raise MissingFileError(f"--tokenizer {tokenizer} has none of {', '.join(TOKENIZER_FILES)}")
    config = model.config
    loaded = type(model).from_pretrained(output)
    ids = check_ids(config.vocab_size, min(16, config.max_position_embeddings - config.pad_token_id - 1))
    with torch.no_grad():
        ours = loaded(ids)[0]
        theirs = reference_forward(original_tensors(original, layout), ids, heads=config.num_attention_heads,
                                   eps=config.layer_norm_eps, pad_id=config.pad_token_id, act=config.hidden_act)
    return {"layout": layout, "dtype": str(target).replace("torch.", ""), "tokenizer_files": copied,
            "difference": (ours - theirs).abs().max().item(), "scale": theirs.abs().max().item(),
            "exact_weights": target == source_dtype,
            "output": "logits" if hasattr(model, "lm_head") else "hidden states"}


# -- the command ----------------------------------------------------------------------------------------
EXAMPLES = """examples:
  # the paper's Hugging Face checkpoints (model_type "roberta", prefix "roberta.") -> this family's layout
  roberta-prelayernorm convert princeton-nlp/efficient_mlm_m0.40 --output efficient_mlm_m0.40
  # a .bin-only checkpoint of this family -> safetensors
  roberta-prelayernorm convert andreasmadsen/efficient_mlm_m0.40 --output m0.40-safetensors
  # a fairseq / DinkyTrain checkpoint (plain or DeepSpeed kernel), with a RoBERTa tokenizer folder
  roberta-prelayernorm convert checkpoints/checkpoint_best.pt --output m0.40-hf --tokenizer roberta-tokenizer/
"""


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a checkpoint of this family (princeton-nlp, fairseq, DeepSpeed, .bin) to "
                        "safetensors",
        description="Write a checkpoint of this family as a folder of config.json (model_type roberta-prelayernorm)"
                    " and model.safetensors, plus tokenizer files when given or found. SOURCE is a hub id, a folder "
                    "(this family's or princeton-nlp's layout, .bin or safetensors, sharded or not) or a fairseq "
                    "checkpoint file trained with --encoder-normalize-before (plain or DeepSpeed-kernel layout; "
                    "read without running pickled code). Then the folder is loaded back, a fixed input run through "
                    "it and through a direct computation over the original tensors, and the largest difference "
                    "printed (exit 1 when it shows a wrong conversion).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    parser.add_argument("source", metavar="SOURCE", help="hub id, checkpoint folder or fairseq checkpoint file")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="new folder to write (must not exist, or be empty)")
    parser.add_argument("--tokenizer", metavar="T", help="folder or hub id to copy tokenizer files from "
                        "(default: SOURCE's own; for a fairseq file, its folder's)")
    parser.add_argument("--dtype", choices=DTYPES, help="dtype of the written weights (default: SOURCE's)")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Errors (a missing or unreadable SOURCE, an existing --output) become one line, exit code 2, in cli.main."""
    if not os.path.exists(args.source) and os.path.splitext(args.source)[1] in (".pt", ".bin", ".ckpt"):
        raise MissingFileError(f"SOURCE {args.source}: no such file")
    result = convert(args.source, args.output, tokenizer=args.tokenizer, dtype=args.dtype)
    files = ", ".join(["config.json", "model.safetensors", *result["tokenizer_files"]])
    print(f"wrote {args.output} ({files}) from the {result['layout']} layout in {result['dtype']}")
    print(f"largest difference from the original computation ({result['output']}, fixed input): "
          f"{result['difference']:.3g} (largest value {result['scale']:.3g})")
    if result["exact_weights"] and result["difference"] > 1e-3 * max(1.0, result["scale"]):
        print("error: the converted model does not compute what the original does", file=sys.stderr)
        return 1
    return 0
