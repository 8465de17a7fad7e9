"""Clients of transformers models run on this package's models, each with transformers' own class as the control:
the plain transformers Trainer, pipeline(), TorchScript, datasets, PEFT and the hub."""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from test_ecosystem import TRAINER_HEADS, inputs_for, tiny, training_examples

pytestmark = pytest.mark.slow  # transformers' Trainer, pipelines, PEFT: `make test-fast` leaves them out


# -- transformers' plain Trainer ----------------------------------------------------------------------
def plain_trainer(model, name: str, output_dir, max_steps: int = 4):
    import transformers

    args = transformers.TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=4, save_steps=2,
        learning_rate=1e-3, use_cpu=True, report_to=[], seed=0, dataloader_num_workers=0, disable_tqdm=True)
    return transformers.Trainer(model=model, args=args, train_dataset=training_examples(name))


@pytest.mark.parametrize("name", TRAINER_HEADS)
def test_plain_transformers_trainer_checkpoints_and_resumes_every_head(tmp_path, name):
    straight = tiny(name).train()
    plain_trainer(straight, name, tmp_path / "straight").train()  # saves checkpoint-2 and checkpoint-4
    assert (tmp_path / "straight" / "checkpoint-2" / "model.safetensors").is_file()
    resumed = tiny(name, seed=5).train()  # other weights: the checkpoint must replace them
    plain_trainer(resumed, name, tmp_path / "resumed").train(
        resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-2"))
    if name in ("RobertaPreLayerNormForMaskedLM", "RobertaPreLayerNormForCausalLM"):
        assert resumed.lm_head.decoder.weight is resumed.roberta_prelayernorm.embeddings.word_embeddings.weight
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, msg=key)


def test_state_dict_aliases_no_tensor_and_save_pretrained_stores_tied_weights_once(tmp_path):
    """Keys stay transformers' (test_modeling checks them); the tied decoder is a copy in state_dict() only."""
    from safetensors import safe_open

    model = tiny("RobertaPreLayerNormForMaskedLM")
    state = model.state_dict()
    pointers = [t.data_ptr() for t in state.values()]
    assert len(pointers) == len(set(pointers))
    torch.testing.assert_close(state["lm_head.decoder.weight"],
                               state["roberta_prelayernorm.embeddings.word_embeddings.weight"], rtol=0, atol=0)
    assert model.state_dict(keep_vars=True)["lm_head.decoder.weight"] is model.lm_head.decoder.weight
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert "lm_head.decoder.weight" not in f.keys() and "lm_head.bias" in f.keys()


# -- the tokenizer in transformers' and datasets' hands ------------------------------------------------
@pytest.fixture
def tokenizers(bpe_dir):
    """This package's tokenizer and transformers' on the same files (the control)."""
    import transformers

    return rp.AutoTokenizer.from_pretrained(bpe_dir), transformers.RobertaTokenizerFast(
        vocab_file=str(bpe_dir / "vocab.json"), merges_file=str(bpe_dir / "merges.txt"))


def test_truncation_and_padding_enums_are_taken_as_their_values(tokenizers):
    from transformers.tokenization_utils_base import TruncationStrategy
    from transformers.utils import PaddingStrategy

    for tokenizer in tokenizers:
        encoded = tokenizer(["a much longer sentence than four tokens", "a"], max_length=4,
                            truncation=TruncationStrategy.LONGEST_FIRST, padding=PaddingStrategy.MAX_LENGTH)
        assert [len(ids) for ids in encoded["input_ids"]] == [4, 4]
    ours, theirs = (t("a much longer sentence", truncation=TruncationStrategy.ONLY_FIRST, max_length=3,
                      padding=PaddingStrategy.LONGEST) for t in tokenizers)
    assert dict(ours) == dict(theirs)


def test_datasets_map_fingerprint_does_not_change_when_the_tokenizer_is_used(tokenizers):
    """datasets caches a map under a hash of its function, the tokenizer's pickled state included."""
    from datasets import Dataset

    data = Dataset.from_dict({"text": ["hello world", "a longer sentence to cut"]})
    for tokenizer in tokenizers:
        def tokenize(batch, tokenizer=tokenizer):
            return tokenizer(batch["text"], truncation=True, max_length=4)

        before = data.map(tokenize, batched=True)._fingerprint
        tokenizer(["used once with other settings"], truncation=True, max_length=3, padding="max_length")
        assert data.map(tokenize, batched=True)._fingerprint == before, type(tokenizer).__name__


def test_convert_id_to_token_as_transformers(tokenizers):
    ours, theirs = tokenizers
    assert [ours._convert_id_to_token(i) for i in (0, 5, 300, len(ours) - 1)] == \
        [theirs._convert_id_to_token(i) for i in (0, 5, 300, len(theirs) - 1)]


def test_tokenizer_push_to_hub_uploads_its_files(tokenizers, monkeypatch):
    import huggingface_hub

    from test_ecosystem import FakeHfApi

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.calls = []
    assert tokenizers[0].push_to_hub("org/tok", private=True, token="t") == "commit of org/tok"
    (create, *repo), (upload, repo_id, files, message, create_pr) = FakeHfApi.calls
    assert (create, upload, repo_id, message, create_pr) == ("create_repo", "upload_folder", "org/tok",
                                                            "Upload tokenizer", False)
    assert {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"} <= set(files)


def test_package_trainer_pads_with_this_tokenizer_and_no_collator(tokenizers, tmp_path):
    """transformers' Trainer picks DataCollatorWithPadding only for its own tokenizer classes; the subclass does
    it for this package's (the plain Trainer takes data_collator=DataCollatorWithPadding(tokenizer): below)."""
    import transformers

    from roberta_prelayernorm.integrations import Trainer

    tokenizer = tokenizers[0]
    model = tiny("RobertaPreLayerNormForSequenceClassification", vocab_size=len(tokenizer)).train()
    examples = [{**tokenizer(text), "label": i % 2} for i, text in enumerate(["hello world again", "a", "b c"] * 2)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=3,
                                          use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=examples, processing_class=tokenizer)
    assert isinstance(trainer.data_collator, transformers.DataCollatorWithPadding)
    trainer.train()


def test_data_collator_with_padding_pads_as_with_transformers_tokenizer(tokenizers):
    from transformers import DataCollatorWithPadding

    batches = []
    for tokenizer in tokenizers:
        features = [{**tokenizer(text), "label": label} for text, label in (("hello world again", 1), ("a", 0))]
        batches.append(DataCollatorWithPadding(tokenizer)(features))
    ours, theirs = batches
    assert ours.keys() == theirs.keys() == {"input_ids", "attention_mask", "labels"}
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
