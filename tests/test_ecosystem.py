"""The model inside the tools people train and ship with: accelerate, torch.export, PEFT, the hub, Trainer."""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from parity import HEADS, padded_batch, tiny_config_dict
from roberta_prelayernorm import outputs

pytestmark = pytest.mark.slow  # transformers' Trainer, torch.export, PEFT: `make test-fast` leaves them out


def tiny(name: str, seed: int = 0, **overrides):
    config = rp.RobertaPreLayerNormConfig(**tiny_config_dict(num_hidden_layers=2, num_labels=2, **overrides))
    if name == "RobertaPreLayerNormForCausalLM":
        config.is_decoder = True
    torch.manual_seed(seed)
    return getattr(rp, name)(config).eval()


def inputs_for(name: str, lengths=(9, 6, 3), seed: int = 0) -> dict:
    input_ids, attention_mask, _ = padded_batch(99, lengths=lengths, seed=seed)
    if name == "RobertaPreLayerNormForMultipleChoice":  # (B, choices, T): two examples of len(lengths) choices
        input_ids = torch.stack([input_ids, input_ids.flip(0)])
        attention_mask = torch.stack([attention_mask, attention_mask.flip(0)])
    return {"input_ids": input_ids, "attention_mask": attention_mask}


# -- outputs ------------------------------------------------------------------------------------------
def test_output_built_from_mapping_pairs_or_keywords():
    logits, loss = torch.randn(2, 3), torch.tensor(0.5)
    for out in (outputs.SequenceClassifierOutput({"logits": logits, "loss": loss}),
                outputs.SequenceClassifierOutput([("loss", loss), ("logits", logits)]),
                outputs.SequenceClassifierOutput(loss=loss, logits=logits)):
        assert list(out.keys()) == ["loss", "logits"]
        assert out.logits is logits and out[0] is loss and out["logits"] is logits and out.hidden_states is None
    only_logits = outputs.SequenceClassifierOutput({"logits": logits})
    assert list(only_logits.keys()) == ["logits"] and only_logits.loss is None and only_logits[0] is logits
    with pytest.raises(TypeError, match="no field 'logit'"):
        outputs.SequenceClassifierOutput({"logit": logits})


def test_accelerate_send_to_device_and_gather_keep_every_field():
    from accelerate.utils import gather, send_to_device

    model = tiny("RobertaPreLayerNormForQuestionAnswering")
    out = model(**inputs_for("RobertaPreLayerNormForQuestionAnswering"), output_hidden_states=True,
                start_positions=torch.tensor([1, 2, 0]), end_positions=torch.tensor([2, 3, 1]))
    for moved in (send_to_device(out, "cpu"), gather(out)):
        assert type(moved) is type(out) and list(moved.keys()) == list(out.keys())
        for key in out.keys():
            if isinstance(out[key], torch.Tensor):
                assert torch.equal(moved[key], out[key]), key
            else:
                assert all(torch.equal(a, b) for a, b in zip(moved[key], out[key])), key


def test_accelerator_bf16_prepare_and_backward_on_cpu():
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16", cpu=True)
    model = tiny("RobertaPreLayerNormForSequenceClassification").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    batch = inputs_for("RobertaPreLayerNormForSequenceClassification")
    before = model.classifier.out_proj.weight.detach().clone()
    out = model(**batch, labels=torch.tensor([0, 1, 1]))
    assert isinstance(out, outputs.SequenceClassifierOutput) and out.logits.dtype == torch.float32
    accelerator.backward(out.loss)
    optimizer.step()
    assert torch.isfinite(out.loss) and not torch.equal(before, model.classifier.out_proj.weight)


