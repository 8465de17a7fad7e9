"""Shared benchmark plumbing: same weights in both libraries, interleaved timing, median ratios, and the results
file every script writes its figures to (README tables are generated from these files: tools/readme_tables.py)."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import torch

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
EFFICIENT_MLM = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
# The CPU features that decide which kernels run (oneDNN's AVX-512, VNNI int8, bf16 and AMX paths).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# What a figure depends on: a change here, uncommitted, makes a run's commit an incomplete account of its code.
MEASURED_CODE = ("src", "benchmarks", ":(exclude)benchmarks/results")


def cpu_info() -> dict:
    """The first processor's model name, family and model numbers, and which of FLAGS it has (Linux;
    elsewhere the name platform gives and no flags)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough: they are alike
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name") or platform.processor() or platform.machine(),
            "cpu_family": fields.get("cpu family"), "cpu_model": fields.get("model"),
            "flags": [flag for flag in FLAGS if flag in flags], "cores": os.cpu_count()}


def version(package: str):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    return {**cpu_info(), "threads": torch.get_num_threads(), "os": platform.platform(),
            "python": platform.python_version(),
            **{package: version(package) for package in ("torch", "transformers", "onnxruntime")}}


def machine() -> str:
    info = machine_info()
    return (f"{info['cpu']}, {info['cores']} cores ({', '.join(info['flags']) or 'no AVX2'}), "
            f"torch {info['torch']}, {info['threads']} threads")


def slug(name: str) -> str:
    """A processor's name as a file-name part: "Intel(R) Xeon(R) Platinum 8488C" -> "intel-xeon-platinum-8488c"."""
    name = re.sub(r"\((r|tm)\)|@.*|\b\d+-core\b|\b(processor|cpu)\b", " ", name.lower())
    return "-".join(re.findall(r"[a-z0-9]+", name)) or "unknown"


def git_state() -> dict:
    """The commit measured and the uncommitted changes to the measured code (src/ and benchmarks/)."""
    def git(*args) -> str:
        done = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", *MEASURED_CODE).splitlines()
    return {"commit": git("rev-parse", "--short=7", "HEAD").strip() or "unknown", "dirty": bool(changed),
            "uncommitted": [line[3:] for line in changed]}


# The code a run measures is the code it loaded: the tree as the script starts (others may commit while it runs).
AT_START = git_state()


def load_average():
    """The 1, 5 and 15-minute load averages as the run ends: above the core count, other work shared the CPUs
    with the run and its figures are low (its ratios, interleaved, less so)."""
    try:
        return [round(load, 2) for load in os.getloadavg()]
    except OSError:
        return None


def command_line() -> str:
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return shlex.join(["python", script, *sys.argv[1:]])


def write_results(script: str, rows: list, settings: dict, variant: str = "", **extra) -> str:
    """Write a run's figures with where they come from to results/<script>_<cpu>_<commit>[_<variant>].json
    (a rerun at the same commit replaces its file) and return the path. `variant` tells apart runs of one
    script with different workloads (sizes, batches) that the README shows side by side."""
    info = machine_info()
    record = {"script": script, "variant": variant or None, "command": command_line(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              **AT_START, "machine": info, "load_average": load_average(), "settings": settings, "rows": rows,
              **extra}
    os.makedirs(RESULTS, exist_ok=True)
    name = "_".join(part for part in (script, slug(info["cpu"]), AT_START["commit"], variant) if part)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"results: {os.path.relpath(path)}")
    return path


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
