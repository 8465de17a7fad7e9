"""What every task pipeline shares: loading, argument checks, and length-sorted batched inference.

A task turns each input into one or more *features* (a dict with the token ids `input_ids` plus whatever its
postprocessing needs: offsets, the chunk's place in a long text...). `Pipeline.__call__` runs all features of
all inputs through the model in batches of similar length, each padded only to its own longest member, and
hands every input its features' outputs (padding cut off) to turn into results, in the order given.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Optional

from ..devices import as_device
from ..errors import SettingError

DEFAULT_BATCH_SIZE = 8
WORD_END = re.compile(r"\S(?=\s)")


class Pipeline:
    """Base class: a model, its tokenizer, a device, a batch size and default call options."""

    task: str  # the task's pipeline name in roberta_prelayernorm.tasks (which gives the head class)
    output_keys: tuple[str, ...] = ("logits",)  # the model outputs postprocess reads
    # Model outputs with one value per token: cut to each feature's length, the rest is padding.
    token_outputs: tuple[str, ...] = ()
    # Call options and their defaults; pipeline(...) and each call may override them.
    defaults: dict[str, Any] = {}
    _longest_token = None  # characters of the vocabulary's longest token, once cut_for_truncation needs it

    def __init__(self, model, tokenizer, device=None, batch_size: int = DEFAULT_BATCH_SIZE, **options):
        from ..modeling import RobertaPreLayerNormPreTrainedModel
        from ..tasks import PIPELINE_TASKS
        from ..tokenizer import fit_to_model

        check_int("batch_size", batch_size, 1)
        head_class = PIPELINE_TASKS[self.task].head_class()
        if isinstance(model, RobertaPreLayerNormPreTrainedModel) and not isinstance(model, head_class):
            raise SettingError(f"{type(self).__name__} needs a {head_class.__name__} model, got {type(model).__name__}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        fit_to_model(tokenizer, model.config)  # truncation and windows follow the model's length
        self.batch_size = batch_size
        if device is not None:
            self.model.to(as_device(device))
        self.raw_options = {**self.defaults, **options}
        self.options = self.check_options(self.raw_options)

    @property
    def device(self):
        return self.model.device

    def check_options(self, options: dict) -> dict:
        """Validate (and normalise) call options; subclasses check values, this checks the names."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected option(s) {unknown}; allowed: {sorted(self.defaults)}"
            )
        return dict(options)

    # -- what a task defines ------------------------------------------------------------------------
    def split_inputs(self, inputs, kwargs: dict) -> tuple[list, bool]:
        """(list of inputs, whether one input was given). Default: a str or dict is one input, a list many."""
        if isinstance(inputs, (list, tuple)):
            return list(inputs), False
        return [inputs], True

    def preprocess(self, item, options: dict) -> list[dict]:
        raise NotImplementedError

    def features(self, item, options: dict) -> list[dict]:
        """preprocess(item), checked: every feature must fit the model (ValueError naming the lengths)."""
        features = self.preprocess(item, options)
        limit = self.tokenizer.model_max_length
        longest = max((len(feature["input_ids"]) for feature in features), default=0)
        if longest > limit:
            raise SettingError(f"the input is {longest} tokens long and the model takes at most {limit}; shorten it"
                               + (" or pass truncation=True" if "truncation" in self.defaults else ""))
        return features

    def cut_for_truncation(self, text: str, options: dict, other: Optional[str] = None) -> str:
        """`text` without the part truncation will cut anyway, cut by characters before tokenizing (one 25 MB
        line need not become 25 MB of tokens, nor a pair of long texts a tokenizer's quadratic overflow). The cut
        is at the first word end (a non-space before a space, where the byte-level pre-tokenizer always splits,
        so the tokens before it are the full text's) past max_length x (the longest token's length) characters:
        what is kept still has more tokens than fit, so the truncated ids are today's. In a pair (`other`: the
        other text), longest-first truncation gives each text half the room when both are long, the odd token
        to the longer: with an odd room the text is cut only beside an `other` of at most max_length / 2
        bytes, which stays the shorter."""
        truncation = options.get("truncation")
        if truncation not in (True, "longest_first") or self.tokenizer.truncation_side != "right":
            return text
        length = options.get("max_length") or self.tokenizer.model_max_length
        room = length - self.tokenizer.num_special_tokens_to_add(pair=True)
        if other is not None and room % 2 and len(other.encode("utf-8")) * 2 > length:
            return text
        if self._longest_token is None:
            self._longest_token = max(map(len, self.tokenizer.get_vocab()))
        start = length * self._longest_token
        end = WORD_END.search(text, start - 1) if len(text) > start else None
        return text[:end.end()] if end else text

    def forward(self, batch: dict):
        """Run the model on a padded batch (input_ids, attention_mask) and return its output."""
        return self.model(**batch)

    def unbatch(self, model_output, row: int, feature: dict) -> dict:
        """One feature's outputs (on the CPU, float32) from row `row` of a padded batch's model output."""
        n = len(feature["input_ids"])
        return {key: (model_output[key][row, :n] if key in self.token_outputs else model_output[key][row]).float().cpu()
                for key in self.output_keys}

    def postprocess(self, item, features: list[dict], outputs: list[dict], options: dict):
        raise NotImplementedError

    def finish(self, items: list, results: list, single: bool, options: dict):
        """The value returned to the caller: one result for one input, else the list."""
        return results[0] if single else results

    # -- the call -----------------------------------------------------------------------------------
    def __call__(self, inputs=None, **kwargs):
        call_options = {key: kwargs.pop(key) for key in list(kwargs) if key in self.defaults}
        items, single = self.split_inputs(inputs, kwargs)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected argument(s) {sorted(kwargs)}; options: {sorted(self.defaults)}"
            )
        options = self.check_options({**self.raw_options, **call_options}) if call_options else self.options
        results = self.results(items, [self.features(item, options) for item in items], options)
        return self.finish(items, results, single, options)

    def results(self, items: list, features: list[list[dict]], options: dict) -> list:
        """Each item's result from its features, all run through the model together (see run_batches)."""
        flat_outputs = run_batches(self, [feature for per_item in features for feature in per_item])
        results, start = [], 0
        for item, per_item in zip(items, features):
            outputs = flat_outputs[start:start + len(per_item)]
            start += len(per_item)
            results.append(self.postprocess(item, per_item, outputs, options))
        return results


