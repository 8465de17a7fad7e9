"""Shared benchmark plumbing: same weights in both libraries, interleaved timing, median ratios."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import torch

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
EFFICIENT_MLM = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def same_weights(model_class: str, size: dict, seed: int = 0, **config):
    """(transformers model, our model) of `model_class` with identical random weights, in eval mode."""
    import transformers

    import roberta_prelayernorm as rp

    torch.manual_seed(seed)
    theirs = getattr(transformers, model_class)(
        transformers.RobertaPreLayerNormConfig(**EFFICIENT_MLM, **size, **config)
    ).eval()
    with tempfile.TemporaryDirectory() as folder:
        theirs.save_pretrained(folder)
        ours = getattr(rp, model_class).from_pretrained(folder).eval()
    return theirs, ours


def sst2_like_batch(batch_size: int = 32, seed: int = 0, vocab_size: int = 50265):
    """Sentences of SST-2-like lengths (4..66 tokens, most short) padded to the longest: 60% padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = (3.1 + 0.5 * torch.randn(batch_size, generator=g)).exp().round().clamp(4, 66).long()  # log-normal
    lengths[0] = 66
    T = int(lengths.max())
    input_ids = torch.full((batch_size, T), 1, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, T), dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        input_ids[row, :n] = torch.randint(3, vocab_size, (n,), generator=g)
        input_ids[row, 0], input_ids[row, n - 1] = 0, 2
        attention_mask[row, :n] = 1
    return input_ids, attention_mask


def full_batch(batch_size: int = 8, length: int = 128, seed: int = 0, vocab_size: int = 50265):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (batch_size, length), generator=g)
    return input_ids, torch.ones_like(input_ids)


def interleaved(theirs_fn, ours_fn, pairs: int, warmup: int = 1) -> dict:
    """Run the two alternately (order swapped each pair); median CPU and wall seconds and their ratios."""
    for _ in range(warmup):
        theirs_fn()
        ours_fn()
    times = {"theirs": [], "ours": []}
    for i in range(pairs):
        order = [("theirs", theirs_fn), ("ours", ours_fn)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    result = {}
    for kind, k in (("cpu", 0), ("wall", 1)):
        theirs = [t[k] for t in times["theirs"]]
        ours = [t[k] for t in times["ours"]]
        result[f"theirs_{kind}_s"] = statistics.median(theirs)
        result[f"ours_{kind}_s"] = statistics.median(ours)
        result[f"speedup_{kind}"] = statistics.median(t / o for t, o in zip(theirs, ours))
    return result


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
