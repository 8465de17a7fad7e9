"""The five tasks, one file each: names, head class, pipeline, record format, and the training side.

    TASKS["question-answering"]          the Task class of a training name
    PIPELINE_TASKS["ner"]                the Task class of a pipeline name (transformers' names and aliases)
    make_task("masked-lm", tokenizer)    a Task object for training, with the task's own options

Adding a task is adding a file here (its Task subclass, with its Options) and its class to TASKS. Importing this
package does not import torch.
"""

from __future__ import annotations

from ..errors import SettingError
from .base import Task
from .masked_lm import MaskedLM
from .multiple_choice import MultipleChoice
from .question_answering import QuestionAnswering
from .sequence_classification import SequenceClassification
from .token_classification import TokenClassification

# Training name -> Task class, in the order the command line lists them.
TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (SequenceClassification, TokenClassification, QuestionAnswering, MultipleChoice, MaskedLM)
}
# Pipeline name (transformers' task names and aliases) -> Task class.
PIPELINE_TASKS: dict[str, type[Task]] = {name: task for task in TASKS.values() for name in task.pipeline_names}

FORMATS = "Data formats of the five tasks (JSON Lines keys, or CSV columns with JSON in list cells):\n\n" + "".join(
    task.record_format for task in TASKS.values()
)


# Every task's own options (each a field of its Options): TrainingConfig's fields and the resume settings too.
OPTION_NAMES = tuple(dict.fromkeys(name for task in TASKS.values() for name in task.option_names()))


def make_task(name: str, tokenizer, max_length: int = 128, **options) -> Task:
    """The Task object for training name `name` (one of TASKS); `options` may hold every task's options
    (OPTION_NAMES): each task takes its own."""
    if name not in TASKS:
        raise SettingError(f"task={name!r} is not one of {', '.join(TASKS)}")
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"make_task got unexpected option(s) {sorted(unknown)}")
    task = TASKS[name]
    return task(tokenizer, max_length, **{key: value for key, value in options.items() if key in task.option_names()})


__all__ = ["FORMATS", "OPTION_NAMES", "PIPELINE_TASKS", "TASKS", "Task", "make_task"]
