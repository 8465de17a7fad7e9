"""The task subcommands end to end, in a subprocess, against transformers' pipelines on the same checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from test_pipelines import CONTEXT, LONG_TEXT, NER_LABELS, QUESTIONS, TEXTS, assert_same, build, theirs

pytestmark = pytest.mark.slow  # subprocesses: `make test-fast` leaves them out

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders(bpe_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    seq = "RobertaPreLayerNormForSequenceClassification"
    return {
        "classify": build(root / "classify", seq, bpe_dir, seed=2, id2label={0: "neg", 1: "neu", 2: "pos"}),
        "tag": build(root / "tag", "RobertaPreLayerNormForTokenClassification", bpe_dir, id2label=NER_LABELS),
        "answer": build(root / "answer", "RobertaPreLayerNormForQuestionAnswering", bpe_dir),
        "choose": build(root / "choose", "RobertaPreLayerNormForMultipleChoice", bpe_dir, num_labels=1),
        "fill-mask": build(root / "fill-mask", "RobertaPreLayerNormForMaskedLM", bpe_dir),
    }


def cli(*args, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "roberta_prelayernorm", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_classify_arguments_and_stdin_pairs(folders, tmp_path):
    model = folders["classify"]
    done = cli("classify", "--model", model, *TEXTS, "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    reference = theirs("text-classification", model)
    assert [r["text"] for r in records(done.stdout)] == TEXTS
    assert_same([r["result"] for r in records(done.stdout)], reference(TEXTS))

    pairs = [{"text": TEXTS[0], "text_pair": TEXTS[1]}, {"text": TEXTS[2]}]
    output = tmp_path / "out.jsonl"
    done = cli("classify", "--model", model, "--top-k", "all", "--output", str(output),
               stdin="".join(json.dumps(p) + "\n" for p in pairs))
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert_same([r["result"] for r in records(output.read_text())], reference(pairs, top_k=None))
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left behind


def test_tag_input_file_with_stride(folders, tmp_path):
    model = folders["tag"]
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"text": LONG_TEXT}) + "\n\n" + json.dumps({"text": TEXTS[3]}) + "\n")
    done = cli("tag", "--model", model, "--input", str(source), "--stride", "8", "--aggregation-strategy", "first",
               "--ignore-labels", "")
    assert done.returncode == 0, done.stderr
    reference = theirs("ner", model, aggregation_strategy="first")
    assert_same([r["result"] for r in records(done.stdout)],
                reference([LONG_TEXT, TEXTS[3]], stride=8, ignore_labels=[]))


def test_answer_choose_and_fill_mask(folders):
    done = cli("answer", "--model", folders["answer"], "--question", QUESTIONS[0], "--context", CONTEXT,
               "--top-k", "3", "--max-answer-len", "4", "--handle-impossible-answer")
    assert done.returncode == 0, done.stderr
    reference = theirs("question-answering", folders["answer"])
    assert_same(records(done.stdout)[0]["result"], reference(question=QUESTIONS[0], context=CONTEXT, top_k=3,
                                                             max_answer_len=4, handle_impossible_answer=True))

    done = cli("choose", "--model", folders["choose"], "--prompt", TEXTS[0], "--choice", "Yes.", "--choice",
               "It is not.", "--choice", "Maybe tomorrow.", "--top-k", "2")
    assert done.returncode == 0, done.stderr
    result = records(done.stdout)[0]["result"]
    assert len(result) == 2 and result[0]["score"] >= result[1]["score"]
    assert {r["choice"] for r in result} <= {"Yes.", "It is not.", "Maybe tomorrow."}

    texts = ["The capital of France is <mask>.", "Use <mask> to open files and <mask> them."]
    done = cli("fill-mask", "--model", folders["fill-mask"], *texts, "--top-k", "3", "--targets", " the",
               "--targets", "Ġfile")
    assert done.returncode == 0, done.stderr
    reference = theirs("fill-mask", folders["fill-mask"])
    assert_same([r["result"] for r in records(done.stdout)], reference(texts, top_k=3, targets=[" the", "Ġfile"]))


def test_missing_model_is_one_line_exit_2(tmp_path):
    done = cli("classify", "--model", str(tmp_path / "nowhere"), "hello")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "--model" in done.stderr and "nowhere" in done.stderr


def test_malformed_lines_stop_or_skip(folders, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"text": "The capital of France is <mask>."}),
        "{not json",
        json.dumps({"txt": "x"}),
        json.dumps({"text": "no mask here"}),
        json.dumps(["a list"]),
        json.dumps({"text": "Use <mask> to open files."}),
    ]) + "\n")
    output = tmp_path / "out.jsonl"
    args = ("fill-mask", "--model", folders["fill-mask"], "--input", str(source), "--output", str(output))
    done = cli(*args)
    assert done.returncode == 1
    assert f"{source}:2: not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert not output.exists()

    done = cli(*args, "--on-error", "skip")
    assert done.returncode == 0, done.stderr
    for number, problem in ((2, "not valid JSON"), (3, "missing ['text']"), (4, "no mask token"),
                            (5, "expected a JSON object")):
        assert f"{source}:{number}: {problem}" in done.stderr
    assert "4 malformed line(s) skipped; 2 processed" in done.stderr
    assert [r["text"] for r in records(output.read_text())] == ["The capital of France is <mask>.",
                                                                 "Use <mask> to open files."]


def test_help_is_complete_with_an_example():
    from roberta_prelayernorm.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    expected = {"classify": ["--top-k", "--function-to-apply", "--text-pair"],
                "tag": ["--aggregation-strategy", "--ignore-labels", "--stride"],
                "answer": ["--question", "--context", "--doc-stride", "--max-seq-len", "--max-question-len",
                           "--max-answer-len", "--handle-impossible-answer"],
                "choose": ["--prompt", "--choice", "--top-k"],
                "fill-mask": ["--top-k", "--targets"]}
    for name, options in expected.items():
        text = subparsers[name].format_help()
        for option in options + ["--model", "--input", "--output", "--batch-size", "--device", "--on-error"]:
            assert option in text, f"{name} --help lacks {option}"
        assert "example:\n  roberta-prelayernorm " + name in text
