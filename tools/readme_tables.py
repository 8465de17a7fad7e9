"""Rewrite the README's benchmark tables from the result files in benchmarks/results/.

    python tools/readme_tables.py            # rewrite every table in README.md
    python tools/readme_tables.py --check    # exit 1, naming each table that differs from its files
    python tools/readme_tables.py --latest   # first point each marker at the newest run of its files' kind

A table lies between two marker comments; the opening one names the table's kind and the result files (paths
from the README's folder) it is made from, in the order its rows take:

    <!-- table: cpu-training benchmarks/results/bench_training_amd-epyc_1d87839_base-ragged.json ... -->
    (generated: the table, then a note naming the machine, commit, date and command of each file)
    <!-- /table -->

To show a new run, point the marker at its file (or let --latest do it) and run this script; the figures are
never typed in by hand. --latest replaces each named file with the newest file (by its recorded date) of the
same script, variant and CPU in the same folder: a run on another machine replaces nothing until a marker names
it.
Needs no torch: the check is quick enough for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import gpu_report  # noqa: E402  (torch-free: the GPU benchmark's own table code)

MARKER = re.compile(r"^<!-- table: (?P<kind>[\w-]+)(?P<files>(?: [^ >]+)*) -->\n(?P<body>.*?)^<!-- /table -->$",
                    re.MULTILINE | re.DOTALL)
WIDTH = 110  # the README's prose width
PEERS = {"transformers": "transformers (eager)", "ort-fp32": "ONNX Runtime fp32", "ours-fp32": "this package fp32",
         "ort-int8": "ONNX Runtime int8", "ours-int8": "this package int8", "ours-bf16": "this package bf16",
         "ours-fp32-compiled": "this package fp32, torch.compile"}


class TableError(Exception):
    """A marker that names an unknown kind, or a result file that is missing or does not fit its table."""


# -- cells ----------------------------------------------------------------------------------------------
def seconds(value: float) -> str:
    return f"{value:.3g} s"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def batch(row: dict) -> str:
    """"ragged 32 x 66, 59% padding" or "full 8 x 128" from a row's workload, shape and padding."""
    shape = " x ".join(map(str, row["shape"]))
    padding = f", {row['padding']:.0%} padding" if row.get("padding") else ""
    kind = row["workload"].rsplit("-", 1)[-1]
    return f"{kind} {shape}{padding}"


