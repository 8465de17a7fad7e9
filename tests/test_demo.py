"""demo.py: `roberta-prelayernorm demo` at a tenth of its scale."""

import os

import pytest

import roberta_prelayernorm as rp
from test_training_cli import cli

pytestmark = pytest.mark.slow  # a subprocess training every task: `make test-fast` leaves it out


def test_demo_runs_at_a_tenth_of_its_scale(tmp_path):
    """`make demo`'s job, smaller: every task trains, saves a loadable model and appears in the closing table."""
    out = cli("demo", "--scale", 0.1, "--output", tmp_path / "demo").stdout
    assert "Validation metrics on the shipped task sets" in out
    tasks = ("masked-lm", "sequence-classification", "token-classification", "question-answering", "multiple-choice")
    for task in tasks:
        assert any(line.split()[:1] == [task] for line in out.splitlines()), task
        assert {"best", "last", "metrics.jsonl", "config.json"} <= set(os.listdir(tmp_path / "demo" / task)), task
    rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "demo" / "sequence-classification")
