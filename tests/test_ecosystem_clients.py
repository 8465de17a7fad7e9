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


# -- transformers.pipeline, TorchScript, generate, PEFT: transformers' own class as the control -------
def pair(name: str, vocab_size: int = 99, **overrides):
    """(ours, transformers') with the same random weights."""
    import transformers

    ours = tiny(name, vocab_size=vocab_size, **overrides)
    theirs = getattr(transformers, name)(transformers.RobertaPreLayerNormConfig(**ours.config.to_dict())).eval()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


PIPELINES = [("text-classification", "RobertaPreLayerNormForSequenceClassification", ("hello world",), {}),
             ("token-classification", "RobertaPreLayerNormForTokenClassification", ("hello big world",), {}),
             ("question-answering", "RobertaPreLayerNormForQuestionAnswering", (),
              {"question": "who lives here?", "context": "Jim lives in the house"}),
             ("fill-mask", "RobertaPreLayerNormForMaskedLM", ("hello <mask> world",), {}),
             ("text-generation", "RobertaPreLayerNormForCausalLM", ("hello world",),
              {"max_new_tokens": 3, "do_sample": False})]


@pytest.mark.parametrize("task,name,args,kwargs", PIPELINES, ids=[p[0] for p in PIPELINES])
def test_transformers_pipeline_takes_this_model_and_tokenizer(tokenizers, task, name, args, kwargs):
    import transformers

    extra = {"is_decoder": True} if name == "RobertaPreLayerNormForCausalLM" else {}
    models = pair(name, vocab_size=len(tokenizers[0]), **extra)
    results = [transformers.pipeline(task, model=model, tokenizer=tokenizer, device="cpu")(*args, **kwargs)
               for model, tokenizer in zip(models, tokenizers)]
    if task == "text-generation":  # transformers' generate counts RoBERTa positions from 0: its own forward decides
        prompt = tokenizers[1](args[0], return_tensors="pt")["input_ids"]
        tokens = greedy(models[1], prompt, kwargs["max_new_tokens"])[0, prompt.size(1):]
        results[1] = [{"generated_text": args[0] + tokenizers[1].decode(tokens)}]
    assert_same(*results)


def greedy(model, ids, steps: int) -> torch.Tensor:
    """Greedy decoding by whole forwards (no cache, no end token): what generate() must give."""
    with torch.no_grad():
        for _ in range(steps):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def assert_same(ours, theirs) -> None:
    """Equal structures and strings, numbers within 1e-4."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), (ours, theirs)
        for key in theirs:
            assert_same(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b)
    elif isinstance(theirs, str):
        assert ours == theirs
    else:
        assert float(ours) == pytest.approx(float(theirs), abs=1e-4)


def test_feature_extraction_pipeline_with_tuple_outputs(tokenizers):
    """transformers' pipeline rebuilds outputs it does not know as plain dicts, then reads [0]: tuple outputs
    (config.return_dict = False, the README's line) survive that."""
    import transformers

    ours, theirs = pair("RobertaPreLayerNormModel", vocab_size=len(tokenizers[0]))
    ours.config.return_dict = False
    got, expected = (transformers.pipeline("feature-extraction", model=model, tokenizer=tokenizer, device="cpu")(
        "hello world") for model, tokenizer in zip((ours, theirs), tokenizers))
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["RobertaPreLayerNormModel", "RobertaPreLayerNormForSequenceClassification",
                                  "RobertaPreLayerNormForMultipleChoice", "RobertaPreLayerNormForTokenClassification",
                                  "RobertaPreLayerNormForQuestionAnswering", "RobertaPreLayerNormForMaskedLM"])
# The legacy APIs this test drives, as users still call them: torch's deprecation notices and the tracer's.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning",
                            "ignore:.*operator of advanced indexing in opset:UserWarning")
