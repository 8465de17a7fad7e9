"""text-classification (alias sentiment-analysis): labels with scores for texts or text pairs."""

from __future__ import annotations

from .base import Pipeline, check_int

FUNCTIONS = ("softmax", "sigmoid", "none")
TOKENIZER_OPTIONS = ("truncation", "max_length")


class TextClassificationPipeline(Pipeline):
    """`classifier("text")` -> [{"label", "score"}]; `classifier(["a", "b"])` -> one dict each.

    Inputs are texts or `{"text": ..., "text_pair": ...}` dicts. `top_k=n` returns the n best labels of each
    input as a list (`top_k=None`: all labels), best first. `function_to_apply` ("softmax", "sigmoid", "none")
    defaults as in transformers: none for regression, sigmoid for multi-label or a single label, else softmax.
    `truncation` and `max_length` go to the tokenizer.
    """

    task = "text-classification"
    # top_k "" means "not given": transformers' legacy output (one dict per input) rather than a list.
    defaults = {"top_k": "", "function_to_apply": None, "truncation": None, "max_length": None}

    def check_options(self, options):
        options = super().check_options(options)
        top_k = options["top_k"]
        if top_k != "":  # "": not given (see defaults)
            check_int("top_k", top_k, 1, none_means="all labels")
        function = options["function_to_apply"]
        if function is not None and str(function).lower() not in FUNCTIONS:
            raise ValueError(f"function_to_apply={function!r} is not one of {FUNCTIONS}")
        return options

    def preprocess(self, item, options):
        tokenizer_options = {key: options[key] for key in TOKENIZER_OPTIONS if options[key] is not None}
        if isinstance(item, dict):
            if set(item) - {"text", "text_pair"} or "text" not in item:
                raise ValueError(
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
            raise ValueError(
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
