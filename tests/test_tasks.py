"""tasks/ (TASKS, base.py): each task's records named by file, line and field; a task option declared once."""

import pytest

from roberta_prelayernorm.training import DataError, Trainer, TrainingConfig
from training_utils import config, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("task, lines, field", [
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": "c"}'], "label"),
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": 5, "label": "x"}'], "text"),
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": "b", "label": 1}'], "label"),
    ("token-classification", ['{"tokens": ["a"], "tags": ["O"]}', '{"tokens": ["a"], "tags": ["O"]}', '{"tokens": ["a", "b"], "tags": ["O"]}'], "tags"),
    ("question-answering", ['{"question": "q?", "context": "abc", "answers": {"text": ["b"], "answer_start": [1]}}'] * 2 +
     ['{"question": "q?", "context": "abc", "answers": {"text": ["b"], "answer_start": [2]}}'], "answers.answer_start"),
    ("multiple-choice", ['{"prompt": "p", "choices": ["a", "b"], "label": 0}'] * 2 + ['{"prompt": "p", "choices": ["a", "b"], "label": 2}'], "label"),
    ("masked-lm", ['{"text": "a"}', '{"text": "b"}', '{"text": "c"'], "(record)"),
])
def test_bad_record_names_file_line_and_field(tmp_path, tiny, task, lines, field):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        Trainer(config(tmp_path, task, tiny, train=path, validation=None))
    assert err.value.field == field and err.value.where.line == 3
    assert f"{path}, line 3: field {field!r}" in str(err.value)


def test_a_task_option_is_declared_once_and_reaches_every_use(tmp_path, tiny):
    """Each field of a task's Options is a task keyword, a TrainingConfig field, a `train` and an `evaluate`
    flag with its help, a resume setting, and checked by the task itself."""
    import argparse
    import dataclasses

    from roberta_prelayernorm.cli import build_parser
    from roberta_prelayernorm.tasks import OPTION_NAMES, TASKS

    subcommands = build_parser()._subparsers._group_actions[0].choices
    declared = [f for task in TASKS.values() for f in dataclasses.fields(task.Options)]
    assert {f.name for f in declared} == set(OPTION_NAMES) >= {"stride", "label_all_pieces", "mlm_probability"}
    for option in declared:
        assert option.name in {f.name for f in dataclasses.fields(TrainingConfig)}
        for command in ("train", "evaluate"):
            action = next(a for a in subcommands[command]._actions if a.dest == option.name)
            assert action.help.startswith(option.metadata["help"])
            assert action.default is argparse.SUPPRESS  # unset unless given: the Options' default applies
    trainer = Trainer(config(tmp_path, "question-answering", tiny, stride=8))
    assert trainer.task.options.stride == 8 and trainer.settings()["stride"] == 8
    with pytest.raises(ValueError, match="stride=64 is not allowed: an int in \\[0, max_length=64\\)"):
        TASKS["question-answering"](trainer.tokenizer, 64, stride=64)
