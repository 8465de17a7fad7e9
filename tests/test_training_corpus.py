"""training/corpus.py and corpus_cli.py: tokenize-corpus and the memory-mapped corpus.

The same blocks as the JSON Lines path, resumable writing, and masked-LM training on it that resumes after SIGKILL
to the weights of an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.cli import main
from roberta_prelayernorm.training import Trainer, TrainingConfig, read_records
from roberta_prelayernorm.training.corpus import CorpusBlocks, CorpusError, write_corpus
from roberta_prelayernorm.tasks import make_task
from training_utils import KILLED_RUN, data, head, make_tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")


CHUNK = 1400  # bytes of text: the 48 documents (6631 bytes) in 5 chunks


@pytest.fixture(scope="module")
def corpus(tiny, tmp_path_factory):
    """The first 48 records of the demo corpus as JSON Lines, and as a folder written by tokenize-corpus."""
    folder = tmp_path_factory.mktemp("corpus")
    jsonl = head(data("corpus.jsonl"), 48, folder / "train.jsonl")
    assert main(["tokenize-corpus", str(jsonl), "--tokenizer", tiny, "--output", str(folder / "dir"),
                 "--chunk-bytes", str(CHUNK), "--no-progress"]) == 0
    return str(jsonl), str(folder / "dir")


def test_blocks_equal_the_json_lines_features(tiny, corpus):
    jsonl, folder = corpus
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    for length in (64, 37):
        task = make_task("masked-lm", tokenizer, length)
        expected = task.features(task.examples(read_records(jsonl)))
        blocks = CorpusBlocks(folder, length, tokenizer)
        assert len(blocks) == len(expected)
        assert [blocks[i] for i in range(len(blocks))] == expected
    metadata = json.loads(open(os.path.join(folder, "corpus.json")).read())
    assert metadata["dtype"] == "uint16" and metadata["vocab_size"] == len(tokenizer)
    assert metadata["documents"] == 48 and not os.path.exists(os.path.join(folder, ".chunks"))
    assert os.path.getsize(os.path.join(folder, "tokens.bin")) == 2 * metadata["tokens"]


class Tokenizer:
    """A tokenizer that counts its calls and can be made to fail on the n-th (a killed run)."""

    def __init__(self, tokenizer, fail_at=None):
        self.tokenizer, self.fail_at, self.calls = tokenizer, fail_at, 0

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __len__(self):
        return len(self.tokenizer)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.tokenizer(*args, **kwargs)


def test_a_killed_tokenize_corpus_continues_without_redoing_chunks(tiny, corpus, tmp_path):
    jsonl, straight = corpus
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    with pytest.raises(KeyboardInterrupt):
        write_corpus([jsonl], Tokenizer(tokenizer, fail_at=3), str(tmp_path / "dir"), CHUNK, progress=False)
    assert sorted(os.listdir(tmp_path / "dir" / ".chunks")) == [
        "chunk-000000.bin", "chunk-000000.len", "chunk-000001.bin", "chunk-000001.len", "plan.json"]
    assert not os.path.exists(tmp_path / "dir" / "corpus.json")
    again = Tokenizer(tokenizer)
    write_corpus([jsonl], again, str(tmp_path / "dir"), CHUNK, progress=False)
    assert again.calls == 3  # chunks 2, 3 and 4 of 5
    for name in ("tokens.bin", "documents.npy", "corpus.json"):
        assert (tmp_path / "dir" / name).read_bytes() == open(os.path.join(straight, name), "rb").read(), name
    with pytest.raises(CorpusError, match="already holds a finished corpus"):
        write_corpus([jsonl], tokenizer, str(tmp_path / "dir"), CHUNK, progress=False)


def test_a_partial_corpus_of_other_settings_is_refused(tiny, corpus, tmp_path):
    jsonl, _ = corpus
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    with pytest.raises(KeyboardInterrupt):
        write_corpus([jsonl], Tokenizer(tokenizer, fail_at=2), str(tmp_path / "dir"), CHUNK, progress=False)
    with pytest.raises(CorpusError, match="holds a partial corpus of other files, tokenizer or chunk size"):
        write_corpus([jsonl], tokenizer, str(tmp_path / "dir"), 2 * CHUNK, progress=False)


def test_cli_errors_are_one_line(tiny, tmp_path, capsys):
    assert main(["tokenize-corpus", str(tmp_path / "missing.txt"), "--tokenizer", tiny,
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.txt" in err and "is not a file" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n[1, 2]\n')
    assert main(["tokenize-corpus", str(bad), "--tokenizer", tiny, "--output", str(tmp_path / "out2")]) == 2
    assert f"{bad}:2: expected a JSON object" in capsys.readouterr().err


def test_plain_text_lines_are_documents(tiny, tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("first document\n\nsecond one\n")
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    write_corpus([str(text)], tokenizer, str(tmp_path / "dir"), progress=False)
    offsets = np.load(tmp_path / "dir" / "documents.npy")
    expected = tokenizer(["first document", "second one"])["input_ids"]
    assert offsets.tolist() == [0, len(expected[0]), len(expected[0]) + len(expected[1])]
    tokens = np.fromfile(tmp_path / "dir" / "tokens.bin", dtype=np.uint16).tolist()
    assert tokens == expected[0] + expected[1]


def run_config(tmp_path, tiny, train, name, **overrides):
    values = dict(task="masked-lm", model=tiny, train=train, output_dir=str(tmp_path / name), max_steps=8,
                  batch_size=8, learning_rate=2e-3, max_length=64, progress=False, log_every=4, save_every=2,
                  warmup_steps=2)
    values.update(overrides)
    return TrainingConfig(**values)


def test_training_on_the_corpus_equals_training_on_json_lines(tmp_path, tiny, corpus):
    jsonl, folder = corpus
    a = Trainer(run_config(tmp_path, tiny, jsonl, "jsonl", max_steps=4))
    a.train()
    b = Trainer(run_config(tmp_path, tiny, folder, "dir", max_steps=4))
    b.train()
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_corpus_needs_masked_lm_and_its_tokenizer(tmp_path, tiny, corpus):
    _, folder = corpus
    with pytest.raises(ValueError, match="only task='masked-lm' reads"):
        Trainer(run_config(tmp_path, tiny, folder, "x", task="sequence-classification"))
    other = make_tiny_model(str(tmp_path / "other"))
    tokenizer = rp.AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["brandnewtoken"])
    with pytest.raises(ValueError, match="was tokenized with another tokenizer"):
        CorpusBlocks(folder, 64, tokenizer)


def test_resume_after_sigkill_on_the_corpus_gives_the_same_weights(tmp_path, tiny, corpus):
    _, folder = corpus
    straight = Trainer(run_config(tmp_path, tiny, folder, "straight"))
    straight.train()
    killed = run_config(tmp_path, tiny, folder, "killed")
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(killed.__dict__)],
                               stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.stdout.readline().strip() == b"SAVING"
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = Trainer(run_config(tmp_path, tiny, folder, "killed"))
    resumed.train(resume=True)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_a_line_that_is_not_utf8_is_named(tiny, tmp_path, capsys):
    text = tmp_path / "latin1.txt"
    text.write_bytes("fine\n".encode() + "café\n".encode("latin-1"))
    assert main(["tokenize-corpus", str(text), "--tokenizer", tiny, "--output", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{text}:2: not UTF-8 text" in err and "0xe9" in err


@pytest.mark.slow
def test_tokenize_corpus_memory_is_bounded_by_bytes_not_documents(tiny, tmp_path):
    # 16 MB of 5 KB documents: one chunk of 3,200 documents by the old count held every token list (1.1 GB
    # resident with this small vocabulary's short tokens).
    words = " ".join(f"word{i % 997} and more" for i in range(320))[:5000]
    text = tmp_path / "big.txt"
    with open(text, "w") as f:
        for i in range(3200):
            f.write(f"{i} {words}\n")
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's (pytest's) at the fork.
    code = ("import re, sys; from roberta_prelayernorm.cli import main; rc = main(sys.argv[1:]); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024, "
            "file=sys.stderr); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "tokenize-corpus", str(text), "--tokenizer", tiny,
                           "--output", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.strip().splitlines()[-1])
    assert peak < 400, f"tokenize-corpus over 16 MB peaked at {peak} MB"


def test_an_input_edited_to_the_same_size_is_not_resumed(tiny, corpus, tmp_path):
    jsonl, _ = corpus
    text = tmp_path / "train.jsonl"
    text.write_bytes(open(jsonl, "rb").read())
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    with pytest.raises(KeyboardInterrupt):
        write_corpus([str(text)], Tokenizer(tokenizer, fail_at=2), str(tmp_path / "dir"), CHUNK, progress=False)
    edited = text.read_bytes().replace(b"a", b"e", 5)  # the same size, other text
    text.write_bytes(edited)
    with pytest.raises(CorpusError, match=f"{text} changed since"):
        write_corpus([str(text)], tokenizer, str(tmp_path / "dir"), CHUNK, progress=False)


def test_a_second_run_on_the_same_output_is_refused_at_once(tiny, corpus, tmp_path, capsys):
    from roberta_prelayernorm.files import exclusive_lock

    jsonl, _ = corpus
    with exclusive_lock(str(tmp_path / "dir")):  # the first run, still running
        assert main(["tokenize-corpus", jsonl, "--tokenizer", tiny, "--output", str(tmp_path / "dir"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'dir'} is in use by process {os.getpid()}") and err.count("\n") == 1
    assert os.listdir(tmp_path / "dir") == [".lock"]  # the second run wrote nothing


def test_a_corpus_is_known_by_its_contents_not_by_its_lock(tiny, corpus, tmp_path):
    from roberta_prelayernorm.training.checkpoints import file_fingerprint

    _, folder = corpus
    before = file_fingerprint(folder)
    with open(os.path.join(folder, ".lock"), "a") as f:
        f.write("process 1234567890\n")  # another run's lock, longer
    assert file_fingerprint(folder) == before
