"""Tokenize 10,000 sentences in one batch: roberta_prelayernorm's tokenizer vs transformers' RobertaTokenizerFast.

Both load the same vocab.json + merges.txt (a byte-level BPE vocabulary trained here on CPython's documentation,
as there is no RoBERTa vocabulary offline). Runs are interleaved, ours and theirs alternating which goes first,
and the script reports per setting the median wall and CPU seconds (time.process_time: all threads of this
process, the Rust engine's included) and the median of the per-pair ratios ours / transformers (< 1: ours faster).

    PYTHONPATH=src python benchmarks/bench_tokenizer.py [--sentences 10000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time

from common import write_results


def sentences(count: int) -> list[str]:
    from pydoc_data.topics import topics

    text = " ".join(topics.values())
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]
    return [found[i % len(found)] for i in range(count)]


def timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()

    from pydoc_data.topics import topics
    from transformers import RobertaTokenizerFast

    from roberta_prelayernorm.tokenizer import RobertaPreLayerNormTokenizer, train_byte_level_bpe

    folder = tempfile.mkdtemp(prefix="bench-tokenizer-")
    train_byte_level_bpe(list(topics.values()), vocab_size=args.vocab_size).save_pretrained(folder)
    ours = RobertaPreLayerNormTokenizer.from_pretrained(folder, model_max_length=512)
    theirs = RobertaTokenizerFast.from_pretrained(folder, model_max_length=512)
    batch = sentences(args.sentences)
    settings = {
        "lists (defaults)": dict(),
        "padded+truncated, pt": dict(padding=True, truncation=True, max_length=128, return_tensors="pt"),
        "all outputs, np": dict(
            padding=True,
            truncation=True,
            return_tensors="np",
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_length=True,
        ),
    }
    print(f"{len(batch)} sentences, {sum(map(len, batch))} characters, vocabulary {len(ours)}, "
          f"{args.repeats} interleaved pairs per setting")
    rows = []
    for name, kwargs in settings.items():
        assert ours(batch[:200], **kwargs).keys() == theirs(batch[:200], **kwargs).keys()
        ours(batch, **kwargs), theirs(batch, **kwargs)  # warm-up
        times = {"ours": [], "transformers": []}
        ratios_wall, ratios_cpu = [], []
        for repeat in range(args.repeats):
            order = [("ours", ours), ("transformers", theirs)]
            if repeat % 2:
                order.reverse()
            result = {label: timed(lambda tok=tok: tok(batch, **kwargs)) for label, tok in order}
            for label in result:
                times[label].append(result[label])
            ratios_wall.append(result["ours"][0] / result["transformers"][0])
            ratios_cpu.append(result["ours"][1] / result["transformers"][1])
        row = {"setting": name, "kwargs": kwargs, "sentences": len(batch)}
        for label, pairs in times.items():
            row[f"{label}_wall_s"] = round(statistics.median(t[0] for t in pairs), 4)
            row[f"{label}_cpu_s"] = round(statistics.median(t[1] for t in pairs), 4)
        row["ratio_wall"] = round(statistics.median(ratios_wall), 3)
        row["ratio_cpu"] = round(statistics.median(ratios_cpu), 3)
        rows.append(row)
        print(json.dumps(row))
    write_results("bench_tokenizer", rows, vars(args))


if __name__ == "__main__":
    main()
