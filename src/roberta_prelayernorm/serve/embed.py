"""Embeddings of any model of the package: its backbone's last hidden states, pooled, as a pipeline."""

from __future__ import annotations

from ..errors import SettingError
from ..pipelines.base import Pipeline
from ..tokenizer import fit_to_model

POOLINGS = ("cls", "mean")


class EmbeddingPipeline(Pipeline):
    """`embed(["a", "b"])` -> one vector per text: the hidden state of <s> ("cls") or the mean over all tokens
    ("mean"), L2-normalised unless `normalize=False`. Works on every head: it runs the backbone only."""

    output_keys = ("last_hidden_state",)
    token_outputs = output_keys
    defaults = {"pooling": "cls", "normalize": True, "truncation": None}

    def __init__(self, model, tokenizer, batch_size: int, **options):
        # Any head will do, so the base class's check of the head (by task) does not apply here.
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        fit_to_model(tokenizer, model.config)
        self.raw_options = {**self.defaults, **options}
        self.options = self.check_options(self.raw_options)

    def check_options(self, options):
        options = super().check_options(options)
        if options["pooling"] not in POOLINGS:
            raise SettingError(f"pooling={options['pooling']!r} is not one of {POOLINGS}")
        return options

    def preprocess(self, item, options):
        if not isinstance(item, str):
            raise SettingError(f"embedding inputs must be texts, got {type(item).__name__}: {item!r:.80}")
        truncation = {"truncation": True} if options["truncation"] else {}
        return [{"input_ids": self.tokenizer(item, **truncation)["input_ids"]}]

    def forward(self, batch):
        return {"last_hidden_state": self.model.backbone()(**batch).last_hidden_state}

    def postprocess(self, item, features, outputs, options):
        hidden = outputs[0]["last_hidden_state"].double()
        vector = hidden[0] if options["pooling"] == "cls" else hidden.mean(0)
        if options["normalize"]:
            vector = vector / vector.norm().clamp_min(1e-12)
        return vector.float().tolist()
