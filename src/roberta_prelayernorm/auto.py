"""AutoConfig and AutoModel* classes: transformers' entry points, resolved from config.json's model_type."""

from __future__ import annotations

from .config import RobertaPreLayerNormConfig
from . import modeling


class AutoConfig:
    """`AutoConfig.from_pretrained(name_or_path, **overrides)`: the checkpoint's RobertaPreLayerNormConfig."""

    @staticmethod
    def from_pretrained(name_or_path, **kwargs) -> RobertaPreLayerNormConfig:
        return RobertaPreLayerNormConfig.from_pretrained(name_or_path, **kwargs)

    @staticmethod
    def for_model(model_type: str = "roberta-prelayernorm", **kwargs) -> RobertaPreLayerNormConfig:
        return RobertaPreLayerNormConfig.from_dict({"model_type": model_type}, **kwargs)


class _AutoModel:
    """from_pretrained / from_config build `model_class`, after checking that the config is of this family."""

    model_class: type

    def __init__(self):
        raise TypeError(f"{type(self).__name__} is a factory: use {type(self).__name__}.from_pretrained(...)")

    @classmethod
    def from_pretrained(cls, name_or_path, *args, **kwargs):
        return cls.model_class.from_pretrained(name_or_path, *args, **kwargs)

    @classmethod
    def from_config(cls, config: RobertaPreLayerNormConfig, **kwargs):
        return cls.model_class(config, **kwargs)


def _auto(name: str, model_class: type) -> type:
    doc = f"Builds {model_class.__name__} from a checkpoint (`from_pretrained`) or a config (`from_config`)."
    return type(name, (_AutoModel,), {"model_class": model_class, "__doc__": doc, "__module__": __name__})


AutoModel = _auto("AutoModel", modeling.RobertaPreLayerNormModel)
AutoModelForSequenceClassification = _auto(
    "AutoModelForSequenceClassification", modeling.RobertaPreLayerNormForSequenceClassification
)
AutoModelForMultipleChoice = _auto("AutoModelForMultipleChoice", modeling.RobertaPreLayerNormForMultipleChoice)
AutoModelForTokenClassification = _auto(
    "AutoModelForTokenClassification", modeling.RobertaPreLayerNormForTokenClassification
)
AutoModelForQuestionAnswering = _auto("AutoModelForQuestionAnswering", modeling.RobertaPreLayerNormForQuestionAnswering)
AutoModelForMaskedLM = _auto("AutoModelForMaskedLM", modeling.RobertaPreLayerNormForMaskedLM)
AutoModelForCausalLM = _auto("AutoModelForCausalLM", modeling.RobertaPreLayerNormForCausalLM)
