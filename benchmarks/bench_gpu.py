"""This package against transformers on one GPU, same random weights, bf16 autocast, fused AdamW (lr 1e-5).

    python benchmarks/bench_gpu.py [--json FILE] [--budget-s 340] [--rows ...] [--no-long]
    python benchmarks/bench_gpu.py --device cpu --tiny [--no-compile]     # a quick run of every path on CPU
    python benchmarks/bench_gpu.py --table benchmarks/results/bench_gpu_h200_*.json   # the README's table

Workloads (rows): masked-LM training steps (base 256 x 128, large 128 x 128, base 32 x 512; 40% masked, full
blocks), a fine-tuning step (sequence classification, 64 ragged sentences, ~45% padding), bf16 inference (ragged
256 x 255 and full 256 x 128) and this package's `train` command on a generated corpus. Variants (columns):
transformers and this package, eager and under torch.compile; this package also with sparse prediction
(`prediction_positions`, the masked positions only). Figures are medians of timed steps after warm-up; MFU counts
the useful FLOPs of a masked-LM step (the LM head at the masked positions only) for every variant alike; speed-ups
are against transformers + compile. Eager variants run first, then compiled ones, until --budget-s is spent;
each cell's error is recorded and the run carries on. Every figure goes to the JSON file, rewritten after each.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import torch

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
sys.path.insert(0, SRC)  # this working tree's package, installed or not

from bench_pretraining import MASK_ID  # noqa: E402
from common import (AT_START, BASE, EFFICIENT_MLM, LARGE, RESULTS, command_line, cpu_info,  # noqa: E402
                    full_batch, same_weights, slug, version)
from gpu_report import COLUMNS, ROWS, cell_text, derive, merged, table  # noqa: E402
from roberta_prelayernorm import modeling  # noqa: E402
from roberta_prelayernorm.modeling import VARLEN_ENV, positions_where  # noqa: E402
from roberta_prelayernorm.tasks.collate import capacity, mask_tokens  # noqa: E402

RATE = 0.4
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)
ORDER = {"eager": ("mlm-base", "finetune", "infer-full", "infer-ragged", "mlm-large", "mlm-long", "train")}
# Compiled cells, most wanted first (compiling takes most of the budget): the comparisons the speed goals name,
# against transformers + compile, then the rest.
COMPILE_ORDER = (("mlm-base", "transformers compile"), ("mlm-base", "ours sparse compile"),
                 ("finetune", "transformers compile"), ("finetune", "ours compile"),
                 ("infer-ragged", "transformers compile"), ("infer-full", "transformers compile"),
                 ("train", "ours sparse compile"), ("mlm-large", "transformers compile"),
                 ("mlm-large", "ours sparse compile"), ("infer-ragged", "ours compile"),
                 ("infer-full", "ours compile"), ("mlm-base", "ours compile"), ("mlm-long", "transformers compile"),
                 ("mlm-long", "ours sparse compile"), ("mlm-large", "ours compile"), ("mlm-long", "ours compile"))


# -- batches --------------------------------------------------------------------------------------------
def mlm_batch(batch_size: int, length: int, rate: float = RATE, seed: int = 0):
    """Full blocks masked as the trainer masks them (the paper's per-row count, all <mask>): (input_ids, labels,
    prediction positions (B, capacity))."""
    input_ids, _ = full_batch(batch_size, length, seed)
    g = torch.Generator().manual_seed(seed + 1)
    masked, labels = mask_tokens(input_ids, torch.zeros_like(input_ids), rate, "mask", MASK_ID,
                                 EFFICIENT_MLM["vocab_size"], g)
    return masked, labels, positions_where(labels != -100, capacity(rate, length))


def ragged_batch(batch_size: int, length: int, seed: int = 0):
    """Sentences of log-normal lengths (the longest `length`, ~45% padding overall), padded to the longest."""
    g = torch.Generator().manual_seed(seed)
    mean = 0.55 * length
    lengths = (math.log(mean) - 0.08 + 0.4 * torch.randn(batch_size, generator=g)).exp().round()
    lengths = lengths.clamp(4, length).long()
    lengths[0] = length
    input_ids = torch.full((batch_size, length), 1, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        input_ids[row, :n] = torch.randint(3, EFFICIENT_MLM["vocab_size"] - 1, (n,), generator=g)
        input_ids[row, 0], input_ids[row, n - 1] = 0, 2
        attention_mask[row, :n] = 1
    return input_ids, attention_mask


def pad_to_multiple(input_ids, attention_mask, multiple: int = 64):
    extra = -input_ids.size(1) % multiple
    return (torch.nn.functional.pad(input_ids, (0, extra), value=1),
            torch.nn.functional.pad(attention_mask, (0, extra), value=0))


# -- measuring ------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args, self.device = args, torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.sizes = {"base": TINY if args.tiny else BASE,
                      "large": dict(TINY, num_hidden_layers=3) if args.tiny else LARGE}
        self.models = {}

    def pair(self, model_class: str, size: str):
        """(transformers model, ours, transformers' attention implementation) on the CPU, built once: sdpa
        where transformers takes it, else its default."""
        key = (model_class, size)
        if key not in self.models:
            extra = {"num_labels": 2} if "Classification" in model_class else {}
            try:
                theirs, ours = same_weights(model_class, self.sizes[size], attn_implementation="sdpa", **extra)
            except Exception:  # noqa: BLE001 - an older transformers, or one without sdpa for this model
                theirs, ours = same_weights(model_class, self.sizes[size], **extra)
            self.models[key] = theirs, ours, getattr(theirs.config, "_attn_implementation", None)
        return self.models[key]

    def model(self, model_class: str, size: str, column: str, train: bool):
        """A fresh copy on the device of the column's side; peak memory counted from here."""
        theirs, ours, attn = self.pair(model_class, size)
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = copy.deepcopy(theirs if column.startswith("transformers") else ours).to(self.device)
        return model.train(train), ({"attn_implementation": attn} if column.startswith("transformers") else {})

    def steps(self, model, batch: dict, train: bool):
        """make_step(fn): a step of fn (the model or its compiled form) on `batch` in bf16 autocast: forward,
        backward and fused AdamW (lr 1e-5) when `train`, else a forward without gradients."""
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=self.cuda) if train else None

        def make_step(fn):
            def step():
                with torch.autocast(self.device.type, dtype=torch.bfloat16), torch.set_grad_enabled(train):
                    output = fn(**batch)
                if train:
                    output.loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            return step
        return make_step

    def measure(self, model, make_step, column: str) -> dict:
        """Median seconds of a step after warm-up; compiled: the first call's wall time as compile_s, and
        fullgraph=True for ours, falling back to plain torch.compile (noted) where that raises."""
        out, sync = {}, (torch.cuda.synchronize if self.cuda else lambda: None)
        step = make_step(model)
        if column.endswith("compile"):
            fullgraph = column.startswith("ours")
            for attempt in ((True, False) if fullgraph else (False,)):
                torch._dynamo.reset()
                step = make_step(torch.compile(model, fullgraph=attempt, backend=self.args.backend))
                start = time.perf_counter()
                try:
                    step()
                    sync()
                    break
                except Exception as e:  # noqa: BLE001 - fullgraph failed: plain compile, noted
                    if not attempt:
                        raise
                    out["fullgraph_error"] = short(e)
            out["compile_s"] = round(time.perf_counter() - start, 1)
            out["fullgraph"] = fullgraph and "fullgraph_error" not in out
        for _ in range(self.args.warmup):
            step()
        sync()
        if self.cuda:  # events between steps: the device's time per step, the host running ahead
            events = [torch.cuda.Event(enable_timing=True) for _ in range(self.args.steps + 1)]
            events[0].record()
            for event in events[1:]:
                step()
                event.record()
            sync()
            times = [a.elapsed_time(b) / 1e3 for a, b in zip(events, events[1:])]
        else:
            times = []
            for _ in range(self.args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        out["step_s"] = statistics.median(times)
        out["step_ms"] = round(out["step_s"] * 1e3, 2)
        if self.cuda:
            out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out

    # -- the cells of each kind of row ------------------------------------------------------------------
    def mlm(self, row: str, column: str) -> dict:
        size, (B, T) = ROWS[row][2], self.shape(row)
        model, info = self.model("RobertaPreLayerNormForMaskedLM", size, column, train=True)
        input_ids, labels, positions = mlm_batch(B, T)
        batch = dict(input_ids=input_ids.to(self.device), attention_mask=None, labels=labels.to(self.device))
        if "sparse" in column:
            del batch["attention_mask"]
            batch["prediction_positions"] = positions.to(self.device)
        out = self.measure(model, self.steps(model, batch, train=True), column)
        out["tokens_per_s"] = B * T / out["step_s"]
        if self.peak:
            out["mfu"] = out["tokens_per_s"] * self.flops_per_token(size, T) / self.peak
        if column == "ours sparse eager" and self.cuda:  # the LM head's choice: vocabulary padded to 64 or not
            with unpadded_vocabulary():
                unpadded = self.measure(model, self.steps(model, batch, train=True), column)
            out["tokens_per_s_unpadded_vocab"] = B * T / unpadded["step_s"]
        return {**info, **out}

    def finetune(self, row: str, column: str) -> dict:
        model, info = self.model("RobertaPreLayerNormForSequenceClassification", "base", column, train=True)
        input_ids, attention_mask = ragged_batch(*self.shape(row))
        labels = torch.randint(0, 2, (input_ids.size(0),), generator=torch.Generator().manual_seed(0))
        batch = dict(self.ragged_inputs(input_ids, attention_mask, column), labels=labels.to(self.device))
        out = self.measure(model, self.steps(model, batch, train=True), column)
        return {**info, **out, "tokens_per_s": int(attention_mask.sum()) / out["step_s"]}

    def infer(self, row: str, column: str) -> dict:
        model, info = self.model("RobertaPreLayerNormForSequenceClassification", "base", column, train=False)
        B, T = self.shape(row)
        if row == "infer-full":
            input_ids, _ = full_batch(B, T)
            useful, batch = input_ids.numel(), dict(input_ids=input_ids.to(self.device), attention_mask=None)
        else:
            input_ids, attention_mask = ragged_batch(B, T)
            useful, batch = int(attention_mask.sum()), self.ragged_inputs(input_ids, attention_mask, column)
        out = self.measure(model, self.steps(model, batch, train=False), column)
        out["tokens_per_s"] = useful / out["step_s"]
        if column == "ours eager" and row == "infer-ragged" and self.cuda:  # the packed path's attention choice
            os.environ[VARLEN_ENV] = "0"
            try:
                padded = self.measure(model, self.steps(model, batch, train=False), column)
            finally:
                del os.environ[VARLEN_ENV]
            out["tokens_per_s_without_varlen"] = useful / padded["step_s"]
        return {**info, **out}

    def ragged_inputs(self, input_ids, attention_mask, column: str) -> dict:
        """Ours eager: the mask stays on the host (pinned) for packing without a device sync; ours compiled:
        T padded to a multiple of 64, mask on the device; transformers: as given, mask on the device."""
        if column == "ours eager":
            mask = attention_mask.pin_memory() if self.cuda else attention_mask
            return dict(input_ids=input_ids.to(self.device), attention_mask=mask)
        if column == "ours compile":
            input_ids, attention_mask = pad_to_multiple(input_ids, attention_mask)
        return dict(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))

    def train(self, row: str, column: str) -> dict:
        """`roberta-prelayernorm train` (efficient-mlm recipe, from scratch, one micro-batch per update) on a
        generated corpus, in a subprocess: the tokens_per_s and MFU it logs (the last log: steady state)."""
        if column.endswith("compile") and self.args.backend != "inductor":
            return {"skipped": f"train --compile uses inductor, not {self.args.backend}"}
        B, T = self.shape(row)
        steps, log_every = (4, 2) if self.args.tiny else (30, 10)
        folder = os.path.join(self.workdir, "train-data")
        if not os.path.isdir(folder):
            write_corpus(folder, (steps + 2) * B * T, self.sizes["base"])
        output = os.path.join(self.workdir, f"train-{column.split()[-1]}")
        command = [sys.executable, "-m", "roberta_prelayernorm", "train", "--task", "masked-lm",
                   "--model", folder, "--from-scratch", "--train", os.path.join(folder, "corpus.jsonl"),
                   "--output", output, "--recipe", "efficient-mlm", "--batch-size", str(B), "--grad-accum", "1",
                   "--max-length", str(T), "--max-steps", str(steps), "--log-every", str(log_every),
                   "--save-every", "1000000", "--on-nonfinite", "skip", "--device", self.args.device,
                   "--no-progress", "--overwrite", "--compile" if column.endswith("compile") else "--no-compile"]
        if self.peak:
            command += ["--peak-flops", str(self.peak)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
                   HF_HUB_OFFLINE="1")
        timeout = max(60.0, self.args.budget_s - (time.perf_counter() - self.start) + 30)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        out = {"command": " ".join(command), "wall_s": round(time.perf_counter() - start, 1)}
        if done.returncode:
            raise RuntimeError(f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
        with open(os.path.join(output, "metrics.jsonl"), encoding="utf-8") as f:
            logs = [r for r in map(json.loads, f) if r.get("split") == "train"]
        out["logs"] = [{k: r.get(k) for k in ("step", "loss", "tokens_per_s", "mfu")} for r in logs]
        out["tokens_per_s"], out["mfu"] = logs[-1]["tokens_per_s"], logs[-1].get("mfu")
        return out

    def shape(self, row: str):
        return ROWS[row][4] if self.args.tiny else ROWS[row][3]

    def flops_per_token(self, size: str, length: int) -> float:
        from roberta_prelayernorm.training.throughput import train_flops_per_token

        return train_flops_per_token(self.pair("RobertaPreLayerNormForMaskedLM", size)[1].config, length, RATE)


@contextlib.contextmanager
def unpadded_vocabulary():
    padded_on = modeling.VOCAB_PADDED_ON
    modeling.VOCAB_PADDED_ON = ()
    try:
        yield
    finally:
        modeling.VOCAB_PADDED_ON = padded_on


def write_corpus(folder: str, words: int, size: dict) -> None:
    """corpus.jsonl of `words` random words (CPython's documentation vocabulary, fixed seed; at least one token
    each), a byte-level BPE tokenizer trained on part of it and a config of vocabulary 50265 (the real one's)."""
    import roberta_prelayernorm as rp
    from pydoc_data.topics import topics
    from roberta_prelayernorm.tokenizer import train_byte_level_bpe

    vocabulary = sorted(set(re.findall(r"[a-z]{2,}", " ".join(topics.values()).lower())))
    rng = random.Random(0)
    texts = [" ".join(rng.choices(vocabulary, k=200)) for _ in range(math.ceil(words / 200))]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "corpus.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": text}) + "\n" for text in texts)
    train_byte_level_bpe(texts[:500], vocab_size=4000).save_pretrained(folder)
    rp.RobertaPreLayerNormConfig(**EFFICIENT_MLM, **size).save_pretrained(folder)


