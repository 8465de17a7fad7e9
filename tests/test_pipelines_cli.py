"""pipelines/cli.py: the task subcommands: streaming, long inputs, a result or a one-line error for every line.

End to end in a subprocess against transformers' pipelines on the same checkpoints; memory bounded by bytes, and
whatever JSON Lines a user feeds them (random unicode, 0 to 10,000 tokens, wrong types, missing fields, not JSON,
not UTF-8), each line gets a result or a one-line error, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roberta_prelayernorm.cli import main
from test_pipelines import CONTEXT, LONG_TEXT, NER_LABELS, QUESTIONS, TEXTS, assert_same, build, theirs
from training_utils import LONG, run_cli, write_jsonl

# The end-to-end tests in subprocesses are `slow`: `make test-fast` leaves them out.

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_missing_model_is_one_line_exit_2(tmp_path):
    done = cli("classify", "--model", str(tmp_path / "nowhere"), "hello")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "--model" in done.stderr and "nowhere" in done.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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


def cli_process(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "roberta_prelayernorm", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.slow
def test_results_are_written_before_the_input_ends(heads):
    # --batch-size 1 reads ahead 32 lines: the results of the first window come while stdin is still open.
    process = cli_process("classify", "--model", heads["classify"], "--batch-size", "1")
    try:
        process.stdin.write(b"".join(json.dumps({"text": f"line {i}"}).encode() + b"\n" for i in range(40)))
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "no result within 60 s of 40 lines, with the input still open"
        first = json.loads(process.stdout.readline())
        assert first["text"] == "line 0" and set(first["result"]) == {"label", "score"}
        process.stdin.close()
        rest = process.stdout.read().decode().splitlines()
        assert process.wait(60) == 0, process.stderr.read()
        assert [json.loads(line)["text"] for line in rest] == [f"line {i}" for i in range(1, 40)]
    finally:
        process.kill()
        process.wait()


def peak_rss_mb(args: list) -> int:
    """The peak resident memory (MB) of the console script run with `args` in a child process."""
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's (pytest's) at the fork.
    code = ("import re, sys; from roberta_prelayernorm.cli import main; rc = main(sys.argv[1:]); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024, "
            "file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.slow
def test_memory_of_a_long_line_and_a_long_input_is_bounded(heads, tmp_path):
    baseline = peak_rss_mb(["classify", "--model", heads["classify"], "hello"])
    # One 8 MB line, cut to 64 tokens: 2.1 GB resident when it was tokenized whole.
    line = tmp_path / "line.jsonl"
    line.write_text(json.dumps({"text": " ".join(f"word{i % 997}" for i in range(1_000_000))}) + "\n")
    peak = peak_rss_mb(["classify", "--model", heads["classify"], "--input", line])
    assert peak < baseline + 150, (peak, baseline)
    # 50 MB of 12 KB lines: every line, its object and its result were held until the end (baseline + 70 MB).
    lines = tmp_path / "lines.jsonl"
    text = " ".join(f"word{i % 997}" for i in range(1600))
    lines.write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(4000)))
    output = tmp_path / "out.jsonl"
    peak = peak_rss_mb(["classify", "--model", heads["classify"], "--input", lines, "--output", output,
                        "--batch-size", "16"])
    assert peak < baseline + 40, (peak, baseline)
    assert sum(1 for _ in open(output)) == 4000


@pytest.mark.usefixtures("one_thread")
@pytest.mark.slow
def test_tag_memory_is_bounded_by_tokens_not_lines(heads, tmp_path):
    # 3 MB of 1 KB lines, each about 600 tokens: a result (a dict per entity) is 30 times its line, so a window of
    # 2,048 lines held baseline + 330 MB of results (and all 3,000 lines at once before windows).
    baseline = peak_rss_mb(["tag", "--model", heads["tag"], "hello"])
    lines = tmp_path / "lines.jsonl"
    text = " ".join(f"word{i % 997} and" for i in range(200))[:1000]
    lines.write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(3000)))
    output = tmp_path / "out.jsonl"
    peak = peak_rss_mb(["tag", "--model", heads["tag"], "--input", lines, "--output", output, "--batch-size", "64"])
    assert peak < baseline + 150, (peak, baseline)
    assert sum(1 for _ in open(output)) == 3000


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("task, line", [
    ("classify", {"text": LONG}),
    ("tag", {"text": LONG + " Paris"}),
    ("answer", {"question": "Which word?", "context": LONG}),
    ("choose", {"prompt": LONG, "choices": ["a", LONG]}),
])
def test_long_inputs_fit_the_model_in_every_task_command(tmp_path, heads, task, line):
    path = write_jsonl(tmp_path / "in.jsonl", [line, {k: v[:20] if isinstance(v, str) else v for k, v in line.items()}])
    code, out, err = run_cli(task, "--model", heads[task], "--input", path)
    assert code == 0, err
    assert len(out.splitlines()) == 2


@pytest.mark.usefixtures("one_thread")
def test_a_long_fill_mask_line_is_that_lines_error_and_the_others_run(tmp_path, heads):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": LONG + " <mask>"}, {"text": "a <mask> b"}])
    code, out, err = run_cli("fill-mask", "--model", heads["fill-mask"], "--input", path, "--on-error", "skip")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["a <mask> b"]
    assert "in.jsonl:1:" in err and "the model takes at most 64" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("one_thread")
def test_task_command_input_errors_exit_2(tmp_path, heads):
    code, _, err = run_cli("classify", "--model", heads["classify"], "--input", tmp_path / "missing.jsonl")
    assert code == 2 and err.startswith("error: classify: --input") and "No such file" in err
    code, _, err = run_cli("classify", "--model", heads["classify"], "hello", "--input", tmp_path / "x.jsonl")
    assert code == 2 and "not both" in err


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("options, message", [
    (["--max-seq-len", "1000"], "error: max_seq_len=1000 is longer than the model takes: at most 64"),
    (["--max-seq-len", "40", "--doc-stride", "36"],
     "error: max_seq_len=40 leaves no room for a question and a context with doc_stride=36: it must be at least 6 "
     "+ doc_stride"),
])
def test_qa_lengths_no_input_fits_are_refused_at_start(heads, capsys, options, message):
    from roberta_prelayernorm.cli import main

    assert main(["answer", "--model", heads["answer"], "--question", "Who?", "--context", "Jim", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


FIELDS = {"classify": ("text", "text_pair"), "tag": ("text",), "answer": ("question", "context"),
          "choose": ("prompt", "choices"), "fill-mask": ("text",)}


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