def markdown(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


# -- the kinds of table ---------------------------------------------------------------------------------
def gpu_table(records: list) -> list:
    """bench_gpu's table, a later file's cells over an earlier one's (as `bench_gpu.py --table` prints it)."""
    return gpu_report.table(gpu_report.merged([record["path"] for record in records])).splitlines()


def peers_table(records: list) -> list:
    """bench_peers: useful tokens/s of every system, its speed against ONNX Runtime at its precision and how far
    its logits are from transformers'."""
    (record,) = records
    rows = record["rows"]
    systems = [system for system in PEERS if any(row["system"] == system for row in rows)]
    lines = []
    for workload in dict.fromkeys(row["workload"] for row in rows):
        cells = {row["system"]: row for row in rows if row["workload"] == workload}
        first = next(iter(cells.values()))
        lines.append([f"{batch(first)}: useful tokens/s", *(f"{cells[s]['tok_s']:.0f}" for s in systems)])
        lines.append([f"{workload}: speed vs ONNX Runtime, wall / CPU s", *(peer_ratio(cells[s]) for s in systems)])
        lines.append([f"{workload}: largest logit difference from transformers",
                      *("reference" if s == "transformers" else f"{cells[s]['max_logit_diff']:.1g}" for s in systems)])
    return markdown([f"{record['settings']['size']} size", *(PEERS[s] for s in systems)], lines)


def peer_ratio(row: dict) -> str:
    peer = "ort-int8" if "int8" in row["system"] else "ort-fp32"
    if row["system"] == peer:
        return "1"
    return f"{ratio(row[f'vs_{peer}_wall'])} / {ratio(row[f'vs_{peer}_cpu'])}"


def roofline_table(records: list) -> list:
    """bench_peers' GEMM roofline: GFLOP/s of each backend."""
    (record,) = records
    return markdown(["backend", "GFLOP/s"], [[name, f"{value:.0f}"] for name, value in
                                              record["roofline_gflop_s"].items()])


def training_rows(record: dict) -> list:
    (row,) = record["rows"]
    step = f"fine-tuning step (fwd + bwd + AdamW), {batch(row)}"
    return [[step, *step_cells(row)], activations_row("activations kept for backward, same step", [row])]


def pretraining_rows(record: dict) -> list:
    rows = record["rows"]
    lines = [[f"masked-LM step, {' x '.join(map(str, row['shape']))}, {row['rate']:.0%} masked, sparse prediction",
              *step_cells(row)] for row in rows]
    rates = " / ".join(f"{row['rate']:.0%}" for row in rows)
    return lines + [activations_row(f"activations kept for backward, masked-LM step at {rates}", rows)]


def step_cells(row: dict) -> list:
    """CPU seconds of transformers and this package, and the speed-up in CPU / wall seconds."""
    return [f"{row['theirs_cpu_s']:.2f} CPU s", f"{row['ours_cpu_s']:.2f} CPU s",
            f"{ratio(row['speedup_cpu'])} / {ratio(row['speedup_wall'])}"]


def activations_row(title: str, rows: list) -> list:
    def joined(values):
        return " / ".join(dict.fromkeys(values))

    return [title, joined(f"{row['theirs_saved_activations_mb']:.0f} MB" for row in rows),
            joined(f"{row['ours_saved_activations_mb']:.0f} MB" for row in rows),
            joined(ratio(row["ours_saved_activations_mb"] / row["theirs_saved_activations_mb"]) for row in rows)
            + " memory"]


def load_rows(record: dict) -> list:
    load, imports = record["rows"]
    return [[f"load 24 x 1024 checkpoint (safetensors, {load['params_m']}M params), wall",
             seconds(load["theirs_wall_s"]), seconds(load["ours_wall_s"]),
             f"{ratio(load['load_time_ratio_ours_over_theirs'])} time"],
            ["import the model class (loads torch)", seconds(imports["import transformers model class_s"]),
             seconds(imports["import model class (loads torch)_s"]), ""],
            ["`import roberta_prelayernorm`", "", seconds(imports["import roberta_prelayernorm_s"]), ""]]


def checks_rows(record: dict) -> list:
    overheads = ", ".join(f"{row['checks_overhead_cpu']:+.1%} ({row['workload']})" for row in record["rows"])
    return [["input checks (`bench_checks.py`): their cost in CPU s (below 0: noise)", "", overheads, ""]]


STEP_ROWS = {"bench_training": training_rows, "bench_pretraining": pretraining_rows, "bench_load": load_rows,
             "bench_checks": checks_rows}


def steps_table(records: list) -> list:
    """Training, pre-training, loading and input checks against transformers: a row group per result file."""
    rows = []
    for record in records:
        if record.get("script") not in STEP_ROWS:
            raise TableError(f"{record['path']}: a {record.get('script')} file has no rows in this table")
        rows += STEP_ROWS[record["script"]](record)
    return markdown(["workload", "transformers", "this package", "speed-up (CPU s / wall s)"], rows)


def serve_table(records: list) -> list:
    """bench_serve: each server's useful tokens/s and p50 latency at each client count, its errors and the goals'
    ratios (medians of each round's), then the offline ceilings."""
    (record,) = records
    clients = record["settings"]["clients"]
    cells = {(row["server"], row.get("clients")): row for row in record["rows"]}
    goals = {goal["server"]: goal for goal in record.get("goals", [])}
    servers = list(dict.fromkeys(row["server"] for row in record["rows"] if "clients" in row))
    counts = " / ".join(map(str, clients))
    lines = []
    for server in servers:
        row = [cells[server, count] for count in clients]
        goal = goals.get(server)
        lines.append([server, " / ".join(f"{cell['tokens_s']:.0f}" for cell in row),
                      " / ".join(f"{cell['p50_ms']:.0f}" for cell in row), str(sum(cell["errors"] for cell in row)),
                      f"{goal['share_of_ceiling']:.0%}" if goal else "", ratio(goal["vs_fastapi_hf"]) if goal else "",
                      ratio(goal["p50_vs_one_call"]) if goal else ""])
    for row in record["rows"]:
        if "clients" not in row:
            lines.append([f"{row['server']} (offline pipeline, batches of 32)", f"{row['tokens_s']:.0f}",
                          f"one call on one text: {row['single_ms']:.0f}", "", "", "", ""])
    most = max(clients)
    return markdown(["server", f"useful tokens/s at {counts} clients", f"p50 ms at {counts} clients", "errors",
                     f"of the ceiling at {most} clients", f"x FastAPI + transformers at {most} clients",
                     "1-client p50 / one pipeline call"], lines)


KINDS = {"gpu": gpu_table, "cpu-peers": peers_table, "cpu-roofline": roofline_table, "cpu-steps": steps_table,
         "serve": serve_table}


# -- where the figures come from ------------------------------------------------------------------------
def machine_text(machine: dict) -> str:
    if machine.get("gpu"):
        return (f"{machine['gpu']}, torch {machine['torch']}, transformers {machine['transformers']}, "
                f"CUDA {machine['cuda']}, {machine['cpus']} CPUs")
    family = f" (family {machine['cpu_family']}, model {machine['cpu_model']})" if machine.get("cpu_family") else ""
    versions = ", ".join(f"{package} {machine[package]}" for package in ("torch", "transformers", "onnxruntime")
                         if machine.get(package))
    return (f"{machine['cpu']}{family}, {machine['cores']} cores, {machine['threads']} threads, "
            f"{' '.join(machine['flags']) or 'no AVX2'}; {versions}")


def source_text(record: dict) -> str:
    """A file's name, and the commit, date, command and load it records (older GPU files have none of these)."""
    parts = []
    if record.get("commit"):
        parts.append(f"commit {record['commit']}" + (" with uncommitted changes" if record.get("dirty") else ""))
    if record.get("date"):
        parts.append(record["date"][:10])
    if record.get("command"):
        parts.append(f"`{record['command']}`")
    if record.get("allocator"):
        parts.append(f"{record['allocator']} malloc")
    if record.get("load_average"):
        parts.append("load average " + " / ".join(f"{load:.1f}" for load in record["load_average"])
                     + " (1 / 5 / 15 min) as it ended")
    return f"`{os.path.basename(record['path'])}`" + (f" ({', '.join(parts)})" if parts else "")


def note(records: list) -> str:
    machines = list(dict.fromkeys(machine_text(record["machine"]) for record in records))
    sources = "; ".join(source_text(record) for record in records)
    text = f"Generated from benchmarks/results/ by tools/readme_tables.py. Machine: {' | '.join(machines)}. " \
           f"Files: {sources}."
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


# -- the README -----------------------------------------------------------------------------------------
def load(folder: str, path: str) -> dict:
    try:
        with open(os.path.join(folder, path), encoding="utf-8") as f:
            record = json.load(f)
    except OSError as e:
        raise TableError(f"{path}: {e.strerror}") from None
    record["path"] = path
    return record


def body(kind: str, paths: list, folder: str) -> str:
    """What lies between a table's markers: the table and the note naming its sources."""
    if kind not in KINDS:
        raise TableError(f"unknown table kind {kind!r} (known: {', '.join(KINDS)})")
    if not paths:
        raise TableError(f"table {kind!r} names no result files")
    records = [load(folder, path) for path in paths]
    try:
        lines = KINDS[kind](records)
    except (KeyError, ValueError, TypeError) as e:
        raise TableError(f"table {kind!r}: its files do not fit it ({type(e).__name__}: {e})") from None
    return "\n".join(lines) + "\n\n" + note(records) + "\n"


def same_run_kind(record: dict) -> tuple:
    return record.get("script"), record.get("variant"), record.get("machine", {}).get("cpu")


def newest(folder: str, path: str) -> str:
    """The newest result file of the same script, variant and CPU as `path` (itself if none is newer or it
    records no date, as the GPU runs before results carried one do not)."""
    record = load(folder, path)
    if not record.get("date"):
        return path
    best = record
    directory = os.path.dirname(path)
    for name in sorted(os.listdir(os.path.join(folder, directory))):
        if name.endswith(".json"):
            other = load(folder, os.path.join(directory, name))
            if same_run_kind(other) == same_run_kind(record) and other.get("date", "") > best["date"]:
                best = other
    return best["path"]


def latest(text: str, folder: str) -> str:
    """The README with every marker's files replaced by the newest of their kind."""
    def repoint(match):
        files = "".join(" " + newest(folder, path) for path in match["files"].split())
        return f"<!-- table: {match['kind']}{files} -->\n{match['body']}<!-- /table -->"

    return MARKER.sub(repoint, text)


def regenerate(text: str, folder: str) -> tuple:
    """(the README with every table rewritten, the names of the tables that changed)."""
    stale = []

    def rewrite(match):
        paths = match["files"].split()
        new = body(match["kind"], paths, folder)
        if new != match["body"]:
            stale.append(f"{match['kind']} ({', '.join(os.path.basename(p) for p in paths)})")
        return f"<!-- table: {match['kind']}{match['files']} -->\n{new}<!-- /table -->"

    return MARKER.sub(rewrite, text), stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table is stale")
    parser.add_argument("--latest", action="store_true", help="point each marker at the newest run of its kind")
    args = parser.parse_args(argv)
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    folder = os.path.dirname(os.path.abspath(args.readme))
    try:
        new, stale = regenerate(latest(text, folder) if args.latest else text, folder)
    except TableError as e:
        print(f"{args.readme}: {e}", file=sys.stderr)
        return 1
    if args.check:
        for name in stale:
            print(f"{args.readme}: table {name} differs from its result files: run python tools/readme_tables.py",
                  file=sys.stderr)
        return 1 if stale else 0
    if stale:
        with open(args.readme, "w", encoding="utf-8") as f:
            f.write(new)
    print(f"{args.readme}: {len(stale)} table(s) rewritten" + (f": {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
