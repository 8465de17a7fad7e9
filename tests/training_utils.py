"""Shared pieces of the training tests: a tiny tokenizer and model trained on the shipped demo data."""

import json
import os
import shutil
from importlib import resources

DATA = str(resources.files("roberta_prelayernorm") / "data")
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=66, type_vocab_size=1, layer_norm_eps=1e-5)


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
