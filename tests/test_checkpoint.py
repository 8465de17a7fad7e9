"""checkpoint.py: from_pretrained / save_pretrained, atomic saves and the errors of bad files.

File formats, shards, the hub cache, dtypes, key prefixes, bad files; a save killed or interrupted at any write
leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

import roberta_prelayernorm as rp
from hubcache import add_to_hub_cache, go_offline
from parity import assert_close, padded_batch, tiny_config_dict, transformers_model
from training_utils import run_cli, writes_fail_after

transformers = pytest.importorskip("transformers")

MLM = "RobertaPreLayerNormForMaskedLM"


def logits_equal(ours_model, theirs_model):
    input_ids, attention_mask, _ = padded_batch(99)
    with torch.no_grad():
        ours = ours_model(input_ids, attention_mask).logits
        theirs = theirs_model(input_ids, attention_mask).logits
    assert_close(ours, theirs, "logits", rows=attention_mask.bool())


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("shard", [None, "20KB"])
def test_single_file_and_sharded_checkpoints(tmp_path, safe, shard):
    theirs = transformers_model(MLM)
    kwargs = {"safe_serialization": safe}
    if shard:
        kwargs["max_shard_size"] = shard
    theirs.save_pretrained(tmp_path, **kwargs)
    index = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    assert (tmp_path / index).exists() == bool(shard)
    logits_equal(rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path), theirs)


def test_loads_offline_from_the_hub_cache_by_id(tmp_path, monkeypatch):
    theirs = transformers_model(MLM)
    theirs.save_pretrained(tmp_path / "model", safe_serialization=False)  # efficient_mlm ships .bin only
    add_to_hub_cache(tmp_path / "cache", "andreasmadsen/efficient_mlm_m0.40", tmp_path / "model")
    go_offline(monkeypatch, tmp_path / "cache")
    ours = rp.AutoModelForMaskedLM.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
    logits_equal(ours, theirs)
    ours = rp.AutoModelForMaskedLM.from_pretrained("andreasmadsen/efficient_mlm_m0.40", revision="main",
                                                   cache_dir=tmp_path / "cache")
    logits_equal(ours, theirs)
    with pytest.raises(OSError, match="not in the cache"):
        rp.AutoModel.from_pretrained("andreasmadsen/efficient_mlm_m0.99")
    with pytest.raises(OSError, match="neither a local folder nor a valid hub repo id"):
        rp.AutoModel.from_pretrained("no such folder//x")


@pytest.mark.parametrize("requested,expected", [
    (None, torch.float32), ("auto", torch.bfloat16), ("float16", torch.float16), (torch.bfloat16, torch.bfloat16),
])
def test_torch_dtype(tmp_path, requested, expected):
    theirs = transformers_model(MLM).to(torch.bfloat16)
    theirs.save_pretrained(tmp_path)
    ours = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path, torch_dtype=requested)
    assert ours.dtype == expected and all(p.dtype == expected for p in ours.parameters())
    assert ours.lm_head.decoder.weight is ours.get_input_embeddings().weight


def test_head_on_a_pretrained_encoder_reports_new_weights(tmp_path, caplog):
    transformers_model(MLM).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="roberta_prelayernorm"):
        model, info = rp.AutoModelForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.dense.bias", "classifier.dense.weight",
                                            "classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert set(info["unexpected_keys"]) == {"lm_head.bias", "lm_head.dense.weight", "lm_head.dense.bias",
                                            "lm_head.layer_norm.weight", "lm_head.layer_norm.bias"}
    assert "newly initialised: classifier.dense.weight" in caplog.text
    # newly initialised weights follow the init scheme (normal(0, 0.02), zero bias), nothing left on meta
    assert not any(p.is_meta for p in model.parameters())
    assert model.classifier.out_proj.bias.abs().max() == 0
    assert 0.01 < model.classifier.dense.weight.std().item() < 0.03
    assert model.config.num_labels == 5


def test_prefix_is_added_and_stripped(tmp_path):
    base = transformers_model("RobertaPreLayerNormModel")
    base.save_pretrained(tmp_path / "base")  # keys without the roberta_prelayernorm. prefix
    head, info = rp.RobertaPreLayerNormForTokenClassification.from_pretrained(tmp_path / "base",
                                                                             output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(head.roberta_prelayernorm.embeddings.word_embeddings.weight,
                       base.embeddings.word_embeddings.weight)
    mlm = transformers_model(MLM)
    mlm.save_pretrained(tmp_path / "mlm")
    bare, info = rp.RobertaPreLayerNormModel.from_pretrained(tmp_path / "mlm", add_pooling_layer=False,
                                                            output_loading_info=True)
    assert info["missing_keys"] == [] and bare.pooler is None
    assert torch.equal(bare.encoder.layer[1].attention.self.query.weight,
                       mlm.roberta_prelayernorm.encoder.layer[1].attention.self.query.weight)


def test_no_weight_is_initialised_twice(tmp_path, monkeypatch):
    transformers_model(MLM).save_pretrained(tmp_path)
    calls = []
    original = rp.RobertaPreLayerNormPreTrainedModel._init_weights
    monkeypatch.setattr(rp.RobertaPreLayerNormPreTrainedModel, "_init_weights",
                        lambda self, module: (calls.append(type(module).__name__), original(self, module)))
    rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    assert calls == []
    rp.RobertaPreLayerNormForQuestionAnswering.from_pretrained(tmp_path, num_labels=2)
    assert calls == ["Linear"]  # qa_outputs only


def test_mismatched_sizes(tmp_path):
    transformers_model("RobertaPreLayerNormForSequenceClassification", num_labels=3).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"classifier.out_proj.weight: checkpoint \(3, 32\), model \(7, 32\)"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path, num_labels=7)
    model, info = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(
        tmp_path, num_labels=7, ignore_mismatched_sizes=True, output_loading_info=True)
    assert model.classifier.out_proj.weight.shape == (7, 32)
    assert {k for k, _, _ in info["mismatched_keys"]} == {"classifier.out_proj.weight", "classifier.out_proj.bias"}


def test_old_checkpoints_with_position_id_buffers_load(tmp_path):
    theirs = transformers_model(MLM)
    state = dict(theirs.state_dict())
    state["roberta_prelayernorm.embeddings.position_ids"] = torch.arange(40)[None]
    torch.save(state, tmp_path / "pytorch_model.bin")
    theirs.config.save_pretrained(tmp_path)
    model, info = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["unexpected_keys"] == [] and info["missing_keys"] == []
    logits_equal(model, theirs)


def test_tied_weights_are_saved_once(tmp_path):
    model = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict()))
    model.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "roberta_prelayernorm.embeddings.word_embeddings.weight" in keys and "lm_head.bias" in keys
    assert "lm_head.decoder.weight" not in keys and "lm_head.decoder.bias" not in keys
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["RobertaPreLayerNormForMaskedLM"] and config["torch_dtype"] == "float32"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    untied = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict(),
                                                                           tie_word_embeddings=False))
    untied.save_pretrained(tmp_path / "untied")
    reloaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "untied")
    assert torch.equal(reloaded.lm_head.decoder.weight, untied.lm_head.decoder.weight)
    assert reloaded.lm_head.decoder.weight is not reloaded.get_input_embeddings().weight


def test_shard_index_leaving_the_folder_is_refused(tmp_path):
    transformers_model(MLM).config.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../evil.safetensors"}}))
    with pytest.raises(ValueError, match="outside the checkpoint folder"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)


def test_bad_files_get_errors_naming_them(tmp_path):
    theirs = transformers_model(MLM)
    theirs.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    os.remove(tmp_path / shard)
    with pytest.raises(ValueError, match=f"lists shard '{shard}'"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    single = tmp_path / "single"
    theirs.save_pretrained(single)
    data = (single / "model.safetensors").read_bytes()
    (single / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read weights file .*model.safetensors"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(single)
    with pytest.raises(OSError, match="has no weights"):
        os.remove(single / "model.safetensors")
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(single)
    with pytest.raises(OSError, match="has no config.json"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path.parent)
    with pytest.raises(OSError, match="neither a local folder nor a valid hub repo id"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "missing")


def test_save_leaves_the_model_and_the_process_alone(tmp_path):
    """save_pretrained writes the class and dtype into the saved config only; loading patches no torch class."""
    model = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict()))
    before = model.config.to_dict()
    model.save_pretrained(tmp_path)
    assert model.config.to_dict() == before
    resets = [cls.reset_parameters for cls in (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm)]
    _, info = rp.RobertaPreLayerNormForQuestionAnswering.from_pretrained(tmp_path, num_labels=2,
                                                                      output_loading_info=True)
    assert [cls.reset_parameters for cls in (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm)] == resets
    assert info["missing_keys"] == ["qa_outputs.weight", "qa_outputs.bias"]


def test_gradient_checkpointing_reaches_every_module_that_declares_it():
    model = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict()))
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing and model.roberta_prelayernorm.encoder.gradient_checkpointing
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing


KILLED_SAVE = textwrap.dedent("""
    import sys, time, torch, safetensors.torch
    import roberta_prelayernorm as rp
    from parity import tiny_config_dict

    folder, marker = sys.argv[1], sys.argv[2]
    real_save = safetensors.torch.save_file

    def slow_save(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        with open(path, "r+b") as f:  # half-written on purpose: truncate, tell the parent, wait to be killed
            f.truncate(100)
        open(marker, "w").close()
        time.sleep(60)

    safetensors.torch.save_file = slow_save
    torch.manual_seed(1)
    rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict())).save_pretrained(folder)
