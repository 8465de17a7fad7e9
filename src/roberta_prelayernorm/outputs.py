"""Model outputs: dataclasses that also behave as ordered dicts and tuples, as transformers' outputs do.

`out.logits`, `out["logits"]` and `out[0]` all work; fields that are None are left out of the dict and tuple
views, so `out[0]` is the loss when labels were given and the logits otherwise.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, Optional, Tuple

import torch

Tensors = Optional[Tuple[torch.Tensor, ...]]


class ModelOutput(OrderedDict):
    """Base of every output type: attribute, key and index access over the fields that are not None."""

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key):
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if value is not None and name in {f.name for f in fields(self)}:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __reduce__(self):
        return type(self), tuple(getattr(self, field.name) for field in fields(self))

    def to_tuple(self) -> tuple:
        return tuple(self[key] for key in self.keys())


@dataclass(repr=False)
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    last_hidden_state: Optional[torch.Tensor] = None
    pooler_output: Optional[torch.Tensor] = None
    hidden_states: Tensors = None
    past_key_values: Optional[tuple] = None
    attentions: Tensors = None
    cross_attentions: Tensors = None


@dataclass(repr=False)
class SequenceClassifierOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass(repr=False)
class MultipleChoiceModelOutput(SequenceClassifierOutput):
    pass


@dataclass(repr=False)
class TokenClassifierOutput(SequenceClassifierOutput):
    pass


@dataclass(repr=False)
class MaskedLMOutput(SequenceClassifierOutput):
    pass


@dataclass(repr=False)
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    start_logits: Optional[torch.Tensor] = None
    end_logits: Optional[torch.Tensor] = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass(repr=False)
class CausalLMOutputWithCrossAttentions(ModelOutput):
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    past_key_values: Optional[tuple] = None
    hidden_states: Tensors = None
    attentions: Tensors = None
    cross_attentions: Tensors = None
