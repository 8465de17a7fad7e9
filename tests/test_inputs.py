"""Inputs as they really come: task commands that stream (results written as their window is done, memory
bounded by bytes), long lines cut by characters where truncation cuts them anyway (same results), and
inputs that lie about themselves answered with one line naming the file, field or flag."""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys

import pytest
import torch

import roberta_prelayernorm as rp

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def heads(tiny, tmp_path_factory):
    """Classifier, multiple-choice, question-answering and tagger folders on the tiny model (64 tokens) with its tokenizer."""
    folders = {}
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    for task, cls in (("classify", rp.RobertaPreLayerNormForSequenceClassification),
                      ("choose", rp.RobertaPreLayerNormForMultipleChoice),
                      ("answer", rp.RobertaPreLayerNormForQuestionAnswering),
                      ("tag", rp.RobertaPreLayerNormForTokenClassification)):
        torch.manual_seed(0)
        folder = str(tmp_path_factory.mktemp(task))
        cls(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[task] = folder
    return folders


def random_text(rng: random.Random, words: int) -> str:
    """Words of letters, digits, punctuation and non-ASCII, with runs of spaces, tabs and newlines between."""
    pieces = ["dog", "the", "Berlin", "1991", "é", "naïve", "--", "...", "日本語", "x", "it's", "🙂", "a.b"]
    spaces = [" ", " ", " ", "  ", "\t", "\n", " \n "]
    return "".join(rng.choice(pieces) + rng.choice(spaces) for _ in range(words))


def test_long_texts_are_cut_by_characters_with_the_same_ids(heads):
    classify = rp.pipeline("text-classification", model=heads["classify"], truncation=True)
    choose = rp.pipeline("multiple-choice", model=heads["choose"], truncation=True)
    tokenizer = classify.tokenizer
    seen, call = [], tokenizer.__call__

    class Recording(type(tokenizer)):
        """The tokenizer, recording the length of each text it is given."""

        def __call__(self, text, text_pair=None, **kwargs):
            seen.extend(len(t) for t in (text if isinstance(text, list) else [text]) if isinstance(t, str))
            return call(text, text_pair, **kwargs)

    tokenizer.__class__ = Recording
    rng = random.Random(0)
    for words in (3, 40, 300, 3000, 20000):
        text, short = random_text(rng, words), random_text(rng, 5)
        # Two long texts: the oracle, tokenizers' own truncation, makes overflowing pieces for every pair of
        # windows of the two (quadratic: gigabytes at 20,000 words each), so only up to 300 words.
        both = [{"text": text, "text_pair": text[::-1]}] if words <= 300 else []
        for item in [text, {"text": text, "text_pair": short}, {"text": short, "text_pair": text}] + both:
            expected = call(item, truncation=True) if isinstance(item, str) else call(
                item["text"], item["text_pair"], truncation=True)
            assert classify.features(item, classify.options) == [{"input_ids": expected["input_ids"]}]
        choices = [short, text[::-1]] if both else [short, short[::-1]]
        expected = call([text, text], choices, truncation=True)["input_ids"]
        assert [f["input_ids"] for f in choose.features({"prompt": text, "choices": choices}, choose.options)] \
            == expected
    # The 20,000-word texts (about 88,000 characters) reached the tokenizer cut; so does a pair of them.
    assert len(text) > 80_000 and max(seen) < 20_000
    assert len(classify.features({"text": text, "text_pair": text}, classify.options)[0]["input_ids"]) == 64


def cli_process(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "roberta_prelayernorm", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


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


# -- inputs that lie -------------------------------------------------------------------------------------------
def test_a_stray_huge_class_index_is_refused_before_names_are_made(tmp_path, tiny):
    from roberta_prelayernorm.tasks import make_task
    from roberta_prelayernorm.training import DataError, read_records

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": v}) + "\n" for i, v in enumerate([0, 1, 200_000])))
    task = make_task("sequence-classification", rp.AutoTokenizer.from_pretrained(tiny), 64)
    with pytest.raises(DataError, match=r"line 3: field 'label': class index 200000 is too large: class indices run "
                                        r"from 0 to the number of classes - 1, at most 99999"):
        task.fit(read_records(str(path)))


@pytest.mark.parametrize("field, value, message", [
    ("is_decoder", "false", "config.is_decoder must be true or false, got str 'false'"),
    ("tie_word_embeddings", 0, "config.tie_word_embeddings must be true or false, got int 0"),
    ("hidden_act", 1, "config.hidden_act=1 is not supported"),
    ("vocab_size", 10**12, r"config.vocab_size=1000000000000 is larger than this package builds \(at most 4194304\)"),
    ("num_hidden_layers", 10**9, r"config.num_hidden_layers=1000000000 is larger than this package builds"),
    ("max_position_embeddings", 10**9, "config.max_position_embeddings=1000000000 is larger"),
    ("intermediate_size", 200_000, r"config describes about 1.7e\+12 parameters \(hidden_size=4096, "
                                   r"num_hidden_layers=1000, .*at most 1e\+11\)"),
])
def test_config_json_values_of_the_wrong_type_or_size_are_refused(tmp_path, tiny, field, value, message):
    config = json.loads(open(os.path.join(tiny, "config.json")).read())
    config[field] = value
    if field == "intermediate_size":  # each size allowed, all together a model of 1.7e12 parameters
        config.update(hidden_size=4096, num_attention_heads=32, num_hidden_layers=1000)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        rp.RobertaPreLayerNormConfig.from_pretrained(str(folder))


def test_a_device_that_is_not_here_is_one_line(heads, capsys):
    from roberta_prelayernorm.cli import main

    assert main(["classify", "--model", heads["classify"], "hello", "--device", "mps"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: device='mps': mps is not available here; use 'cpu'" or (
        torch.cuda.is_available() and err.endswith("use 'cpu', 'cuda'"))


def test_training_files_that_are_not_utf8_or_have_huge_cells(tmp_path):
    from roberta_prelayernorm.training import DataError, read_records

    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"text": "fine", "label": 0}\n' + '{"text": "café", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl, line 2: field '\(record\)': not UTF-8 text \(byte 14 of "
                                        r"the line is 0xe9\)"):
        read_records(str(jsonl))
    csv_file = tmp_path / "big.csv"
    cell = "word " * 60_000  # 300 KB: past csv's own 128 KiB field limit
    csv_file.write_text(f'text,label\n"{cell}",1\nshort,0\n')
    assert [r.fields["text"] for r in read_records(str(csv_file))] == [cell, "short"]
    csv_file.write_bytes(b"text,label\nfine,1\n" + "caf\xe9,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"big.csv, line 3: field '\(record\)': not UTF-8 text \(byte 4 "):
        read_records(str(csv_file))


def test_nan_scores_are_written_as_null(heads, tmp_path, capsys):
    from roberta_prelayernorm.cli import main

    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    rp.AutoTokenizer.from_pretrained(heads["classify"]).save_pretrained(tmp_path / "nan")
    assert main(["classify", "--model", str(tmp_path / "nan"), "hello", "--top-k", "all"]) == 0

    def strict(word):
        raise ValueError(f"{word} is not JSON")

    result = json.loads(capsys.readouterr().out, parse_constant=strict)["result"]
    assert [entry["score"] for entry in result] == [None, None]


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


def test_weights_of_integer_dtypes_and_pickled_code_are_named(heads, tmp_path):
    from safetensors.torch import save_file

    from roberta_prelayernorm.checkpoint import CheckpointError

    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["classifier.dense.weight"] = state["classifier.dense.weight"].to(torch.int64)
    state["classifier.out_proj.bias"] = state["classifier.out_proj.bias"] > 0
    folder = tmp_path / "ints"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(heads["classify"], "config.json")).read())
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"classifier.dense.weight is int64, classifier.out_proj.bias is bool; "
                                              r"weights must be floating point"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(str(folder))

    class Code:
        def __reduce__(self):
            return (print, ("ran",))

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(heads["classify"], "config.json")).read())
    torch.save({"classifier.dense.weight": Code()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(str(folder))
    message = str(caught.value)
    assert "pytorch_model.bin holds pickled code (print), which is refused" in message
    assert "weights_only" not in message and "\n" not in message


def test_ids_of_other_integer_dtypes_are_named(tiny):
    from roberta_prelayernorm import InputError

    model = rp.RobertaPreLayerNormModel.from_pretrained(tiny)
    ids = torch.tensor([[0, 5, 2]])
    reference = model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(model(input_ids=ids.int()).last_hidden_state, reference)  # as transformers
    for dtype in (torch.int16, torch.uint8, torch.int8):
        with pytest.raises(InputError, match=rf"input_ids must hold torch.long \(int64\) or torch.int32 ids, got "
                                             rf"dtype {dtype}; convert with input_ids.long\(\)"):
            model(input_ids=ids.to(dtype))
    with pytest.raises(InputError, match="token_type_ids must hold torch.long"):
        model(input_ids=ids, token_type_ids=torch.zeros_like(ids, dtype=torch.uint8))


@pytest.mark.parametrize("content, message", [
    ([1, 2], "tokenizer_config.json must hold a JSON object, got list"),
    ({"model_max_length": "512"}, "tokenizer_config.json: model_max_length must be a positive int, got str '512'"),
    ({"added_tokens_decoder": [1]}, 'tokenizer_config.json: added_tokens_decoder must be an object of {"id": token}'),
    ({"tokenizer_class": 5}, "tokenizer_config.json: tokenizer_class must be a class name, got int 5"),
    ({"bos_token": 5}, "tokenizer_config.json: bos_token must be a token"),
])
def test_tokenizer_config_of_the_wrong_shape_is_named(tiny, tmp_path, content, message):
    import shutil

    folder = tmp_path / "tokenizer"
    shutil.copytree(tiny, folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(content))
    with pytest.raises(ValueError) as caught:
        rp.AutoTokenizer.from_pretrained(str(folder))
    assert message in str(caught.value) and str(folder) in str(caught.value)
