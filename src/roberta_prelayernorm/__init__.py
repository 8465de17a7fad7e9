"""RoBERTa-PreLayerNorm in PyTorch, drop-in compatible with Hugging Face transformers.

Names are imported on first use, so `import roberta_prelayernorm` stays light (torch loads when a model does).
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "RobertaPreLayerNormConfig": "config",
    "RobertaPreLayerNormPreTrainedModel": "modeling",
    "RobertaPreLayerNormModel": "modeling",
    "RobertaPreLayerNormForSequenceClassification": "modeling",
    "RobertaPreLayerNormForMultipleChoice": "modeling",
    "RobertaPreLayerNormForTokenClassification": "modeling",
    "RobertaPreLayerNormForQuestionAnswering": "modeling",
    "RobertaPreLayerNormForMaskedLM": "modeling",
    "RobertaPreLayerNormForCausalLM": "modeling",
    "AutoConfig": "auto",
    "AutoModel": "auto",
    "AutoModelForSequenceClassification": "auto",
    "AutoModelForMultipleChoice": "auto",
    "AutoModelForTokenClassification": "auto",
    "AutoModelForQuestionAnswering": "auto",
    "AutoModelForMaskedLM": "auto",
    "AutoModelForCausalLM": "auto",
    "AutoTokenizer": "tokenizer",
    "RobertaPreLayerNormTokenizer": "tokenizer",
    "CheckpointNotFoundError": "hub",
    "CheckpointError": "checkpoint",
    "InputError": "validation",
    "pipeline": "pipelines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'roberta_prelayernorm' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
