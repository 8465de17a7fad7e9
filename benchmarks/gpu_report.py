"""The GPU benchmark's table (benchmarks/bench_gpu.py) from its result files, without torch: the README's table is
generated from these files (tools/readme_tables.py) and `bench_gpu.py --table` prints the same."""

from __future__ import annotations

import json

COLUMNS = ("transformers eager", "transformers compile", "ours eager", "ours compile",
           "ours sparse eager", "ours sparse compile")
# Per row: title, kind, size, (batch, length) on the GPU and with --tiny, the columns it has, seconds to budget
# for an eager and a compiled cell (as measured on an H200: compiling takes most of a compiled cell). The whole
# table takes about 11 minutes there (--budget-s 700); the default 6 minutes give the cells of COMPILE_ORDER's
# head: the comparisons the speed goals are stated in.
ROWS = {
    "mlm-base": ("masked-LM step, base, 40%", "mlm", "base", (256, 128), (4, 32), COLUMNS, (15, 40)),
    "mlm-large": ("masked-LM step, large, 40%", "mlm", "large", (128, 128), (4, 32), COLUMNS, (25, 80)),
    "mlm-long": ("masked-LM step, base, 40%, long", "mlm", "base", (32, 512), (2, 64), COLUMNS, (15, 45)),
    "finetune": ("fine-tuning step, base, ragged", "finetune", "base", (64, 251), (4, 31), COLUMNS[:4], (15, 35)),
    "infer-ragged": ("inference, base, ragged", "infer", "base", (256, 255), (4, 31), COLUMNS[:4], (10, 20)),
    "infer-full": ("inference, base, full", "infer", "base", (256, 128), (4, 32), COLUMNS[:4], (10, 20)),
    "train": ("`train` command, masked-LM base", "train", "base", (256, 128), (4, 32), COLUMNS[4:], (60, 60)),
}
DISPLAY = {"mlm": ("tokens_per_s", "mfu", "peak_mem_gb", "speedup"),
           "finetune": ("step_ms", "tokens_per_s", "peak_mem_gb", "speedup"),
           "infer": ("tokens_per_s", "speedup"), "train": ("tokens_per_s", "mfu", "vs_bare")}


def human(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e3 else f"{x:.0f}"


def derive(results: dict) -> None:
    """Speed-ups against transformers + compile (else eager, noted), and the train command against the bare
    step of the same column of mlm-base."""
    for row, entry in results["rows"].items():
        cells = entry["cells"]
        ref = next((c for c in ("transformers compile", "transformers eager")
                    if "tokens_per_s" in cells.get(c, {})), None)
        for column, cell in cells.items():
            if ref and "tokens_per_s" in cell and ROWS[row][1] != "train":
                cell["speedup"], cell["speedup_vs"] = cell["tokens_per_s"] / cells[ref]["tokens_per_s"], ref
            bare = results["rows"].get("mlm-base", {}).get("cells", {}).get(column, {})
            if ROWS[row][1] == "train" and "tokens_per_s" in cell and "tokens_per_s" in bare:
                cell["bare_tokens_per_s"] = bare["tokens_per_s"]
                cell["vs_bare"] = cell["tokens_per_s"] / bare["tokens_per_s"]


def cell_text(kind: str, cell) -> str:
    if cell is None:
        return "—"
    if "skipped" in cell:
        return f"skipped ({cell['skipped']})"
    if "error" in cell:
        return "error: " + cell["error"][:120].replace("|", "/")
    parts = []
    for key in DISPLAY[kind]:
        value = cell.get(key)
        if value is None:
            continue
        parts.append({"tokens_per_s": lambda v: f"{human(v)} tok/s", "mfu": lambda v: f"MFU {v:.1%}",
                      "peak_mem_gb": lambda v: f"{v:.1f} GB", "step_ms": lambda v: f"{v:.1f} ms",
                      "speedup": lambda v: f"{v:.2f}x" + (" vs eager" if "eager" in cell["speedup_vs"] else ""),
                      "vs_bare": lambda v: f"{v:.2f}x of bare {human(cell['bare_tokens_per_s'])}"}[key](value))
    if "tokens_per_s_without_varlen" in cell:
        parts.append(f"re-padded SDPA instead of varlen: {human(cell['tokens_per_s_without_varlen'])} tok/s")
    if "tokens_per_s_unpadded_vocab" in cell:
        parts.append(f"vocabulary not padded: {human(cell['tokens_per_s_unpadded_vocab'])} tok/s")
    if cell.get("fullgraph_error"):
        parts.append("not fullgraph")
    return ", ".join(parts)


def table(results: dict) -> str:
    lines = ["| workload | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row, entry in results["rows"].items():
        title = f"{entry['title']}, {entry['shape']}" + (f", {entry['padding']:.0%} padding" if "padding" in entry
                                                         else "")
        cells = [cell_text(ROWS[row][1], entry["cells"].get(c)) for c in COLUMNS]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merged(paths: list) -> dict:
    """The cells of several result files, a later file's over an earlier one's (a skipped cell never wins)."""
    rows = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
        for row, entry in run["rows"].items():
            if row not in ROWS:  # a row of an older version of this script
                continue
            target = rows.setdefault(row, {**entry, "cells": {}})
            for column, cell in entry["cells"].items():
                if "skipped" not in cell or column not in target["cells"]:
                    target["cells"][column] = cell
    results = {"rows": {row: rows[row] for row in ROWS if row in rows}}
    derive(results)
    return results
