"""Task pipelines with transformers' call conventions and outputs: `pipeline("ner", model=folder_or_hub_id)`.

Each task's pipeline lives in its own module and names its task (roberta_prelayernorm.tasks, which gives the
head class); this one builds them and loads model and tokenizer. Modules
(and torch) are imported when a pipeline is built, so importing the package stays light.
"""

from __future__ import annotations

from ..tasks import PIPELINE_TASKS as TASKS
from .base import DEFAULT_BATCH_SIZE

# The one published RoBERTa-PreLayerNorm checkpoint is a masked LM; the other tasks need a fine-tuned model.
DEFAULT_MODELS = {"fill-mask": "andreasmadsen/efficient_mlm_m0.40"}


def pipeline_class(task: str) -> type:
    """The pipeline class of a task name (any of the task's pipeline names); imported, with torch, when asked."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {sorted(TASKS)}")
    from .fill_mask import FillMaskPipeline
    from .multiple_choice import MultipleChoicePipeline
    from .question_answering import QuestionAnsweringPipeline
    from .text_classification import TextClassificationPipeline
    from .token_classification import TokenClassificationPipeline

    pipelines = (FillMaskPipeline, MultipleChoicePipeline, QuestionAnsweringPipeline, TextClassificationPipeline,
                 TokenClassificationPipeline)
    return next(cls for cls in pipelines if TASKS[cls.task] is TASKS[task])


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

    model, tokenizer = load(TASKS[task].head_class(), model, tokenizer)
    return cls(model, tokenizer, device=device, batch_size=batch_size, **kwargs)


__all__ = ["TASKS", "pipeline", "pipeline_class"]
