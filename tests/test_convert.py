"""layouts.py and convert.py: other layouts of this family's weights, loaded directly or converted.

princeton-nlp's Hugging Face folders (loaded directly), fairseq and DeepSpeed-kernel training checkpoints (the
`convert` command), the restricted unpickler, post-LN refusals. Each synthetic checkpoint is written from a tiny
transformers model by the inverse of the mapping, so loading or converting it must give exactly that model's
outputs, here and in transformers.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import roberta_prelayernorm as rp
from hubcache import add_to_hub_cache, go_offline
from parity import assert_close, padded_batch, tiny_config_dict
from roberta_prelayernorm.checkpoint import CheckpointError
from roberta_prelayernorm.cli import main

transformers = pytest.importorskip("transformers")

LAYERS = 2


def original_model(dtype=torch.float32):
    """The tiny transformers model every layout is written from; LayerNorms random so that a swap shows."""
    config = transformers.RobertaPreLayerNormConfig(**tiny_config_dict(
        num_hidden_layers=LAYERS, type_vocab_size=1, layer_norm_eps=1e-5))
    torch.manual_seed(0)
    model = transformers.RobertaPreLayerNormForMaskedLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
        model.roberta_prelayernorm.embeddings.token_type_embeddings.weight.zero_()  # fairseq has no types
    return model.to(dtype)


def batch():
    input_ids, attention_mask, _ = padded_batch(99)
    return input_ids, attention_mask


def assert_same_outputs(folder, original):
    """Ours and transformers, loading `folder`, give exactly `original`'s logits (both in float32)."""
    input_ids, attention_mask = batch()
    ours_original = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**original.config.to_dict()))
    ours_original.load_state_dict(original.float().state_dict())
    ours_original.eval()
    with torch.no_grad():
        expected = ours_original(input_ids, attention_mask).logits
        ours = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder)(input_ids, attention_mask).logits
        theirs_expected = original.float()(input_ids, attention_mask).logits
        theirs = transformers.RobertaPreLayerNormForMaskedLM.from_pretrained(folder, dtype=torch.float32)(
            input_ids, attention_mask).logits
    assert torch.equal(ours, expected)
    assert torch.equal(theirs, theirs_expected)
    assert_close(ours, theirs, "logits", rows=attention_mask.bool())


def hf_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def layer_tensors(state, i):
    p = f"roberta_prelayernorm.encoder.layer.{i}."
    return {name: state[p + key] for name, key in {
        "q_w": "attention.self.query.weight", "q_b": "attention.self.query.bias",
        "k_w": "attention.self.key.weight", "k_b": "attention.self.key.bias",
        "v_w": "attention.self.value.weight", "v_b": "attention.self.value.bias",
        "o_w": "attention.output.dense.weight", "o_b": "attention.output.dense.bias",
        "ln1_w": "attention.LayerNorm.weight", "ln1_b": "attention.LayerNorm.bias",
        "ln2_w": "intermediate.LayerNorm.weight", "ln2_b": "intermediate.LayerNorm.bias",
        "fc1_w": "intermediate.dense.weight", "fc1_b": "intermediate.dense.bias",
        "fc2_w": "output.dense.weight", "fc2_b": "output.dense.bias"}.items()}


