"""multiple-choice: rank a prompt's candidate continuations or answers (transformers has no such pipeline)."""

from __future__ import annotations

from ..errors import SettingError
from .base import Pipeline, check_int
from .command import Command, positive_int

TOKENIZER_OPTIONS = ("truncation", "max_length")


def choose_options(parser):
    parser.add_argument("--prompt", help="the prompt (with --choice; else --input or stdin)")
    parser.add_argument("--choice", action="append", default=[], help="a candidate answer (repeat for each)")
    parser.add_argument("--top-k", type=positive_int, help="keep the N best choices (default: all)")


class MultipleChoicePipeline(Pipeline):
    """`choose(prompt="...", choices=["a", "b"])` -> the choices ranked best first, each
    {"choice", "index" (its place in `choices`), "score" (softmax over the choices)}.

    Inputs: prompt= and choices=, a {"prompt", "choices"} dict, or a list of dicts. `top_k` keeps the best n
    (default None: all). Each (prompt, choice) pair is encoded as the model was trained on them,
    `<s> prompt </s></s> choice </s>`; `truncation` and `max_length` go to the tokenizer.
    """

    task = "multiple-choice"
    command = Command(
        "choose", "rank the candidate answers to a prompt", fields={"prompt": str, "choices": list}, optional={},
        example='roberta-prelayernorm choose --model ./my-swag --prompt "She opened the umbrella" '
                '--choice "because it rained." --choice "because it was dry."',
        add_options=choose_options, options=lambda a: {"top_k": a.top_k, "truncation": True},
        from_args=lambda a: [{"prompt": a.prompt, "choices": a.choice}] if a.prompt is not None or a.choice else [])

    defaults = {"top_k": None, "truncation": None, "max_length": None}

    def check_options(self, options):
        options = super().check_options(options)
        top_k = options["top_k"]
        check_int("top_k", top_k, 1, none_means="all choices")
        return options

    def split_inputs(self, inputs, kwargs):
        prompt, choices = kwargs.pop("prompt", None), kwargs.pop("choices", None)
        if inputs is not None:
            if prompt is not None or choices is not None:
                raise TypeError("give inputs (dicts) or prompt= and choices=, not both")
            if isinstance(inputs, dict):
                return [inputs], True
            return list(inputs), False
        if prompt is None or choices is None:
            raise TypeError("multiple-choice needs prompt= and choices= (or {'prompt', 'choices'} dicts)")
        return [{"prompt": prompt, "choices": choices}], True

    def preprocess(self, item, options):
        if not isinstance(item, dict) or set(item) != {"prompt", "choices"}:
            raise SettingError(f"a multiple-choice input must be a dict with keys 'prompt' and 'choices', got "
                               f"{item!r:.80}")
        prompt, choices = item["prompt"], item["choices"]
        if not isinstance(prompt, str):
            raise SettingError(f"prompt must be a string, got {prompt!r:.80}")
        if not isinstance(choices, (list, tuple)) or not choices or not all(isinstance(c, str) for c in choices):
            raise SettingError(f"choices must be a non-empty list of strings, got {choices!r:.80}")
        tokenizer_options = {key: options[key] for key in TOKENIZER_OPTIONS if options[key] is not None}
        prompts = [self.cut_for_truncation(prompt, options, choice) for choice in choices]
        choices = [self.cut_for_truncation(choice, options, prompt) for choice in choices]
        encoding = self.tokenizer(prompts, choices, **tokenizer_options)
        # One feature per choice: the model scores each (prompt, choice) pair on its own, so pairs of different
        # prompts batch together like any other sequences.
        return [{"input_ids": input_ids} for input_ids in encoding["input_ids"]]

    def forward(self, batch):
        # The model expects (batch, choices, length): give each row as a question with one choice.
        logits = self.model(**{key: value.unsqueeze(1) for key, value in batch.items()}).logits
        return {"logits": logits[:, 0]}

    def postprocess(self, item, features, outputs, options):
        import torch

        scores = torch.stack([output["logits"] for output in outputs]).double().softmax(0).tolist()
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[:options["top_k"]]
        return [{"choice": item["choices"][i], "index": i, "score": scores[i]} for i in ranked]
