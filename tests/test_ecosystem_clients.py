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
