"""fill-mask: the likeliest tokens for each <mask> in a text."""

from __future__ import annotations

import logging

from ..errors import SettingError
from .base import Pipeline, check_int
from .command import TEXT, Command, positive_int

logger = logging.getLogger("roberta_prelayernorm")


def fill_mask_options(parser):
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts with <mask> (else --input or stdin)")
    parser.add_argument("--top-k", type=positive_int, default=5, help="candidates per mask (default 5)")
    parser.add_argument("--targets", action="append",
                        help="limit the candidates to this token (repeat for each)")


class FillMaskPipeline(Pipeline):
    """`fill("The capital of France is <mask>.")` -> the `top_k` (5) best tokens for the mask, each as
    {"score", "token", "token_str", "sequence"}. With several masks in a text, one such list per mask.

    `targets` (a token or list) limits the candidates; a target that is not one token of the vocabulary is
    replaced by its first token, with a warning. `tokenizer_kwargs` (e.g. {"truncation": True}) go to the
    tokenizer.
    """

    task = "fill-mask"
    command = Command(
        "fill-mask", "predict the tokens hidden by <mask>", fields=TEXT, optional={},
        example='roberta-prelayernorm fill-mask --model andreasmadsen/efficient_mlm_m0.40 '
                '"The capital of France is <mask>." --top-k 3',
        add_options=fill_mask_options, options=lambda a: {"top_k": a.top_k, "targets": a.targets},
        from_args=lambda a: [{"text": t} for t in a.texts])
    output_keys = ("probs",)
    defaults = {"top_k": 5, "targets": None, "tokenizer_kwargs": None}

    def check_options(self, options):
        options = super().check_options(options)
        top_k = options["top_k"]
        check_int("top_k", top_k, 1)
        if top_k > self.model.config.vocab_size:
            raise SettingError(f"top_k={top_k} is more than the model's vocabulary of {self.model.config.vocab_size} "
                               "tokens")
        if self.tokenizer.mask_token_id is None:
            raise SettingError("fill-mask needs a tokenizer with a mask token; this one has none")
        if options["targets"] is not None:
            options["target_ids"] = self.target_ids(options["targets"])
        return options

    def target_ids(self, targets) -> list[int]:
        """Vocabulary ids of the targets (as transformers finds them), without duplicates."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            if not isinstance(target, str):
                raise SettingError(f"targets must be strings, got {target!r}")
            if target in vocab:
                ids.append(vocab[target])
                continue
            first = self.tokenizer(target, add_special_tokens=False, max_length=1, truncation=True)["input_ids"]
            if not first:
                logger.warning("The target %r is not in the vocabulary and has no tokens; it is ignored", target)
                continue
            logger.warning("The target %r is not in the vocabulary; using its first token %r instead",
                           target, self.tokenizer.convert_ids_to_tokens(first[0]))
            ids.append(first[0])
        if not ids:
            raise SettingError(f"targets={targets!r} leaves no candidate token")
        return sorted(set(ids))

    def preprocess(self, item, options):
        if not isinstance(item, str):
            raise SettingError(f"fill-mask inputs must be texts, got {type(item).__name__}: {item!r:.80}")
        input_ids = self.tokenizer(item, **(options["tokenizer_kwargs"] or {}))["input_ids"]
        masks = [i for i, token in enumerate(input_ids) if token == self.tokenizer.mask_token_id]
        if not masks:
            raise SettingError(f"no mask token ({self.tokenizer.mask_token}) in the input {item!r:.80}")
        return [{"input_ids": input_ids, "masks": masks}]

    def forward(self, batch):
        # The LM head projects to the whole vocabulary: run it on the masked positions only.
        import torch

        model = self.model
        hidden = model.backbone()(**batch).last_hidden_state
        masked = batch["input_ids"] == self.tokenizer.mask_token_id
        probs = torch.zeros(hidden.shape[0], int(masked.sum(1).max()), model.config.vocab_size,
                            device=hidden.device)
        slot = masked.cumsum(1) - 1  # each mask's place among its row's masks
        rows, cols = masked.nonzero(as_tuple=True)
        probs[rows, slot[rows, cols]] = model.lm_head(hidden[rows, cols]).float().softmax(-1)
        return {"probs": probs}

    def unbatch(self, model_output, row, feature):
        return {"probs": model_output["probs"][row, :len(feature["masks"])].cpu()}

    def postprocess(self, item, features, outputs, options):
        (feature,), probs = features, outputs[0]["probs"]
        target_ids = options.get("target_ids")
        top_k = options["top_k"]
        if target_ids is not None:
            probs = probs[:, target_ids]
            top_k = min(top_k, len(target_ids))
        values, predictions = probs.topk(top_k)
        single_mask = len(feature["masks"]) == 1
        result = []
        for position, row_values, row_predictions in zip(feature["masks"], values.tolist(), predictions.tolist()):
            row = []
            for score, token in zip(row_values, row_predictions):
                if target_ids is not None:
                    token = target_ids[token]
                ids = list(feature["input_ids"])
                ids[position] = token
                ids = [i for i in ids if i != self.tokenizer.pad_token_id]
                # With several masks the others stay visible, so special tokens are kept (as transformers).
                sequence = self.tokenizer.decode(ids, skip_special_tokens=single_mask)
                row.append({"score": score, "token": token, "token_str": self.tokenizer.decode([token]),
                            "sequence": sequence})
            result.append(row)
        return result[0] if single_mask else result