# -- reporting ------------------------------------------------------------------------------------------
def short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def machine(bench: Bench) -> dict:
    cpu = cpu_info()
    return {"gpu": torch.cuda.get_device_name(bench.device) if bench.cuda else None, "torch": torch.__version__,
            "transformers": version("transformers"), "cuda": torch.version.cuda, "triton": version("triton"),
            "cpu": cpu["cpu"], "cpus": cpu["cores"], "device": bench.args.device}


def results_path(info: dict) -> str:
    """Where a run's figures go by default: results/bench_gpu_<gpu, or cpu with --device cpu>_<commit>.json."""
    return os.path.join(RESULTS, f"bench_gpu_{slug(info['gpu'] or info['cpu'])}_{AT_START['commit']}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="where every figure goes (default: "
                        "benchmarks/results/bench_gpu_<gpu>_<commit>.json)")
    parser.add_argument("--budget-s", type=float, default=340,
                        help="cells that would end past it are skipped (340; the whole table needs about 700)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches (2 timed steps): a CPU try")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS), help="variants to run")
    parser.add_argument("--long", action=argparse.BooleanOptionalAction, default=True, help="the 32 x 512 row")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager variants only")
    parser.add_argument("--backend", default=None, help="torch.compile backend (inductor; aot_eager with --tiny, "
                        "which skips the train command's --compile cell: that one is always inductor)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (10; 2 with --tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (3; 1 with --tiny)")
    parser.add_argument("--peak-flops", type=float, default=None, help="bf16 peak FLOP/s for MFU (default: by name)")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="print the table of these result files (a later "
                        "file's cells over an earlier one's) and exit: the README's table")
    args = parser.parse_args()
    if args.table:
        print(table(merged(args.table)))
        return
    args.backend = args.backend or ("aot_eager" if args.tiny else "inductor")
    args.steps = args.steps or (2 if args.tiny else 10)
    args.warmup = args.warmup or (1 if args.tiny else 3)
    rows = [r for r in args.rows if args.long or r != "mlm-long"]

    from roberta_prelayernorm.training.throughput import peak_flops

    torch.set_float32_matmul_precision("high")  # TF32 matmuls, for both
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    bench = Bench(args)
    bench.start = time.perf_counter()
    info = machine(bench)
    bench.peak = args.peak_flops or (peak_flops(info["gpu"]) if bench.cuda else None)
    print(f"machine: {info['gpu'] or 'CPU'}, torch {info['torch']}, transformers {info['transformers']}, "
          f"CUDA {info['cuda']}, triton {info['triton']}, {info['cpus']} CPUs", flush=True)
    print(f"peak for MFU: {bench.peak / 1e12:.0f} TFLOP/s bf16" if bench.peak else "peak for MFU: unknown (no MFU)",
          flush=True)
    args.json = args.json or results_path(info)
    results = {"script": "bench_gpu", "command": command_line(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **AT_START,
               "machine": info, "peak_flops": bench.peak, "settings": vars(args), "rows": {}}
    for row in rows:
        title, kind, size, _, _, columns, _ = ROWS[row]
        entry = results["rows"][row] = {"title": title, "shape": "x".join(map(str, bench.shape(row))), "cells": {}}
        if kind in ("finetune", "infer") and row != "infer-full":
            mask = ragged_batch(*bench.shape(row))[1]
            entry["padding"], entry["useful_tokens"] = 1 - mask.float().mean().item(), int(mask.sum())
    jobs = [(row, column, ROWS[row][6][0]) for row in ORDER["eager"] if row in rows
            for column in ROWS[row][5] if column.endswith("eager") and column in args.columns]
    if args.compile:
        jobs += [(row, column, ROWS[row][6][1]) for row, column in COMPILE_ORDER
                 if row in rows and column in args.columns]
    with tempfile.TemporaryDirectory() as workdir:
        bench.workdir = workdir
        for row, column, cost in jobs:
            elapsed = time.perf_counter() - bench.start
            if elapsed + (0 if args.tiny else cost) > args.budget_s:
                cell = {"skipped": "time"}
            else:
                try:
                    cell = getattr(bench, ROWS[row][1])(row, column)
                except Exception as e:  # noqa: BLE001 - every cell runs once; its error is its figure
                    cell = {"error": short(e), "traceback": traceback.format_exc()[-3000:]}
                torch._dynamo.reset()
                gc.collect()
                if bench.cuda:
                    torch.cuda.empty_cache()
            cell["elapsed_s"] = round(time.perf_counter() - bench.start, 1)
            results["rows"][row]["cells"][column] = cell
            print(f"[{cell['elapsed_s']:6.1f}s] {row} / {column}: {cell_text(ROWS[row][1], cell)}", flush=True)
            derive(results)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1, default=str)
    print("\n" + table(results), flush=True)
    print(f"\nJSON: {os.path.abspath(args.json)} ({time.perf_counter() - bench.start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
