"""Task pipelines with transformers' call conventions and outputs: `pipeline("ner", model=folder_or_hub_id)`.

Each task's pipeline lives in its own module and names its task (roberta_prelayernorm.tasks, which gives the
head class); this one builds them and loads model and tokenizer. Modules
(and torch) are imported when a pipeline is built, so importing the package stays light.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..errors import SettingError
from ..tasks import PIPELINE_TASKS as TASKS
from .base import DEFAULT_BATCH_SIZE

# The one published RoBERTa-PreLayerNorm checkpoint is a masked LM; the other tasks need a fine-tuned model.
DEFAULT_MODELS = {"fill-mask": "andreasmadsen/efficient_mlm_m0.40"}
NOT_PIPELINES = ("base", "cli", "command")  # this package's modules that hold no task's pipeline


@functools.cache
def pipeline_classes() -> tuple[type, ...]:
    """Every task's pipeline class, in the order of the tasks: found in this package's modules (one per task,
    each naming its task; importing them does not import torch), so adding a pipeline is adding its module."""
    from .base import Pipeline

    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name not in NOT_PIPELINES:
            members = vars(importlib.import_module(f"{__name__}.{module.name}")).values()
            found += [cls for cls in members if isinstance(cls, type) and issubclass(cls, Pipeline)
                      and cls.__module__ == f"{__name__}.{module.name}"]
    order = list(dict.fromkeys(TASKS.values()))
    return tuple(sorted(found, key=lambda cls: order.index(TASKS[cls.task])))


def pipeline_class(task: str) -> type:
    """The pipeline class of a task name (any of the task's pipeline names)."""
    if task not in TASKS:
        raise SettingError(f"task={task!r} is not one of {sorted(TASKS)}")
    return next(cls for cls in pipeline_classes() if TASKS[cls.task] is TASKS[task])


def pipeline(task: str, model=None, tokenizer=None, device=None, batch_size: int = DEFAULT_BATCH_SIZE, **kwargs):
    """A pipeline for `task`, like `transformers.pipeline`.

    `model` is a folder, a hub id or a model object; `tokenizer` a folder, hub id or tokenizer object (default:
    the model's folder). `device`: -1/"cpu", a GPU index or a torch device. Other keyword arguments are the
    task's options (top_k, aggregation_strategy, doc_stride...), defaults for every call; calls may override.
    """
    cls = pipeline_class(task)
    if model is None:
        if task not in DEFAULT_MODELS:
            raise SettingError(
                f"model is required for task {task!r}: no fine-tuned RoBERTa-PreLayerNorm checkpoint is published "
                "for it; pass a folder or hub id"
            )
        model = DEFAULT_MODELS[task]
    from .base import load

    model, tokenizer = load(TASKS[task].head_class(), model, tokenizer)
    return cls(model, tokenizer, device=device, batch_size=batch_size, **kwargs)


__all__ = ["TASKS", "pipeline", "pipeline_class", "pipeline_classes"]
