"""text-classification (alias sentiment-analysis): labels with scores for texts or text pairs."""

from __future__ import annotations

import argparse

from ..errors import SettingError
from .base import Pipeline, check_int
from .command import TEXT, Command, top_k_or_all

FUNCTIONS = ("softmax", "sigmoid", "none")
TOKENIZER_OPTIONS = ("truncation", "max_length")


def classify_options(parser):
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (else --input or stdin)")
    parser.add_argument("--text-pair", help="second text of a pair, for a single TEXT argument")
    parser.add_argument("--top-k", type=top_k_or_all,
                        help="give the N best labels of each input as a list ('all': every label); "
                             "default: the best label as one object")
    parser.add_argument("--function-to-apply", choices=("softmax", "sigmoid", "none"),
                        help="score function (default: from the config: softmax for single-label, sigmoid for "
                             "multi-label or one label, none for regression)")
    parser.add_argument("--truncation", action=argparse.BooleanOptionalAction, default=True,
                        help="cut texts longer than the model's length (default); --no-truncation reports them "
                             "as errors instead")


class TextClassificationPipeline(Pipeline):
    """`classifier("text")` -> [{"label", "score"}]; `classifier(["a", "b"])` -> one dict each.

    Inputs are texts or `{"text": ..., "text_pair": ...}` dicts. `top_k=n` returns the n best labels of each
    input as a list (`top_k=None`: all labels), best first. `function_to_apply` ("softmax", "sigmoid", "none")
    defaults as in transformers: none for regression, sigmoid for multi-label or a single label, else softmax.
    `truncation` and `max_length` go to the tokenizer.
    """

    task = "text-classification"
    command = Command(
        "classify", "label texts or text pairs with a sequence classifier", fields=TEXT, optional={"text_pair": str},
        example='roberta-prelayernorm classify --model ./my-classifier "What a great day" --top-k all\n'
                "  echo '{\"text\": \"A\", \"text_pair\": \"B\"}' | "
                "roberta-prelayernorm classify --model ./my-classifier",
        add_options=classify_options,
        # No --top-k: the best label as an object (the pipeline's top_k ""), "all": every label (None).
        options=lambda a: {"top_k": {None: "", "all": None}.get(a.top_k, a.top_k),
                           "function_to_apply": a.function_to_apply, "truncation": a.truncation or None},
        from_args=lambda a: [{"text": t, **({"text_pair": a.text_pair} if a.text_pair is not None else {})}
                             for t in a.texts])
    # top_k "" means "not given": transformers' legacy output (one dict per input) rather than a list.
    defaults = {"top_k": "", "function_to_apply": None, "truncation": None, "max_length": None}

    def check_options(self, options):
        options = super().check_options(options)
        top_k = options["top_k"]
        if top_k != "":  # "": not given (see defaults)
            check_int("top_k", top_k, 1, none_means="all labels")
        function = options["function_to_apply"]
        if function is not None and str(function).lower() not in FUNCTIONS:
            raise SettingError(f"function_to_apply={function!r} is not one of {FUNCTIONS}")
        return options

    def preprocess(self, item, options):
        tokenizer_options = {key: options[key] for key in TOKENIZER_OPTIONS if options[key] is not None}
        if isinstance(item, dict):
            if set(item) - {"text", "text_pair"} or "text" not in item:
                raise SettingError(
                    f"a text pair must be a dict with keys 'text' and 'text_pair', got keys {sorted(item)}"
                )
            text, pair = item["text"], item.get("text_pair")
            if isinstance(text, str) and isinstance(pair, (str, type(None))):
                text, pair = (self.cut_for_truncation(text, options, pair),
                              pair and self.cut_for_truncation(pair, options, text))
            encoding = self.tokenizer(text, pair, **tokenizer_options)
        elif isinstance(item, str):
            encoding = self.tokenizer(self.cut_for_truncation(item, options), **tokenizer_options)
        else:
            raise SettingError(
                f"inputs must be texts or {{'text': ..., 'text_pair': ...}} dicts, got {type(item).__name__}: "
                f"{item!r:.80}"
            )
        return [{"input_ids": encoding["input_ids"]}]

    def function_for(self, options) -> str:
        """The score function: the option, else what the config implies (transformers' rules, in order)."""
        if options["function_to_apply"] is not None:
            return str(options["function_to_apply"]).lower()
        config = self.model.config
        if config.problem_type == "regression":
            return "none"
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def postprocess(self, item, features, outputs, options):
        logits = outputs[0]["logits"].double()
        function = self.function_for(options)
        scores = logits.softmax(-1) if function == "softmax" else logits.sigmoid() if function == "sigmoid" else logits
        id2label = self.model.config.id2label
        if options["top_k"] == "":
            best = int(scores.argmax())
            return {"label": id2label[best], "score": float(scores[best])}
        ranked = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
        if options["top_k"] is not None:
            ranked = ranked[:options["top_k"]]
        return [{"label": id2label[i], "score": float(scores[i])} for i in ranked]

    def finish(self, items, results, single, options):
        # transformers' convention: without top_k, one text still gives a list of one dict (a pair dict gives
        # the bare dict); with top_k, one input gives its list of labels.
        if single and options["top_k"] == "" and isinstance(items[0], str):
            return results
        return super().finish(items, results, single, options)
