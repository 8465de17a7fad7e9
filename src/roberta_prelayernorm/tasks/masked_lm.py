"""Masked-LM pre-training, and the fill-mask pipeline."""

from __future__ import annotations

import dataclasses

from ..errors import SettingError
from ..flags import flag, need
from . import metrics
from .base import MASK_MODES, Options, Task, record_text


@dataclasses.dataclass
class MaskedLMOptions(Options):
    mlm_probability: float = flag(0.15, "masking rate")
    mask_mode: str = flag("80-10-10", "chosen tokens become <mask>/random/kept 80/10/10, or all <mask>",
                          choices=MASK_MODES)

    def check(self, max_length: int) -> None:
        need(0 < self.mlm_probability < 1, self, "mlm_probability", "a rate in (0, 1)")
        need(self.mask_mode in MASK_MODES, self, "mask_mode", "'80-10-10' or 'mask'")


class MaskedLM(Task):
    """Masked-LM pre-training: each text is <s> text </s>, the texts concatenated and cut into blocks of
    max_length tokens (the last may be shorter); a fresh `rate` of the tokens is masked in every batch."""

    name = "masked-lm"
    pipeline_names = ("fill-mask",)
    hub_tag = "fill-mask"
    Options = MaskedLMOptions
    reads_corpus = True
    replaces_mismatched_head = False  # the LM head is the vocabulary's: a mismatch is an error
    record_format = (
        '  masked-lm                {"text": str}; texts are concatenated and cut into full max_length blocks.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForMaskedLM as head
        return head

    metric = "loss"
    greater_is_better = False

    def __init__(self, tokenizer, max_length: int = 128, **options):
        super().__init__(tokenizer, max_length, **options)
        if tokenizer.mask_token_id is None:
            raise SettingError("the tokenizer has no mask token; masked-lm needs one")

    @classmethod
    def predicted_share(cls, options) -> float:
        return options.mlm_probability  # sparse prediction: the LM head runs at the masked tokens

    def examples(self, records):
        return [{"text": record_text(r, "text")} for r in records]

    def features(self, examples):
        stream, special = [], []
        for start in range(0, len(examples), 1000):
            encoding = self.tokenizer([e["text"] for e in examples[start:start + 1000]],
                                      return_special_tokens_mask=True, verbose=False)
            for ids, mask in zip(encoding["input_ids"], encoding["special_tokens_mask"]):
                stream += ids
                special += mask
        return [{"input_ids": stream[i:i + self.max_length], "special_tokens_mask": special[i:i + self.max_length],
                 "attention_mask": [1] * len(stream[i:i + self.max_length]), "example": i // self.max_length}
                for i in range(0, len(stream), self.max_length)]

    def collate(self, features, generator=None):
        """A masked batch with the masked positions as `prediction_positions` (B, K), K the static capacity of
        the batch's width, so the model predicts at those slots only (sparse prediction)."""
        from ..modeling import positions_where
        from .collate import capacity, mask_tokens

        rate = self.options.mlm_probability
        batch = self.pad(features, ("input_ids", "attention_mask", "special_tokens_mask"))
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], batch.pop("special_tokens_mask"), rate, self.options.mask_mode,
            self.tokenizer.mask_token_id, len(self.tokenizer), generator)
        batch["prediction_positions"] = positions_where(batch["labels"] != -100,
                                                        capacity(rate, batch["input_ids"].size(1)))
        return batch

    def outputs(self, batch, output):
        import torch.nn.functional as F

        from ..modeling import labels_at

        positions = batch["prediction_positions"].to(output.logits.device)  # (B, K); logits (B, K, V)
        labels = labels_at(batch["labels"].to(positions.device), positions)
        losses = F.cross_entropy(output.logits.flatten(0, 1).float(), labels.flatten(), reduction="none")
        sums = losses.view(labels.shape).sum(1)  # ignored slots add 0
        return list(zip(sums.tolist(), (labels != -100).sum(1).tolist()))

    def score(self, examples, features, outputs):
        total, count = sum(s for s, _ in outputs), sum(c for _, c in outputs)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": metrics.perplexity(loss), "masked_tokens": count}
