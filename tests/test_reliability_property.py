"""Property: whatever JSON Lines a user feeds the task commands (random unicode, 0 to 10,000 tokens, wrong
types, missing fields, not JSON, not UTF-8), each line gets a result or a one-line error, never a traceback."""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roberta_prelayernorm as rp
from roberta_prelayernorm.cli import main
from training_utils import make_tiny_model

FIELDS = {"classify": ("text", "text_pair"), "tag": ("text",), "answer": ("question", "context"),
          "choose": ("prompt", "choices"), "fill-mask": ("text",)}
HEADS = {"classify": rp.RobertaPreLayerNormForSequenceClassification,
         "tag": rp.RobertaPreLayerNormForTokenClassification,
         "answer": rp.RobertaPreLayerNormForQuestionAnswering,
         "choose": rp.RobertaPreLayerNormForMultipleChoice,
         "fill-mask": rp.RobertaPreLayerNormForMaskedLM}


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    base = tmp_path_factory.mktemp("property")
    tiny = make_tiny_model(str(base / "tiny"))
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    folders = {}
    for task, cls in HEADS.items():
        torch.manual_seed(0)
        folders[task] = str(base / task)
        cls(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).save_pretrained(folders[task])
        tokenizer.save_pretrained(folders[task])
    return folders


texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, word: " ".join([word] * n), st.integers(0, 10_000), st.sampled_from(["word", "é", "<mask>"])),
    st.just("a <mask> b"),
)
values = st.one_of(texts, st.integers(), st.none(), st.lists(texts, max_size=3), st.booleans(),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def lines(draw, task):
    kind = draw(st.sampled_from(["object", "object", "object", "not json", "not utf-8", "surrogate", "array"]))
    if kind == "not json":
        return draw(st.text(min_size=1, max_size=20)).replace("\n", " ").encode("utf-8", "surrogatepass")
    if kind == "not utf-8":
        return b'{"text": "\xff\xfe"}'
    if kind == "surrogate":
        return json.dumps({name: "a \ud800 b" for name in FIELDS[task]}).encode()
    if kind == "array":
        return b"[1, 2]"
    item = {name: draw(values) for name in FIELDS[task] if draw(st.booleans()) or name != "text_pair"}
    for name in list(item):
        if draw(st.integers(0, 5)) == 0:
            del item[name]  # a missing field
    if draw(st.integers(0, 5)) == 0:
        item["unexpected"] = 1
    if task == "choose" and draw(st.booleans()):
        item["choices"] = draw(st.lists(texts, min_size=1, max_size=3))
    return json.dumps(item, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check_output(n_lines: int, code: int, out: str, err: str) -> None:
    assert "Traceback" not in err, err
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert all("result" in result for result in results)
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    # Every line is accounted for: a result, or one "skipped FILE:LINE: ..." line of its own.
    assert len(results) + len(skipped) == n_lines, err
    # Nothing else but the tokenizer's one warning about a text longer than the model (as in transformers).
    assert all(line.startswith(("skipped ", f"{len(skipped)} malformed", "Token indices sequence length"))
               for line in err.splitlines() if line), err


@pytest.mark.parametrize("task", list(FIELDS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_line_gets_a_result_or_a_one_line_error(tmp_path, heads, task, data):
    batch = data.draw(st.lists(lines(task), min_size=1, max_size=4))
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in batch) + b"\n")
    n_lines = sum(1 for line in path.read_bytes().splitlines() if line.strip())
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([task, "--model", heads[task], "--input", str(path), "--on-error", "skip"])
    check_output(n_lines, code, out.getvalue(), err.getvalue())


def test_the_console_script_gives_results_and_one_line_errors(tmp_path, heads):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a <mask> b"}\n{"text": "\xff"}\n{"text": "' + b"word " * 5000 + b'<mask>"}\n'
                     b'{"text": "\\ud800 <mask>"}\n[1]\n{"text": 5}\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "roberta_prelayernorm", "fill-mask", "--model", heads["fill-mask"],
                             "--input", str(path), "--on-error", "skip"], capture_output=True, text=True, env=env)
    check_output(6, result.returncode, result.stdout, result.stderr)
    assert len(result.stdout.splitlines()) == 1