""")


def test_save_killed_mid_write_leaves_the_previous_checkpoint_intact(tmp_path):
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict()))
    model.save_pretrained(tmp_path / "ckpt")
    before = {f: (tmp_path / "ckpt" / f).read_bytes() for f in os.listdir(tmp_path / "ckpt")}
    marker = tmp_path / "writing"
    tests_dir = os.path.dirname(__file__)
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(tmp_path / "ckpt"), str(marker)],
                               env={**os.environ, "PYTHONPATH": tests_dir})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the saving process never got mid-write"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = {f: (tmp_path / "ckpt" / f).read_bytes() for f in before}
    assert after == before  # model.safetensors and config.json untouched
    leftovers = set(os.listdir(tmp_path / "ckpt")) - set(before)
    assert all(name.startswith(".model.safetensors.") and name.endswith(".tmp") for name in leftovers)
    reloaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through temporary files, which are private (0600); the final files are not."""
    umask = os.umask(0o022)
    try:
        torch.manual_seed(0)
        rp.RobertaPreLayerNormModel(rp.RobertaPreLayerNormConfig(**tiny_config_dict())).save_pretrained(tmp_path)
    finally:
        os.umask(umask)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


@pytest.mark.usefixtures("one_thread")
def test_save_pretrained_interrupted_at_every_write_leaves_the_previous_folder(tmp_path, monkeypatch, tiny):
    folder = tmp_path / "model"
    config = rp.RobertaPreLayerNormConfig.from_pretrained(tiny)
    torch.manual_seed(0)
    old = rp.RobertaPreLayerNormForMaskedLM(config)
    old.save_pretrained(folder)
    rp.AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    torch.manual_seed(1)
    new = rp.RobertaPreLayerNormForMaskedLM(config)
    for k in range(3):  # model.safetensors, config.json, then done
        count = writes_fail_after(monkeypatch, k)
        try:
            new.save_pretrained(folder)
        except KeyboardInterrupt:
            pass
        monkeypatch.undo()
        loaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder)
        expected = new if count[0] <= k else old
        torch.testing.assert_close(loaded.state_dict(), expected.state_dict(), rtol=0, atol=0)
        assert len(rp.AutoTokenizer.from_pretrained(folder)) == len(rp.AutoTokenizer.from_pretrained(tiny))
        assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folder left behind
    assert count[0] <= k  # the last round completed


