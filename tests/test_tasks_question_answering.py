"""tasks/question_answering.py: answers outside their context are data errors."""

import pytest

import roberta_prelayernorm as rp
from roberta_prelayernorm.tasks import make_task
from roberta_prelayernorm.training import DataError, read_records
from training_utils import write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_negative_answer_start_is_a_data_error(tmp_path, tiny):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q?", "context": "abc def",
                                                 "answers": {"text": ["def"], "answer_start": [-3]}}])
    task = make_task("question-answering", rp.AutoTokenizer.from_pretrained(tiny), 64)
    with pytest.raises(DataError, match="qa.jsonl, line 1: field 'answers.answer_start': -3 .* outside"):
        task.examples(read_records(path))
