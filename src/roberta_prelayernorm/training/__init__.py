"""Fine-tuning and masked-LM pre-training: data formats, batching, metrics and a small Trainer.

    from roberta_prelayernorm.training import Trainer, TrainingConfig
    Trainer(TrainingConfig(task="masked-lm", model="...", train="corpus.jsonl", output_dir="out")).train()

The command line (`roberta-prelayernorm train` / `evaluate`) is a thin layer over this API; see
`roberta-prelayernorm train --help` for the data formats of each task.
"""

from importlib import import_module

# Imported on first use, so the command line's help does not load torch.
_EXPORTS = {
    "DataError": "..tasks.records", "read_records": "..tasks.records", "TASKS": "..tasks", "make_task": "..tasks",
    "NonFiniteLossError": "trainer", "Trainer": "trainer", "TrainingConfig": "config", "evaluate": "trainer",
    "evaluate_model": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'roberta_prelayernorm.training' has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(import_module(module if module.startswith(".") else f".{module}", __name__), name)