@pytest.mark.usefixtures("one_thread")
def test_a_legacy_bin_loads(tmp_path, tiny):
    model = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tiny)
    folder = tmp_path / "legacy"
    rp.RobertaPreLayerNormConfig.from_pretrained(tiny).save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    loaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict(), rtol=0, atol=0)


@pytest.mark.usefixtures("one_thread")
def test_weights_of_integer_dtypes_and_pickled_code_are_named(heads, tmp_path):
    """Weights of integer dtypes are named; a .bin holding pickled code is refused, naming it, and the code never
    runs (print here; os.system writing a file at the end)."""
    from safetensors.torch import save_file

    from roberta_prelayernorm.checkpoint import CheckpointError

    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["classifier.dense.weight"] = state["classifier.dense.weight"].to(torch.int64)
    state["classifier.out_proj.bias"] = state["classifier.out_proj.bias"] > 0
    folder = tmp_path / "ints"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(heads["classify"], "config.json")).read())
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"classifier.dense.weight is int64, classifier.out_proj.bias is bool; "
                                              r"weights must be floating point"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(str(folder))

    class Code:
        def __reduce__(self):
            return (print, ("ran",))

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(heads["classify"], "config.json")).read())
    torch.save({"classifier.dense.weight": Code()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(str(folder))
    message = str(caught.value)
    assert "pytorch_model.bin holds pickled code (print), which is refused" in message
    assert "weights_only" not in message and "\n" not in message

    transformers_model(MLM).config.save_pretrained(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.usefixtures("one_thread")
def test_api_mistakes_are_clear_errors(tiny, heads):
    with pytest.raises(TypeError, match="name_or_path must be a folder or a hub id .* got None"):
        rp.RobertaPreLayerNormModel.from_pretrained(None)
    with pytest.raises(ValueError, match="id2label must have the keys 0..1"):
        rp.RobertaPreLayerNormConfig(id2label={0: "a", 2: "b"})
    classifier = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    with pytest.raises(ValueError, match="needs a RobertaPreLayerNormForQuestionAnswering model"):
        rp.pipeline("question-answering", model=classifier, tokenizer=rp.AutoTokenizer.from_pretrained(tiny))
    with pytest.raises(ValueError, match="needs a float32 model"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"], quantize="int8",
                                                                        torch_dtype=torch.bfloat16)
    code, _, err = run_cli("fill-mask", "--model", heads["fill-mask"], "a <mask>", "--top-k", "100000")
    assert code == 2 and "top_k=100000 is more than the model's vocabulary" in err
