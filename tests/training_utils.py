"""Shared pieces of the tests: a tiny tokenizer and model trained on the shipped demo data, training settings on
it, the console script run in this process, and file writes made to fail."""

import contextlib
import io
import json
import os
import shutil
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from importlib import resources

from roberta_prelayernorm import files
from roberta_prelayernorm.cli import main
from roberta_prelayernorm.training import TrainingConfig

DATA = str(resources.files("roberta_prelayernorm") / "data")
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=66, type_vocab_size=1, layer_norm_eps=1e-5)
LONG = " ".join(["word"] * 400)  # far more than the tiny model's 64 tokens
FILES = {"sequence-classification": "sentiment", "token-classification": "ner", "question-answering": "qa",
         "multiple-choice": "choice", "masked-lm": "corpus"}


def data(name: str) -> str:
    return os.path.join(DATA, name)


def head(path: str, n: int, out: str) -> str:
    """The first n records of a shipped JSONL file, written to `out`."""
    with open(path, encoding="utf-8") as f:
        lines = [line for _, line in zip(range(n), f)]
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return out


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return str(path)


def make_tiny_model(folder: str, dropout: float = 0.1) -> str:
    """A tiny masked-LM model (random weights) with a BPE tokenizer trained on the shipped corpus."""
    import roberta_prelayernorm as rp
    from roberta_prelayernorm.tokenizer import train_byte_level_bpe

    if os.path.isdir(folder):
        shutil.rmtree(folder)
    with open(data("corpus.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    tokenizer = train_byte_level_bpe(texts, vocab_size=600)
    config = rp.RobertaPreLayerNormConfig(vocab_size=len(tokenizer), hidden_dropout_prob=dropout,
                                          attention_probs_dropout_prob=dropout, **TINY)
    import torch

    torch.manual_seed(0)
    rp.RobertaPreLayerNormForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def config(tmp_path, task, tiny, n=48, **overrides):
    name = FILES[task]
    train = head(data(f"{name}_train.jsonl" if task != "masked-lm" else "corpus.jsonl"), n, tmp_path / "train.jsonl")
    values = dict(task=task, model=tiny, train=str(train), validation=str(train), output_dir=str(tmp_path / "out"),
                  max_steps=24, batch_size=8, learning_rate=2e-3, max_length=64, stride=16, progress=False,
                  log_every=4, eval_every=100)
    values.update(overrides)
    return TrainingConfig(**values)


def train_config(tmp_path, tiny, task="sequence-classification", validation=True, **overrides):
    name = {"masked-lm": "corpus"}.get(task, "sentiment")
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = head(data(f"{name}_train.jsonl" if task != "masked-lm" else "corpus.jsonl"), 16, tmp_path / "train.jsonl")
    values = dict(task=task, model=tiny, train=str(train), validation=None if validation is True else validation,
                  output_dir=str(tmp_path / "out"), max_steps=4, batch_size=8, learning_rate=1e-3, max_length=64,
                  progress=False, log_every=2, save_every=2, eval_every=2)
    values.update(overrides)
    if validation is True:
        values["validation"] = values["train"]
    return TrainingConfig(**values)


KILLED_RUN = textwrap.dedent("""
    import sys, time, torch
    from roberta_prelayernorm.training import Trainer, TrainingConfig
    real_save = torch.save

    def save(obj, path, *args, **kwargs):  # hang half way through writing the step-6 checkpoint
        if isinstance(obj, dict) and obj.get("step") == 6:
            with open(path, "wb") as f:
                f.write(b"half")
            print("SAVING", flush=True)
            time.sleep(600)
        return real_save(obj, path, *args, **kwargs)

    torch.save = save
    torch.set_num_threads(1)
    Trainer(TrainingConfig(**__import__("json").loads(sys.argv[1]))).train()
""")


def run_cli(*args):
    """(exit code, stdout, stderr) of the console script's main, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            err.write(str(exit_.code) if not isinstance(exit_.code, int) else "")
    return code, out.getvalue(), err.getvalue()


def writes_fail_after(monkeypatch, k):
    """Make every file write after the first k raise (as a kill at that write boundary would stop it): every
    write goes through files.writing (atomic_write, atomic_write_text, open_output call it)."""
    real, count = files.writing, [0]

    @contextlib.contextmanager
    def write(path):
        count[0] += 1
        if count[0] > k:
            raise KeyboardInterrupt(f"killed before write {count[0]}")
        with real(path) as name:
            yield name

    monkeypatch.setattr(files, "writing", write)
    return count
