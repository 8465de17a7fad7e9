"""Fine-tuning and masked-LM pre-training: data formats, batching, metrics and a small Trainer.

    from roberta_prelayernorm.training import Trainer, TrainingConfig
    Trainer(TrainingConfig(task="masked-lm", model="...", train="corpus.jsonl", output_dir="out")).train()

The command line (`roberta-prelayernorm train` / `evaluate`) is a thin layer over this API; see
`roberta-prelayernorm train --help` for the data formats of each task.
"""

from .data import DataError, read_records
from .tasks import TASKS, make_task
from .trainer import NonFiniteLossError, Trainer, TrainingConfig, evaluate, evaluate_model

__all__ = ["DataError", "NonFiniteLossError", "TASKS", "Trainer", "TrainingConfig", "evaluate", "evaluate_model",
           "make_task", "read_records"]
