"""Model outputs: dataclasses that also behave as ordered dicts and tuples, as transformers' outputs do.

`out.logits`, `out["logits"]` and `out[0]` all work; fields that are None are left out of the dict and tuple
views, so `out[0]` is the loss when labels were given and the logits otherwise. Like transformers' outputs they
can be built from keywords, from a mapping or from an iterable of (key, value) pairs (accelerate rebuilds them
as `type(out)({...})`), and every output type is registered with torch's pytree, so torch.export and the ONNX
exporter see through them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Optional, Tuple

import torch

Tensors = Optional[Tuple[torch.Tensor, ...]]


class ModelOutput(OrderedDict):
    """Base of every output type: attribute, key and index access over the fields that are not None."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        import torch.utils._pytree as pytree

        pytree.register_pytree_node(
            cls, _flatten, partial(_unflatten, cls), serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
            flatten_with_keys_fn=_flatten_with_keys,
        )

    def __post_init__(self):
        first, *rest = fields(self)
        value = getattr(self, first.name)
        if not isinstance(value, torch.Tensor) and all(getattr(self, f.name) is None for f in rest):
            pairs = _as_pairs(value)
            if pairs is not None:  # built from a mapping or (key, value) pairs: spread them over the fields
                super().__setattr__(first.name, None)
                self.pop(first.name, None)  # the dataclass __init__ stored the mapping under it
                for key, value in pairs:
                    if key not in self.__dataclass_fields__:
                        raise TypeError(f"{type(self).__name__} has no field {key!r}")
                    super().__setattr__(key, value)
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


def _as_pairs(value) -> Optional[list]:
    """The (key, value) pairs of a mapping or of an iterable of pairs with string keys, else None."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return None
    pairs = list(value)
    if all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
        return pairs
    return None


# pytree: the fields that are set are the children, their names the context (as transformers does).
def _flatten(output: ModelOutput):
    return list(output.values()), list(output.keys())


def _flatten_with_keys(output: ModelOutput):
    import torch.utils._pytree as pytree

    return [(pytree.MappingKey(key), value) for key, value in output.items()], list(output.keys())


def _unflatten(cls, values, keys) -> ModelOutput:
    return cls(**dict(zip(keys, values)))


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


@dataclass(repr=False)
class GenerateDecoderOnlyOutput(ModelOutput):
    """generate(return_dict_in_generate=True): the prompt and new tokens of each row."""

    sequences: Optional[torch.Tensor] = None