def fairseq_state(model, deepspeed=False, prefix="encoder.") -> dict:
    """The inverse mapping: a transformers model's weights under fairseq's (or DeepSpeed's) names."""
    s = hf_state(model)
    e = prefix + "sentence_encoder."
    out = {
        e + "embed_tokens.weight": s["roberta_prelayernorm.embeddings.word_embeddings.weight"],
        e + "embed_positions.weight": s["roberta_prelayernorm.embeddings.position_embeddings.weight"],
        e + "layernorm_embedding.weight": s["roberta_prelayernorm.embeddings.LayerNorm.weight"],
        e + "layernorm_embedding.bias": s["roberta_prelayernorm.embeddings.LayerNorm.bias"],
        e + "layer_norm.weight": s["roberta_prelayernorm.LayerNorm.weight"],
        e + "layer_norm.bias": s["roberta_prelayernorm.LayerNorm.bias"],
        e + "version": torch.tensor([2.0]),
        prefix + "lm_head.dense.weight": s["lm_head.dense.weight"],
        prefix + "lm_head.dense.bias": s["lm_head.dense.bias"],
        prefix + "lm_head.layer_norm.weight": s["lm_head.layer_norm.weight"],
        prefix + "lm_head.layer_norm.bias": s["lm_head.layer_norm.bias"],
        prefix + "lm_head.weight": s["lm_head.decoder.weight"], prefix + "lm_head.bias": s["lm_head.bias"],
    }
    for i in range(LAYERS):
        t, p = layer_tensors(s, i), f"{e}layers.{i}."
        if deepspeed:  # pre-LN kernel: norm_* normalises the attention input, attn_n* the feed-forward input
            names = {"attn_qkvw": torch.cat([t["q_w"], t["k_w"], t["v_w"]]),
                     "attn_qkvb": torch.cat([t["q_b"], t["k_b"], t["v_b"]]),
                     "attn_ow": t["o_w"], "attn_ob": t["o_b"], "norm_w": t["ln1_w"], "norm_b": t["ln1_b"],
                     "attn_nw": t["ln2_w"], "attn_nb": t["ln2_b"], "inter_w": t["fc1_w"], "inter_b": t["fc1_b"],
                     "output_w": t["fc2_w"], "output_b": t["fc2_b"]}
        else:
            names = {f"self_attn.{a}_proj.{kind}": t[f"{b}_{kind[0]}"] for a, b in
                     (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o")) for kind in ("weight", "bias")}
            for module, short in (("self_attn_layer_norm", "ln1"), ("final_layer_norm", "ln2"),
                                  ("fc1", "fc1"), ("fc2", "fc2")):
                names[f"{module}.weight"], names[f"{module}.bias"] = t[f"{short}_w"], t[f"{short}_b"]
        out.update({p + k: v for k, v in names.items()})
    return out


def settings(**overrides):
    values = dict(arch="roberta_base", encoder_layers=LAYERS, encoder_embed_dim=32, encoder_ffn_embed_dim=37,
                  encoder_attention_heads=4, activation_fn="gelu", encoder_normalize_before=True,
                  max_positions=38, dropout=0.1, attention_dropout=0.1)
    values.update(overrides)
    return values


# What a training run's checkpoint holds besides the model: numpy scalars and arrays, an OrderedDict, ...
TRAINING_STATE = {
    "extra_state": {"epoch": 3, "best": np.float64(1.25), "lr": np.float32(1e-4), "steps": np.arange(3),
                    "metrics": {"train": [(0, "loss", "AverageMeter", {"val": np.float64(2.0), "count": 4})]}},
    "optimizer_history": [{"criterion_name": "MaskedLmLoss", "num_updates": 10}],
    "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(3)}}},
}


def convert(capsys, *argv):
    code = main(["convert", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def difference(out: str) -> float:
    return float(out.split("largest difference")[1].split(": ")[1].split(" ")[0])


# -- princeton-nlp's Hugging Face layout ------------------------------------------------------------------
def write_princeton(folder, model, post_ln=False):
    """model_type "roberta", prefix "roberta.", unused attention.self.LayerNorm in every layer, .bin only."""
    state = {("roberta." + k[len("roberta_prelayernorm."):] if k.startswith("roberta_prelayernorm.") else k): v
             for k, v in hf_state(model).items()}
    for i in range(LAYERS):
        state[f"roberta.encoder.layer.{i}.attention.self.LayerNorm.weight"] = torch.randn(32)
        state[f"roberta.encoder.layer.{i}.attention.self.LayerNorm.bias"] = torch.randn(32)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "pytorch_model.bin")
    fields = {k: v for k, v in model.config.to_dict().items() if k in transformers.RobertaConfig().to_dict()}
    config = transformers.RobertaConfig(**fields)
    config.architectures = ["RobertaForMaskedLM"]
    config.save_pretrained(folder)  # as the princeton-nlp checkpoints have it: a RobertaConfig


def test_princeton_layout_loads_exactly_with_a_notice(tmp_path, caplog):
    model = original_model()
    write_princeton(tmp_path / "princeton", model)
    with caplog.at_level(logging.WARNING, logger="roberta_prelayernorm"):
        ours, info = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "princeton", output_loading_info=True)
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "princeton-nlp pre-LayerNorm RoBERTa layout" in notices[0], notices
    assert "4 unused attention.self.LayerNorm" in notices[0]
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert ours.config.model_type == "roberta-prelayernorm"
    assert ours.config.architectures == ["RobertaPreLayerNormForMaskedLM"]
    expected = json.loads((tmp_path / "princeton" / "config.json").read_text())
    mapped = json.loads(ours.config.to_json_string(use_diff=False))
    shared = set(expected) & set(mapped) - {"model_type", "architectures", "transformers_version"}
    assert {"hidden_size", "num_hidden_layers", "intermediate_size", "layer_norm_eps", "vocab_size",
            "max_position_embeddings", "type_vocab_size", "pad_token_id", "hidden_act"} <= shared
    assert {k: mapped[k] for k in shared} == {k: expected[k] for k in shared}
    input_ids, attention_mask = batch()
    with torch.no_grad():
        assert torch.equal(ours(input_ids, attention_mask).logits,
                           rp.RobertaPreLayerNormForMaskedLM.from_pretrained(save_family(tmp_path, model))(
                               input_ids, attention_mask).logits)
    bare = rp.RobertaPreLayerNormModel.from_pretrained(tmp_path / "princeton")
    assert torch.equal(bare.LayerNorm.weight, model.roberta_prelayernorm.LayerNorm.weight)


def save_family(tmp_path, model):
    folder = tmp_path / "family"
    if not folder.exists():
        model.save_pretrained(folder)
    return folder


def test_princeton_hub_id_loads_and_converts_with_its_tokenizer(tmp_path, monkeypatch, capsys, bpe_dir):
    model = original_model()
    write_princeton(tmp_path / "princeton", model)
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "princeton" / name).write_bytes((bpe_dir / name).read_bytes())
    add_to_hub_cache(tmp_path / "cache", "princeton-nlp/efficient_mlm_m0.40", tmp_path / "princeton")
    go_offline(monkeypatch, tmp_path / "cache")
    input_ids, attention_mask = batch()
    from_hub = rp.AutoModelForMaskedLM.from_pretrained("princeton-nlp/efficient_mlm_m0.40")
    family = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(save_family(tmp_path, model))
    with torch.no_grad():
        assert torch.equal(from_hub(input_ids, attention_mask).logits, family(input_ids, attention_mask).logits)
    code, out, err = convert(capsys, "princeton-nlp/efficient_mlm_m0.40", "--output", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert_same_outputs(tmp_path / "out", model)


def test_post_layernorm_roberta_is_refused(tmp_path, capsys):
    config = transformers.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=LAYERS,
                                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=40)
    transformers.RobertaForMaskedLM(config).save_pretrained(tmp_path / "roberta")
    with pytest.raises(CheckpointError, match="post-LayerNorm RoBERTa checkpoint .*another architecture"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "roberta")
    code, out, err = convert(capsys, tmp_path / "roberta", "--output", tmp_path / "out")
    assert code == 2 and "post-LayerNorm" in err and not (tmp_path / "out").exists()


def test_princeton_folder_converts_to_safetensors(tmp_path, capsys):
    model = original_model()
    write_princeton(tmp_path / "princeton", model)
    code, out, err = convert(capsys, tmp_path / "princeton", "--output", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "roberta-prelayernorm"
    assert not any("attention.self.LayerNorm" in k for k in load_file(tmp_path / "out" / "model.safetensors"))
    assert difference(out) < 1e-4
    assert_same_outputs(tmp_path / "out", model)


# -- fairseq checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fairseq_checkpoint_with_namespace_args(tmp_path, capsys, bpe_dir, dtype):
    model = original_model(dtype)
    torch.save({"args": argparse.Namespace(**settings()), "model": fairseq_state(model), **TRAINING_STATE},
               tmp_path / "model.pt")
    code, out, err = convert(capsys, tmp_path / "model.pt", "--output", tmp_path / "out", "--tokenizer", bpe_dir)
    assert code == 0, err
    assert "fairseq layout" in out and difference(out) < 1e-4
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert next(iter(load_file(tmp_path / "out" / "model.safetensors").values())).dtype == dtype
    assert_same_outputs(tmp_path / "out", model)


@pytest.mark.parametrize("model_settings", [argparse.Namespace(**settings()), settings()], ids=["namespace", "dict"])
def test_dinkytrain_checkpoint_with_cfg(tmp_path, capsys, model_settings):
    model = original_model()
    cfg = {"model": model_settings, "common": {"fp16": True, "seed": 1}, "task": {"_name": "masked_lm"}}
    torch.save({"cfg": cfg, "model": fairseq_state(model, prefix="decoder."), **TRAINING_STATE},
               tmp_path / "checkpoint_best.pt")
    code, out, err = convert(capsys, tmp_path / "checkpoint_best.pt", "--output", tmp_path / "out")
    assert code == 0, err
    assert difference(out) < 1e-4
    assert_same_outputs(tmp_path / "out", model)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_deepspeed_fused_layout(tmp_path, capsys, dtype):
    model = original_model(dtype)
    cfg = {"model": argparse.Namespace(**settings(arch="deepspeed_roberta_base", deepspeed_cuda_kernel=True))}
    torch.save({"cfg": cfg, "model": fairseq_state(model, deepspeed=True)}, tmp_path / "checkpoint_last.pt")
    code, out, err = convert(capsys, tmp_path / "checkpoint_last.pt", "--output", tmp_path / "out")
    assert code == 0, err
    assert "deepspeed layout" in out and difference(out) < 1e-4
    assert_same_outputs(tmp_path / "out", model)


def test_converted_dtype_is_the_one_asked_for(tmp_path, capsys):
    model = original_model()
    torch.save({"args": argparse.Namespace(**settings()), "model": fairseq_state(model)}, tmp_path / "model.pt")
    code, out, err = convert(capsys, tmp_path / "model.pt", "--output", tmp_path / "out", "--dtype", "bfloat16")
    assert code == 0, err
    assert {v.dtype for v in load_file(tmp_path / "out" / "model.safetensors").values()} == {torch.bfloat16}
    assert 0 < difference(out) < 0.5  # bfloat16 rounding, printed and allowed


def test_fairseq_errors_name_the_problem(tmp_path, capsys):
    model = original_model()
    state = fairseq_state(model)
    cases = {
        "unknown": ({"args": argparse.Namespace(**settings()),
                     "model": {**state, "classification_heads.mnli.dense.weight": torch.zeros(2)}},
                    "does not know: classification_heads.mnli.dense.weight"),
        "post_ln": ({"args": argparse.Namespace(**settings(encoder_normalize_before=False)), "model": state},
                    "without --encoder-normalize-before"),
        "sizes": ({"args": argparse.Namespace(**settings(encoder_layers=12)), "model": state},
                  "encoder_layers=12 but the weights have 2"),
        "no_settings": ({"model": state}, "no model settings"),
    }
    for name, (checkpoint, message) in cases.items():
        torch.save(checkpoint, tmp_path / f"{name}.pt")
        code, out, err = convert(capsys, tmp_path / f"{name}.pt", "--output", tmp_path / name)
        assert code == 2 and message in err and len(err.splitlines()) == 1, (name, err)
        assert not (tmp_path / name).exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    code, out, err = convert(capsys, tmp_path / "unknown.pt", "--output", tmp_path / "taken")
    assert code == 2 and "already exists" in err


class Payload:
    """Unpickling this would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_harmful_pickle_is_refused_and_never_runs(tmp_path, capsys):
    model = original_model()
    marker = tmp_path / "pwned"
    torch.save({"args": argparse.Namespace(**settings()), "model": fairseq_state(model),
                "extra_state": {"hook": Payload(str(marker))}}, tmp_path / "model.pt")
    code, out, err = convert(capsys, tmp_path / "model.pt", "--output", tmp_path / "out")
    assert code == 2 and "references io.open" in err and "nothing in it was run" in err, err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_old_torch_format_and_numpy1_names_are_read(tmp_path, capsys):
    """Checkpoints from before torch 1.6 (no zip) and numpy 2 (numpy.core.multiarray.scalar) still convert."""
    model = original_model()
    buffer = io.BytesIO()
    torch.save({"args": argparse.Namespace(**settings()), "model": fairseq_state(model), **TRAINING_STATE}, buffer,
               _use_new_zipfile_serialization=False)
    raw = buffer.getvalue()
    assert b"numpy._core.multiarray" in raw  # protocol 2 GLOBALs are text: rename them as numpy 1 wrote them
    (tmp_path / "model.pt").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    code, out, err = convert(capsys, tmp_path / "model.pt", "--output", tmp_path / "out")
    assert code == 0, err
    assert_same_outputs(tmp_path / "out", model)


def test_bare_encoder_converts_and_is_compared_on_hidden_states(tmp_path, capsys):
    model = original_model()
    model.roberta_prelayernorm.save_pretrained(tmp_path / "encoder")
    code, out, err = convert(capsys, tmp_path / "encoder", "--output", tmp_path / "out")
    assert code == 0, err
    assert "(hidden states, fixed input)" in out and difference(out) < 1e-4
    input_ids, attention_mask = batch()
    with torch.no_grad():
        ours = rp.RobertaPreLayerNormModel.from_pretrained(tmp_path / "out")(input_ids, attention_mask)
        theirs = model.roberta_prelayernorm(input_ids, attention_mask)
    assert_close(ours.last_hidden_state, theirs.last_hidden_state, "hidden states", rows=attention_mask.bool())


@pytest.mark.parametrize("shard", [None, "20KB"])
def test_family_folder_with_bin_only_converts_with_its_tokenizer(tmp_path, capsys, bpe_dir, shard):
    model = original_model()
    model.save_pretrained(tmp_path / "bin", safe_serialization=False, **({"max_shard_size": shard} if shard else {}))
    assert (tmp_path / "bin" / "pytorch_model.bin.index.json").exists() == bool(shard)
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "bin" / name).write_bytes((bpe_dir / name).read_bytes())
    code, out, err = convert(capsys, tmp_path / "bin", "--output", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert_same_outputs(tmp_path / "out", model)