def run_batches(pipe: Pipeline, features: list[dict]) -> list[dict]:
    """Model outputs for each feature, in the order given, computed in length-sorted padded batches.

    Sorting by length keeps padding (wasted compute) small when lengths are ragged; longest first, so a batch
    too large for the device fails at once rather than at the end. A progress bar shows on a terminal.
    """
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    batches = [order[i:i + pipe.batch_size] for i in range(0, len(order), pipe.batch_size)]
    pad_id = pipe.tokenizer.pad_token_id
    if pad_id is None and any(len(batch) > 1 for batch in batches):
        raise SettingError("batch_size > 1 needs a tokenizer with a pad token; set tokenizer.pad_token or batch_size=1")
    outputs: list[Optional[dict]] = [None] * len(features)
    show = len(batches) > 1 and sys.stderr.isatty()
    with torch.inference_mode(), tqdm(total=len(features), disable=not show, unit="seq",
                                      desc=type(pipe).__name__) as bar:
        for batch in batches:
            lengths = [len(features[i]["input_ids"]) for i in batch]
            width = max(lengths)
            input_ids = torch.full((len(batch), width), pad_id if pad_id is not None else 0, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (i, n) in enumerate(zip(batch, lengths)):
                input_ids[row, :n] = torch.tensor(features[i]["input_ids"], dtype=torch.long)
                attention_mask[row, :n] = 1
            # The mask stays on the host: on a GPU the model packs the real tokens without a device wait.
            model_output = pipe.forward({"input_ids": input_ids.to(pipe.device), "attention_mask": attention_mask})
            for row, i in enumerate(batch):
                outputs[i] = pipe.unbatch(model_output, row, features[i])
            bar.update(len(batch))
    return outputs


def check_int(name: str, value, lowest: int, none_means: Optional[str] = None) -> None:
    """Raise ValueError unless `value` is an int >= lowest (or None, where `none_means` says what None does)."""
    if value is None and none_means is not None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        allowed = f"an int >= {lowest}" + (f" or None ({none_means})" if none_means else "")
        raise SettingError(f"{name} must be {allowed}, got {value!r}")


def load(head_class: type, model, tokenizer):
    """(model, tokenizer) from names or paths (the tokenizer defaults to the model's folder) or objects."""
    from ..tokenizer import AutoTokenizer

    if tokenizer is None:
        if not isinstance(model, str) and not hasattr(model, "__fspath__"):
            raise SettingError("tokenizer is required when model is a model object rather than a folder or hub id")
        tokenizer = model
    if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model = head_class.from_pretrained(model)
    return model, tokenizer