# -- torch.export -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HEADS)
def test_torch_export_dynamic_batch_and_sequence(name):
    model = tiny(name)
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=38)
    choices = torch.export.Dim("choices", min=1)
    dims = {0: batch, 1: choices, 2: seq} if name == "RobertaPreLayerNormForMultipleChoice" else {0: batch, 1: seq}
    kwargs = {"use_cache": False} if name == "RobertaPreLayerNormForCausalLM" else {}
    exported = torch.export.export(model, (), {**inputs_for(name), **kwargs},
                                   dynamic_shapes={"input_ids": dims, "attention_mask": dims,
                                                   **{k: None for k in kwargs}})
    other = inputs_for(name, lengths=(4, 12, 7, 2, 12), seed=1)  # other batch size and length
    ours, theirs = exported.module()(**other, **kwargs), model(**other, **kwargs)
    assert type(ours) is type(theirs) and list(ours.keys()) == list(theirs.keys())
    assert_same_at_tokens(ours, theirs, other["attention_mask"].bool())


def assert_same_at_tokens(ours: dict, theirs: dict, real) -> None:
    """Equal outputs; per-token outputs only at real tokens (eager skips padding, a traced graph computes it)."""
    for key, value in theirs.items():
        mine = ours[key]
        assert tuple(mine.shape) == tuple(value.shape), key
        if value.shape[:real.dim()] == real.shape:
            mine, value = mine[real], value[real]
        torch.testing.assert_close(mine, value, atol=1e-4, rtol=1e-4, msg=lambda m: f"{key}: {m}")


# -- checkpoints and the hub --------------------------------------------------------------------------
def test_from_pretrained_records_where_the_model_came_from(tmp_path):
    tiny("RobertaPreLayerNormForMaskedLM").save_pretrained(tmp_path)
    model = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    assert model.name_or_path == str(tmp_path) and model.config._name_or_path == str(tmp_path)
    assert "_name_or_path" not in (tmp_path / "config.json").read_text()  # a path is not part of the model
    assert tiny("RobertaPreLayerNormModel").name_or_path == ""


def test_transformers_config_accepted_wherever_a_config_is(tmp_path):
    import transformers

    theirs = transformers.RobertaPreLayerNormConfig(**tiny_config_dict(num_hidden_layers=2))
    model = rp.RobertaPreLayerNormForSequenceClassification(theirs)
    assert isinstance(model.config, rp.RobertaPreLayerNormConfig) and model.config.num_labels == 3
    converted = model.config.to_dict()
    assert converted.pop("transformers_version") == transformers.__version__  # kept, as from their config.json
    assert converted == rp.RobertaPreLayerNormConfig(**tiny_config_dict(num_hidden_layers=2)).to_dict()
    model.save_pretrained(tmp_path)
    loaded = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path, config=theirs)
    assert loaded.config.num_labels == 3
    with pytest.raises(TypeError, match="config must be a RobertaPreLayerNormConfig .*got BertConfig"):
        rp.RobertaPreLayerNormModel(transformers.BertConfig())


@pytest.mark.parametrize("safe", [True, False])
def test_sharded_save_loads_here_and_in_transformers(tmp_path, safe):
    import json

    import transformers

    model = tiny("RobertaPreLayerNormForMaskedLM")
    model.save_pretrained(tmp_path, safe_serialization=safe)  # a single file first: the shards replace it
    model.save_pretrained(tmp_path, safe_serialization=safe, max_shard_size="20KB")
    stem, ext = ("model", "safetensors") if safe else ("pytorch_model", "bin")
    index = json.loads((tmp_path / f"{stem}.{ext}.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"{stem}-00001-of-{len(shards):05d}.{ext}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(stem)) == sorted(
        shards + [f"{stem}.{ext}.index.json"])
    batch = inputs_for("RobertaPreLayerNormForMaskedLM")
    expected = model(**batch).logits
    ours = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    theirs = transformers.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path).eval()
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(ours(**batch).logits, expected)
    torch.testing.assert_close(theirs(**batch).logits[real], expected[real], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_shard_size='big'"):
        model.save_pretrained(tmp_path, max_shard_size="big")
    with pytest.raises(TypeError, match="safe_serialisation"):  # a misspelt option is not taken for a hub option
        model.save_pretrained(tmp_path, safe_serialisation=False)


def test_int8_model_refuses_to_save_with_the_way_out(tmp_path):
    tiny("RobertaPreLayerNormForSequenceClassification").save_pretrained(tmp_path / "float")
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "float", quantize="int8")
    with pytest.raises(ValueError, match="int8-quantized.*load it with quantize='int8'"):
        model.save_pretrained(tmp_path / "int8")
    assert not (tmp_path / "int8").exists()


