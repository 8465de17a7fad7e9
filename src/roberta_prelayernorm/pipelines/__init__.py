"""Task pipelines with transformers' call conventions and outputs: `pipeline("ner", model=folder_or_hub_id)`.

Each task lives in its own module; this one maps task names to them and loads model and tokenizer. Modules
(and torch) are imported when a pipeline is built, so importing the package stays light.
"""

from __future__ import annotations

from importlib import import_module

from .base import DEFAULT_BATCH_SIZE

# task name -> (module, class). Aliases as in transformers.
TASKS = {
    "text-classification": ("text_classification", "TextClassificationPipeline"),
    "sentiment-analysis": ("text_classification", "TextClassificationPipeline"),
    "token-classification": ("token_classification", "TokenClassificationPipeline"),
    "ner": ("token_classification", "TokenClassificationPipeline"),
    "question-answering": ("question_answering", "QuestionAnsweringPipeline"),
    "fill-mask": ("fill_mask", "FillMaskPipeline"),
    "multiple-choice": ("multiple_choice", "MultipleChoicePipeline"),
}
# The one published RoBERTa-PreLayerNorm checkpoint is a masked LM; the other tasks need a fine-tuned model.
DEFAULT_MODELS = {"fill-mask": "andreasmadsen/efficient_mlm_m0.40"}


def pipeline_class(task: str) -> type:
    """The pipeline class of a task name."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {sorted(TASKS)}")
    module, name = TASKS[task]
    return getattr(import_module(f".{module}", __name__), name)


def pipeline(task: str, model=None, tokenizer=None, device=None, batch_size: int = DEFAULT_BATCH_SIZE, **kwargs):
    """A pipeline for `task`, like `transformers.pipeline`.

    `model` is a folder, a hub id or a model object; `tokenizer` a folder, hub id or tokenizer object (default:
    the model's folder). `device`: -1/"cpu", a GPU index or a torch device. Other keyword arguments are the
    task's options (top_k, aggregation_strategy, doc_stride...), defaults for every call; calls may override.
    """
    cls = pipeline_class(task)
    if model is None:
        if task not in DEFAULT_MODELS:
            raise ValueError(
                f"model is required for task {task!r}: no fine-tuned RoBERTa-PreLayerNorm checkpoint is published "
                "for it; pass a folder or hub id"
            )
        model = DEFAULT_MODELS[task]
    from .base import load

    model, tokenizer = load(cls, model, tokenizer)
    return cls(model, tokenizer, device=device, batch_size=batch_size, **kwargs)


__all__ = ["TASKS", "pipeline", "pipeline_class"]