def test_torch_jit_trace_and_torchscript_onnx_export(tmp_path, name):
    """Traced and exported on a ragged batch, equal on its real tokens (outputs at padding are not part of the
    contract: the eager model packs the real tokens, the traced one runs the padded path)."""
    model, batch = tiny(name), inputs_for(name)
    args = (batch["input_ids"], batch["attention_mask"])
    traced = torch.jit.trace(model, args, strict=False)
    expected = model(*args)
    got = traced(*args)
    real = batch["attention_mask"].bool()

    def at_real_tokens(t):
        return t[real] if t.shape[:real.dim()] == real.shape else t

    for key in expected.keys():
        torch.testing.assert_close(at_real_tokens(got[key]), at_real_tokens(expected[key]), msg=key)
    import onnxruntime

    torch.onnx.export(model, args, str(tmp_path / "model.onnx"), dynamo=False)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    first = session.run(None, feeds)[0]  # the first output field, on the export's own inputs
    torch.testing.assert_close(at_real_tokens(torch.from_numpy(first)), at_real_tokens(expected[0]), atol=1e-4,
                               rtol=1e-4)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("example_lengths", [(9, 9, 9), (9, 6, 3)], ids=["unpadded", "ragged"])
def test_a_traced_model_answers_other_masks_of_its_shape(monkeypatch, example_lengths):
    """torch.jit.trace keeps what one example decided: the model neither drops a mask without padding (it would
    trace a graph without one) nor packs by the example's lengths (length buckets, here at no overhead)."""
    from roberta_prelayernorm import modeling

    monkeypatch.setattr(modeling, "BUCKET_OVERHEAD", 0)  # buckets wherever the lengths differ
    name = "RobertaPreLayerNormForTokenClassification"
    model, example = tiny(name), inputs_for(name, lengths=example_lengths)
    traced = torch.jit.trace(model, (example["input_ids"], example["attention_mask"]), strict=False)
    other = inputs_for(name, lengths=(2, 9, 5), seed=1)
    with torch.no_grad():
        expected, got = model(**other).logits, traced(other["input_ids"], other["attention_mask"])["logits"]
    real = other["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real])


def test_generate_takes_transformers_arguments():
    ours, theirs = pair("RobertaPreLayerNormForCausalLM", is_decoder=True)
    ids = torch.tensor([[0, 5, 17, 42]])
    expected = greedy(theirs, ids, 5)
    assert torch.equal(ours.generate(ids, max_length=9, eos_token_id=-1), expected)
    config = ours.generation_config
    config.max_new_tokens, config.eos_token_id = 5, [-1]
    out = ours.generate(input_ids=ids, generation_config=config, return_dict_in_generate=True)
    assert torch.equal(out.sequences, expected)
    assert ours.can_generate() and not rp.RobertaPreLayerNormForMaskedLM.can_generate()
    with pytest.raises(ValueError, match="num_beams=2 is not supported"):
        ours.generate(ids, num_beams=2)


def forward_positions(theirs):
    """transformers' causal LM, its generate() giving each new token the position its own forward gives it.
    transformers' generate numbers positions from 0 (attention_mask.cumsum - 1) where RoBERTa's forward numbers
    them from pad_token_id + 1, so its generate picks other tokens than its forward would; generate() here
    follows the forward (test_generate_takes_transformers_arguments). Everything else is transformers' own."""
    class Forward(type(theirs)):
        def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs):
            inputs = super().prepare_inputs_for_generation(input_ids, past_key_values=past_key_values,
                                                           attention_mask=attention_mask, **kwargs)
            inputs.pop("position_ids", None)  # the forward makes them from input_ids and the cache's length
            return inputs

    theirs.__class__ = Forward
    return theirs


GENERATE_CALLS = {  # name: (generate's arguments, a seed for sampling); "config" stands for a GenerationConfig
    "defaults": ({}, None),
    "max_length": ({"max_length": 9}, None),
    "sampling": ({"do_sample": True}, 3),  # transformers samples among the 50 likeliest tokens by default
    "sampling with temperature": ({"do_sample": True, "temperature": 0.7, "max_new_tokens": 10}, 5),
    "config's max_new_tokens over max_length": ({"config": {"max_new_tokens": 5}, "max_length": 12}, None),
    "config's defaults from the model's": ({"config": {"max_length": 10, "do_sample": False}}, None),
    "eos list, pad from eos": ({"eos_token_id": [2, 36], "pad_token_id": None, "max_new_tokens": 12}, None),
}


