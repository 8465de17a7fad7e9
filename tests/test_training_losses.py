"""training/losses.py: non-finite losses stop the run or are skipped, counted and reported."""

import json

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.training import NonFiniteLossError, Trainer
from training_utils import config, train_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("read_at_the_log", [False, True])
@pytest.mark.parametrize("action", ["stop", "skip"])
def test_non_finite_loss(tmp_path, tiny, action, read_at_the_log, monkeypatch):
    """A NaN at step 3 stops the run naming step 3, or is skipped with the weights left finite. With an optimizer
    that skips a bad step itself (the fused AdamW's found_inf, as on CUDA; its CPU kernel here), the host reads
    the losses only when the log needs them, and still names the step."""
    import math

    import roberta_prelayernorm.training.state as state
    from roberta_prelayernorm.training.losses import StepLosses

    reads = []
    if read_at_the_log:
        monkeypatch.setattr(state, "fused_on", lambda params: True)
        settle = StepLosses.settle
        monkeypatch.setattr(StepLosses, "settle", lambda self, s: reads.append(len(self.pending)) or settle(self, s))
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=8, log_every=4,
                             on_nonfinite=action))
    calls = []

    def poison(module, inputs, output):  # the third forward pass (step 3) gives NaN logits
        calls.append(1)
        return output * float("nan") if len(calls) == 3 else output

    trainer.model.classifier.register_forward_hook(poison)
    if action == "stop":
        with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 \(epoch 0, batch 0"):
            trainer.train()
        assert reads == ([4] if read_at_the_log else [])
        return
    trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    losses = [entry["loss"] for entry in trainer.history if entry["split"] == "train"]
    assert math.isnan(losses[0]) and math.isfinite(losses[1])
    # steps 1-4 read at the first log, 5-6 for the checkpoint at the epoch's end (6 steps), 7-8 at the last log
    assert reads == ([4, 2, 2] if read_at_the_log else [])


def poison_from(trainer, first: int, last: int = 10**9) -> None:
    """Make forward passes first..last (1-based; one per step here) give NaN logits."""
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        return output * float("nan") if first <= len(calls) <= last else output

    trainer.model.classifier.register_forward_hook(poison)


def test_skipped_steps_are_counted_and_reported_without_progress(tmp_path, tiny, caplog):
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=8, log_every=4,
                             eval_every=None, validation=None, on_nonfinite="skip"))
    poison_from(trainer, 3, 4)
    with caplog.at_level("WARNING", logger="roberta_prelayernorm.training"):
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if r.name == "roberta_prelayernorm.training"]
    assert "at step 3" in warnings[0] and "(1 skipped so far)" in warnings[0]
    assert "at step 4" in warnings[1] and "(2 skipped so far)" in warnings[1]
    assert warnings[2] == "2 of 8 steps were skipped for a non-finite loss (on_nonfinite='skip')"
    def strict(word):
        raise ValueError(f"{word} is not JSON")

    lines = [json.loads(line, parse_constant=strict) for line in open(tmp_path / "out" / "metrics.jsonl")]
    assert [(e["step"], e["skipped_steps"]) for e in lines if e["split"] == "train"] == [(4, 2), (8, 2)]
    assert lines[0]["loss"] is None  # the mean of steps 1-4, two of them NaN: null in strict JSON


def test_a_run_skipping_more_than_its_share_stops(tmp_path, tiny, caplog):
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=40, log_every=4,
                             eval_every=None, validation=None, on_nonfinite="skip", max_skipped_share=0.25))
    poison_from(trainer, 5)
    with caplog.at_level("WARNING", logger="roberta_prelayernorm.training"), \
            pytest.raises(NonFiniteLossError, match=r"11 steps skipped for a non-finite loss, more than the 10 that "
                                                     r"max_skipped_share allows \(the last: non-finite loss \(nan\) at "
                                                     r"step 15"):
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if r.name == "roberta_prelayernorm.training"]
    assert len(warnings) == 10 and warnings[9].endswith("(10 skipped so far; further skips are reported every 100th)")
    with pytest.raises(ValueError, match="max_skipped_share=1.5 is not allowed"):
        Trainer(config(tmp_path, "sequence-classification", tiny, max_skipped_share=1.5))
    with pytest.raises(ValueError, match=r"seed=18446744073709551616 is not allowed: an int in \[0, 2\*\*64\)"):
        Trainer(config(tmp_path, "sequence-classification", tiny, seed=2**64))


def test_every_step_skipped_is_an_error_and_saves_nothing(tmp_path, tiny):
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tiny, num_labels=2)
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(float("nan"))
    config = train_config(tmp_path, tiny, on_nonfinite="skip", validation=False)
    with pytest.raises(NonFiniteLossError, match="no optimizer step was taken"):
        Trainer(config, model=model).train()
    assert not (tmp_path / "out" / "last").exists()
