"""Masked-LM pre-training, and the fill-mask pipeline."""

from __future__ import annotations

from ..training import metrics
from .base import Task, record_text


class MaskedLM(Task):
    """Masked-LM pre-training: each text is <s> text </s>, the texts concatenated and cut into blocks of
    max_length tokens (the last may be shorter); a fresh `rate` of the tokens is masked in every batch."""

    name = "masked-lm"
    pipeline_names = ("fill-mask",)
    record_format = (
        '  masked-lm                {"text": str}; texts are concatenated and cut into full max_length blocks.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForMaskedLM as head
        return head

    metric = "loss"
    greater_is_better = False
    sparse_prediction = True

    options = ("mlm_probability", "mask_mode")

    def __init__(self, tokenizer, max_length: int = 128, mlm_probability: float = 0.15,
                 mask_mode: str = "80-10-10"):
        from ..training.config import MASK_MODES

        super().__init__(tokenizer, max_length)
        rate = mlm_probability
        if not 0 < rate < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {rate}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; masked-lm needs one")
        self.rate, self.mask_mode = rate, mask_mode

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
        from ..training.collate import collate, mask_tokens

        batch = collate(features, self.tokenizer.pad_token_id, ("input_ids", "attention_mask", "special_tokens_mask"))
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], batch.pop("special_tokens_mask"), self.rate, self.mask_mode,
            self.tokenizer.mask_token_id, len(self.tokenizer), generator)
        return batch

    def outputs(self, batch, output):
        import torch.nn.functional as F

        labels = batch["labels"].to(output.logits.device)
        labelled = labels != -100  # (B, T)
        logits = output.logits  # (M, V) with sparse prediction, else (B, T, V)
        if logits.dim() == 3:
            logits = logits[labelled]
        losses = F.cross_entropy(logits.float(), labels[labelled], reduction="none")  # (M,)
        rows = labelled.nonzero()[:, 0]  # row-major, the order of the sparse logits
        sums = losses.new_zeros(labels.size(0)).index_add_(0, rows, losses)
        return list(zip(sums.tolist(), labelled.sum(1).tolist()))

    def score(self, examples, features, outputs):
        total, count = sum(s for s, _ in outputs), sum(c for _, c in outputs)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": metrics.perplexity(loss), "masked_tokens": count}

    @staticmethod
    def pipeline_class() -> type:
        from ..pipelines.fill_mask import FillMaskPipeline as pipeline
        return pipeline