@pytest.mark.parametrize("call", GENERATE_CALLS)
def test_generate_defaults_as_transformers(call):
    import transformers

    ours, theirs = pair("RobertaPreLayerNormForCausalLM", is_decoder=True)
    theirs = forward_positions(theirs)
    kwargs, seed = GENERATE_CALLS[call]
    kwargs = dict(kwargs)
    if "config" in kwargs:
        kwargs["generation_config"] = transformers.GenerationConfig(**kwargs.pop("config"))
    prompts = torch.randint(3, 99, (2, 4), generator=torch.Generator().manual_seed(0))
    got = []
    for model in (ours, theirs):
        if seed is not None:
            torch.manual_seed(seed)
        got.append(model.generate(prompts, **kwargs))
    assert torch.equal(got[0], got[1]), (got[0].tolist(), got[1].tolist())


def test_generate_reads_the_checkpoints_generation_config_as_transformers(tmp_path):
    import transformers

    ours, _ = pair("RobertaPreLayerNormForCausalLM", is_decoder=True)
    ours.generation_config.max_new_tokens, ours.generation_config.eos_token_id = 3, 36
    ours.save_pretrained(tmp_path)  # generation_config.json beside config.json, as transformers writes it
    loaded = rp.RobertaPreLayerNormForCausalLM.from_pretrained(tmp_path)
    theirs = forward_positions(transformers.RobertaPreLayerNormForCausalLM.from_pretrained(tmp_path))
    assert theirs.generation_config.max_new_tokens == 3
    prompts = torch.randint(3, 99, (2, 4), generator=torch.Generator().manual_seed(0))
    got, expected = loaded.generate(prompts), theirs.generate(prompts)
    assert torch.equal(got, expected) and got.shape == (2, 7)
    (tmp_path / "generation_config.json").write_text('{"max_new_tokens": "5"}')
    with pytest.raises(ValueError, match=r"generation_config.json: max_new_tokens must be an int, got str '5'$"):
        rp.RobertaPreLayerNormForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "generation_config.json").write_text('{"repetition_penalty": 1.2}')
    loaded = rp.RobertaPreLayerNormForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"^generation setting repetition_penalty=1.2 is not supported \(only 1.0\)"):
        loaded.generate(prompts)  # refused, not ignored: transformers' tokens would differ


def test_peft_causal_lm_task_type_trains_and_generates():
    from peft import LoraConfig, get_peft_model

    adapted = []
    for model in pair("RobertaPreLayerNormForCausalLM", is_decoder=True):
        torch.manual_seed(0)
        lora = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", target_modules=["query", "value"],
                                                init_lora_weights=False))
        ids = torch.tensor([[0, 5, 17, 42, 2]])
        lora(input_ids=ids, labels=ids).loss.backward()
        adapted.append(lora)
    prompt = torch.tensor([[0, 5, 17]])
    got = adapted[0].generate(input_ids=prompt, max_new_tokens=4, do_sample=False, eos_token_id=-1)
    assert torch.equal(got, greedy(adapted[1], prompt, 4))  # transformers' adapted forward decides


def test_model_utilities_transformers_has(tmp_path):
    import transformers

    ours, theirs = pair("RobertaPreLayerNormForSequenceClassification")
    assert ours.main_input_name == theirs.main_input_name == "input_ids"
    backbone = ours.roberta_prelayernorm
    assert ours.base_model is backbone and backbone.base_model is backbone
    # transformers also counts its position_ids and token_type_ids buffers, which this model does not hold
    assert ours.get_memory_footprint(return_buffers=False) == theirs.get_memory_footprint(return_buffers=False)
    assert ours.get_memory_footprint() == sum(p.numel() * 4 for p in ours.parameters())
    calls = []
    ours.save_pretrained(tmp_path, safe_serialization=False, save_function=lambda state, path: calls.append(path)
                         or torch.save(state, path))
    assert len(calls) == 1
    assert transformers.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path) is not None


def test_enable_input_require_grads_lets_checkpointing_train_adapters_over_frozen_embeddings():
    model = tiny("RobertaPreLayerNormForSequenceClassification").train()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model.classifier.out_proj.weight.requires_grad_(True)
    model.roberta_prelayernorm.encoder.layer[0].attention.self.query.weight.requires_grad_(True)
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    batch = inputs_for("RobertaPreLayerNormForSequenceClassification")
    model(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert model.roberta_prelayernorm.encoder.layer[0].attention.self.query.weight.grad is not None
    model.disable_input_require_grads()