class FakeHfApi:
    """huggingface_hub.HfApi without the network: records the calls and the uploaded folder's files."""
    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        from types import SimpleNamespace

        self.calls.append(("create_repo", repo_id, private, exist_ok, self.token))
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"me/{repo_id}")

    def upload_folder(self, repo_id, folder_path, commit_message=None, revision=None, create_pr=False):
        import os

        self.calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path)), commit_message, create_pr))
        return f"commit of {repo_id}"


def test_push_to_hub_creates_the_repo_and_uploads_one_folder(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.calls = []
    model = tiny("RobertaPreLayerNormForMaskedLM")
    assert model.push_to_hub("org/tiny", private=True, token="t", commit_message="first") == "commit of org/tiny"
    assert FakeHfApi.calls == [("create_repo", "org/tiny", True, True, "t"),
                               ("upload_folder", "org/tiny", ["config.json", "model.safetensors"], "first", False)]
    FakeHfApi.calls = []
    model.save_pretrained(tmp_path / "tiny-mlm", push_to_hub=True, max_shard_size="20KB")
    (_, repo, *_), (_, uploaded_to, files, message, _) = FakeHfApi.calls
    assert repo == "tiny-mlm" and uploaded_to == "me/tiny-mlm" and "model.safetensors.index.json" in files


def test_peft_lora_adapter_records_its_base_and_reloads_offline(tmp_path):
    from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model

    base_dir = tmp_path / "base"
    tiny("RobertaPreLayerNormForSequenceClassification").save_pretrained(base_dir)
    base = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(base_dir)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"]))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_()  # B starts at zero; make the adapter change the output
    batch = inputs_for("RobertaPreLayerNormForSequenceClassification")
    expected = lora(**batch).logits
    lora.save_pretrained(tmp_path / "adapter")
    assert PeftConfig.from_pretrained(tmp_path / "adapter").base_model_name_or_path == str(base_dir)
    base_path = PeftConfig.from_pretrained(tmp_path / "adapter").base_model_name_or_path
    reloaded = PeftModel.from_pretrained(rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(base_path),
                                         tmp_path / "adapter").eval()
    torch.testing.assert_close(reloaded(**batch).logits, expected)
    plain = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(base_dir)  # `base` now holds LoRA
    assert not torch.allclose(expected, plain(**batch).logits, atol=1e-4)


# -- transformers' Trainer ----------------------------------------------------------------------------
TRAINER_HEADS = [name for name in HEADS if name != "RobertaPreLayerNormModel"]  # the bare model has no loss


def training_examples(name: str, n: int = 8) -> list[dict]:
    """n examples with the labels the head's loss takes."""
    g = torch.Generator().manual_seed(1)
    examples = []
    for i in range(n):
        batch = inputs_for(name, lengths=(7, 5, 3), seed=i)
        example = {key: value[0] for key, value in batch.items()}  # (T,) or, multiple choice, (3, T)
        ids = example["input_ids"]
        if name == "RobertaPreLayerNormForQuestionAnswering":
            example.update(start_positions=torch.tensor(1), end_positions=torch.tensor(3))
        elif name in ("RobertaPreLayerNormForTokenClassification",):
            example["labels"] = torch.randint(0, 2, ids.shape, generator=g)
        elif name in ("RobertaPreLayerNormForMaskedLM", "RobertaPreLayerNormForCausalLM"):
            example["labels"] = ids.clone()
        else:
            example["labels"] = torch.tensor(i % 2)
        examples.append(example)
    return examples


def hf_trainer(model, name: str, output_dir, bf16: bool = False, max_steps: int = 4):
    import transformers

    from roberta_prelayernorm.integrations import Trainer

    args = transformers.TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=4, save_steps=2,
        logging_steps=1, learning_rate=1e-3, bf16=bf16, use_cpu=True, report_to=[], seed=0,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    return Trainer(model=model, args=args, train_dataset=training_examples(name))


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", TRAINER_HEADS)
def test_hf_trainer_trains_checkpoints_and_saves_a_loadable_model(tmp_path, name, bf16):
    import transformers

    model = tiny(name).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = hf_trainer(model, name, tmp_path, bf16=bf16)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    trained = tiny(name, seed=1)  # the trained weights in a model accelerate has not wrapped in bf16 autocast
    trained.load_state_dict(model.state_dict())
    batch = inputs_for(name)
    if name == "RobertaPreLayerNormForCausalLM":
        batch["use_cache"] = False
    expected = trained(**batch)
    for folder in (tmp_path / "checkpoint-4", tmp_path / "final"):
        ours = getattr(rp, name).from_pretrained(folder)(**batch)
        theirs = getattr(transformers, name).from_pretrained(folder).eval()(**batch)
        assert_same_at_tokens(ours, expected, batch["attention_mask"].bool())
        assert_same_at_tokens(theirs, expected, batch["attention_mask"].bool())


def test_hf_trainer_resumes_bf16_masked_lm_with_tied_weights(tmp_path):
    name = "RobertaPreLayerNormForMaskedLM"
    straight = tiny(name).train()
    hf_trainer(straight, name, tmp_path / "straight", bf16=True).train()
    resumed = tiny(name, seed=5).train()  # other weights: the checkpoint must replace them
    hf_trainer(resumed, name, tmp_path / "straight-copy", bf16=True).train(
        resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-2"))
    assert resumed.lm_head.decoder.weight is resumed.roberta_prelayernorm.embeddings.word_embeddings.weight
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, msg=key)


def test_plain_trainer_folder_is_refused_with_the_fix(tmp_path):
    import transformers

    name = "RobertaPreLayerNormForSequenceClassification"
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=1, use_cpu=True, report_to=[])
    trainer = transformers.Trainer(model=tiny(name).train(), args=args, train_dataset=training_examples(name))
    trainer.save_model(str(tmp_path / "final"))  # transformers saves a bare state dict: no config.json
    with pytest.raises(OSError, match="has weights but no config.json.*roberta_prelayernorm.integrations.Trainer"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "final")


def test_package_trainer_writes_a_model_card(tmp_path):
    from roberta_prelayernorm.training import Trainer, TrainingConfig
    from training_utils import data, head, make_tiny_model

    base = make_tiny_model(str(tmp_path / "base"))
    (tmp_path / "base" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# base\n")
    train = head(data("sentiment_train.jsonl"), 16, tmp_path / "train.jsonl")
    trainer = Trainer(TrainingConfig(task="sequence-classification", model=base, train=str(train),
                                     validation=str(train), output_dir=str(tmp_path / "out"), max_steps=2,
                                     batch_size=8, max_length=64, progress=False))
    trainer.train()
    metric = trainer.task.metric
    card = (tmp_path / "out" / "best" / "README.md").read_text()
    front = card.split("---\n")[1]
    for line in ('library_name: "transformers"', 'pipeline_tag: "text-classification"',
                 f'base_model: "{base}"', 'license: "apache-2.0"', f'metrics: ["{metric}"]'):
        assert line in front.splitlines(), (line, front)
    assert f"- {metric}: " in card and (tmp_path / "out" / "last" / "README.md").is_file()


def test_question_answering_top_k_as_many_as_the_candidate_spans():
    """Found running the suite with transformers 5.x: top_k equal to the number of spans crashed argpartition."""
    import numpy as np

    from roberta_prelayernorm.pipelines.question_answering import best_spans

    logits = np.random.default_rng(0).normal(size=(2, 4))
    starts, ends, scores, _ = best_spans(logits[0], logits[1], np.zeros(4, bool), 1.0, top_k=16,
                                         handle_impossible_answer=False, max_answer_len=15)
    assert len(starts) == 16 and list(scores) == sorted(scores, reverse=True)
