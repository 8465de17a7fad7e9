"""`roberta-prelayernorm serve` under load, against its ceiling and against the server people write today.

On the same weights (a random sequence classifier saved by this package, loaded by both libraries) and the same
fixed mix of ragged texts, one text per request:

  ceiling      this package's offline pipeline on all the texts, in length-sorted batches (no HTTP)
  serve        `roberta-prelayernorm serve`, dynamic batching, driven over HTTP
  fastapi+hf   FastAPI + transformers' pipeline, one pipeline call per request (a plain `def` route, so FastAPI
               runs it in its thread pool), the usual wrapper

An asynchronous load generator keeps 1, 8 and 64 clients busy, each on a keep-alive connection, each cell
bounded in requests and seconds. It runs on the same machine, so it takes some of the CPU from both servers alike:
it speaks HTTP/1.1 over asyncio streams itself, about 0.05 ms per request (aiohttp took 0.25-0.5 ms, httpx
0.75-1.25 ms, several percent of a 25 ms request on two cores). Every server runs from the start. Each round
measures the ceilings and then every (clients, server) cell once, each after every server has gone idle, so that a
machine whose load changes weighs on all alike. A server's 1-client cell alternates blocks of 10 texts between the
package's pipeline calls at its precision (in this process) and the requests for the same texts, so that the two
latencies it compares meet the same machine (see singles). The table gives each figure's median over the rounds:
requests/s, useful tokens/s (the texts' tokens, no padding), p50/p95/p99 latency, errors. `--size base` for
BERT-base size; several `--precision` or `--batchers` values start one server each (the ceiling runs at each
precision). The script starts itself again on the allocator the server would choose (`--allocator`, default auto:
tcmalloc where the system has it), so the ceiling, the pipeline calls and both servers run on the same malloc.

    python benchmarks/bench_serve.py [--size small|base] [--clients 1 8 64] [--seconds 10] [--rounds 3]
                                     [--threads N] [--batchers N ...] [--precision fp32|bf16|int8 ...]
                                     [--allocator auto|tcmalloc|jemalloc|system]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from importlib import resources
from typing import Optional

import torch

from common import BASE, machine, write_results
from roberta_prelayernorm.allocator import CHOICES, in_use, restart_on

SPIN_OUT = 0.05  # seconds for a process's OpenMP threads to stop spinning after its last forward
SMALL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
HF_SERVER = textwrap.dedent("""
    import sys
    from fastapi import FastAPI
    from transformers import pipeline

    classify = pipeline("text-classification", model=sys.argv[1], device=-1)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict):
        return classify(body["inputs"], top_k=None)
""")


def build_model(folder: str, size: dict) -> None:
    """A random sequence classifier of `size` with a BPE tokenizer trained on the shipped corpus."""
    import roberta_prelayernorm as rp
    from roberta_prelayernorm.tokenizer import train_byte_level_bpe

    corpus = resources.files("roberta_prelayernorm") / "data" / "corpus.jsonl"
    texts = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()]
    tokenizer = train_byte_level_bpe(texts, vocab_size=8000)
    torch.manual_seed(0)
    config = rp.RobertaPreLayerNormConfig(vocab_size=len(tokenizer), max_position_embeddings=514, type_vocab_size=1,
                                          id2label={0: "NEGATIVE", 1: "POSITIVE"},
                                          label2id={"NEGATIVE": 0, "POSITIVE": 1}, **size)
    rp.RobertaPreLayerNormForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def text_mix(n: int, seed: int = 0) -> list[str]:
    """n texts of ragged, log-normally distributed lengths (about 4 to 120 words), cut from the task sets."""
    data = resources.files("roberta_prelayernorm") / "data" / "sentiment_train.jsonl"
    words = " ".join(json.loads(line)["text"] for line in data.read_text(encoding="utf-8").splitlines()).split()
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        length = int(min(120, max(4, math.exp(rng.gauss(3.0, 0.7)))))
        start = rng.randrange(len(words) - length)
        texts.append(" ".join(words[start:start + length]))
    return texts


def start(command: list[str], url: str, timeout: float = 120) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health"):
                return process
        except urllib.error.HTTPError as err:
            if err.code == 404:  # the wrapper has no /health
                return process
        except OSError:  # not listening yet
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited with {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[:4]} did not start in {timeout} s")


class Connection:
    """One keep-alive HTTP/1.1 connection posting JSON: the least client work per request (asyncio streams, no
    HTTP library), so that the load generator takes as little as it can of the cores it shares with the servers
    (about 0.05 ms per request, aiohttp 0.25-0.5 ms). Both servers answer with a Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int):
        self.reader, self.writer, self.host, self.port = reader, writer, host, port

    @classmethod
    async def open(cls, url: str) -> "Connection":
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)), host, int(port))

    async def reopen(self) -> None:
        """A new connection in place of this one (after a failed request its state is unknown)."""
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return int(lines[0].split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def cell_of(latencies: list[float], useful: int, errors: int, elapsed: float) -> dict:
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [math.nan] * 99
    return {"requests_s": len(latencies) / elapsed, "tokens_s": useful / elapsed, "p50_ms": q[49] * 1000,
            "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000, "errors": errors, "requests": len(latencies)}


async def send(connection: Connection, text: str) -> Optional[float]:
    """The seconds of one request for `text`; None if it failed (the connection is then opened anew)."""
    started = time.perf_counter()
    try:
        status, _ = await asyncio.wait_for(connection.post("/predict", {"inputs": text}), 120)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, StopIteration):
        status = None
    if status == 200:
        return time.perf_counter() - started
    await connection.reopen()
    return None


async def load(url: str, texts: list[str], tokens: dict, clients: int, max_requests: int, seconds: float) -> dict:
    """`clients` concurrent loops, each on its own connection posting the next text; bounded by max_requests and
    seconds."""
    latencies, errors, useful, next_text = [], 0, 0, 0
    deadline = time.perf_counter() + seconds

    async def client_loop(connection):
        nonlocal errors, useful, next_text
        while len(latencies) + errors < max_requests and time.perf_counter() < deadline:
            text = texts[next_text % len(texts)]
            next_text += 1
            took = await send(connection, text)
            if took is None:
                errors += 1
            else:
                latencies.append(took)
                useful += tokens[text]

    connections = [await Connection.open(url) for _ in range(clients)]
    # Each connection used once, all at once: one by one, the first ones would sit idle past uvicorn's keep-alive
    # timeout (5 s) while a slow server answers the others, and be closed by it.
    await asyncio.gather(*[send(connection, texts[0]) for connection in connections])
    started = time.perf_counter()
    await asyncio.gather(*[client_loop(connection) for connection in connections])
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return cell_of(latencies, useful, errors, elapsed)


async def singles(url: str, texts: list[str], tokens: dict, classify, seconds: float, block: int = 10) -> dict:
    """One client sending `texts` one by one, in blocks of `block` that alternate with the package's pipeline
    calls on the same texts in this process (interleaved, so that both meet the same machine), bounded by the
    texts and seconds; the cell's figures come from the requests' times, `one_call_ms` is the median pipeline call.
    Each block starts once the other side's OpenMP threads have stopped spinning (they spin about 10 ms after a
    forward here) rather than text by text, which had each side's forwards share the cores with the other's
    spinning threads: both ran up to twice as slow."""
    connection, latencies, calls, errors, useful = await Connection.open(url), [], [], 0, 0
    await send(connection, texts[0])
    forwards = forward_seconds(url)
    deadline = time.perf_counter() + seconds
    for start in range(0, len(texts), block):
        if time.perf_counter() > deadline:
            break
        time.sleep(SPIN_OUT)
        for text in texts[start:start + block]:
            started = time.perf_counter()
            classify(text, top_k=None)
            calls.append(time.perf_counter() - started)
        time.sleep(SPIN_OUT)
        for text in texts[start:start + block]:
            took = await send(connection, text)
            if took is None:
                errors += 1
            else:
                latencies.append(took)
                useful += tokens[text]
    connection.close()
    total, count = (now - before for now, before in zip(forward_seconds(url), forwards))
    # Means, to split a request's time: the server's forwards (its /metrics) against the pipeline's calls.
    return {**cell_of(latencies, useful, errors, sum(latencies)), "one_call_ms": statistics.median(calls) * 1000,
            "forward_mean_ms": total / count * 1000 if count else math.nan,
            "one_call_mean_ms": statistics.mean(calls) * 1000, "request_mean_ms": statistics.mean(latencies) * 1000}


def forward_seconds(url: str) -> tuple[float, float]:
    """(seconds, count) of the forwards a serve server has run (its serve_batch_seconds histogram)."""
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    value = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
             if line.startswith("serve_batch_seconds_")}
    return value["serve_batch_seconds_sum"], value["serve_batch_seconds_count"]


def ceiling(classify, texts: list[str], tokens: dict) -> dict:
    """The package's offline pipeline on the same texts, all at once in length-sorted batches."""
    started = time.perf_counter()
    classify(texts, top_k=None)
    return {"tokens_s": sum(tokens[t] for t in texts) / (time.perf_counter() - started)}


def offline_pipeline(folder: str, precision: str):
    """The package's pipeline at `precision`, warmed up (as the server loads its model)."""
    import roberta_prelayernorm as rp
    from roberta_prelayernorm.pipelines import pipeline

    model = rp.AutoModelForSequenceClassification.from_pretrained(
        folder, torch_dtype=torch.bfloat16 if precision == "bf16" else None,
        quantize="int8" if precision == "int8" else None).eval()
    classify = pipeline("text-classification", model=model, tokenizer=folder, batch_size=32)
    classify(["warm up"] * 8, top_k=None)
    return classify


def servers_to_run(args, folder: str) -> dict:
    """name -> (command, url): serve at each --precision and --batchers, and the FastAPI + transformers server."""
    servers, port = {}, 8781
    for precision in args.precision:
        for batchers in args.batchers:
            name = f"serve {precision} b{batchers}"
            servers[name] = ([sys.executable, "-m", "roberta_prelayernorm", "serve", "--model", folder, "--port",
                              str(port), "--batchers", str(batchers), "--precision", precision, "--allocator",
                              in_use()],
                             f"http://127.0.0.1:{port}")
            port += 1
    if not args.skip_transformers:
        with open(os.path.join(folder, "hf_server.py"), "w") as f:
            f.write(HF_SERVER)
        servers["fastapi+hf"] = (hf_command(folder), "http://127.0.0.1:8780")
    return servers


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, all its threads; 0.0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(processes: list, quiet: float = 0.5, timeout: float = 60) -> None:
    """Wait until no server uses the CPU: the load generator stops at its bounds, but a server may still be running
    requests it had accepted (the FastAPI wrapper's thread pool finishes every call it started), which would weigh
    on the next cell."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [cpu_seconds(p.pid) for p in processes]
        time.sleep(quiet)
        if all(cpu_seconds(p.pid) - b < 0.05 * quiet for p, b in zip(processes, before)):
            return


def median_cell(cells: list[dict]) -> dict:
    """Each figure's median over the rounds; errors summed."""
    merged = {key: statistics.median(cell[key] for cell in cells) for key in cells[0]}
    if "errors" in merged:
        merged["errors"] = sum(cell["errors"] for cell in cells)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit of each cell (default 10)")
    parser.add_argument("--requests", type=int, default=2000, help="request limit of each cell (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each measuring every cell once, interleaved; "
                        "the table gives medians (default 3)")
    parser.add_argument("--texts", type=int, default=1000, help="texts in the mix (default 1000)")
    parser.add_argument("--ceiling-texts", type=int, default=256, help="texts of each ceiling run (default 256)")
    parser.add_argument("--singles", type=int, default=100, help="texts sent one by one, to the pipeline and by one "
                        "client, for the 1-client latency (default 100)")
    parser.add_argument("--threads", type=int, help="torch threads of each server and of the ceiling (default: "
                        "torch's)")
    parser.add_argument("--batchers", type=int, nargs="+", default=[2], help="serve --batchers, each a server "
                        "(default 2, the server's)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16", "int8"),
                        help="serve --precision and the ceiling's, each a server (default fp32)")
    parser.add_argument("--skip-transformers", action="store_true", help="leave out the FastAPI + transformers server")
    parser.add_argument("--allocator", choices=CHOICES, default="auto", help="malloc of this process and of every "
                        "server (serve --allocator; default auto, the server's default)")
    args = parser.parse_args()
    restart_on(args.allocator, sys.argv)  # the ceiling, the pipeline calls and all servers run on one allocator
    if args.threads:  # the servers inherit it; the ceiling runs here
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)

    import roberta_prelayernorm as rp

    with tempfile.TemporaryDirectory() as folder:
        build_model(folder, SMALL if args.size == "small" else BASE)
        texts = text_mix(args.texts)
        tokenizer = rp.AutoTokenizer.from_pretrained(folder)
        tokens = {text: len(ids) for text, ids in zip(texts, tokenizer(texts)["input_ids"])}
        print(f"{machine()}; {in_use()} malloc; {args.size} model; {len(texts)} texts of {min(tokens.values())}-"
              f"{max(tokens.values())} tokens (mean {statistics.mean(tokens.values()):.0f}); one text per request; "
              f"medians of {args.rounds} interleaved rounds", flush=True)
        pipes = {precision: offline_pipeline(folder, precision) for precision in args.precision}
        servers = servers_to_run(args, folder)
        pipes_of = {name: pipes[name.split()[1]] for name in servers if name.startswith("serve")}
        processes = [start(command, url) for command, url in servers.values()]
        engines = int8_engines(servers)
        cells: dict = collections.defaultdict(list)
        loads = []
        try:
            for _ in range(args.rounds):
                settle(processes)
                loads.append(os.getloadavg()[0])
                for precision, classify in pipes.items():
                    cell = ceiling(classify, texts[:args.ceiling_texts], tokens)
                    cells["ceiling", precision].append(cell)
                    print(f"  ceiling {precision}: {cell['tokens_s']:.0f} tokens/s", flush=True)
                for clients in args.clients:
                    for name, (_, url) in servers.items():
                        limit = args.singles if clients == 1 else args.requests  # 1 client: the singles' texts
                        settle(processes)
                        if clients == 1 and name in pipes_of:
                            cell = asyncio.run(singles(url, texts[:limit], tokens, pipes_of[name], args.seconds))
                        else:
                            cell = asyncio.run(load(url, texts, tokens, clients, limit, args.seconds))
                        cells[name, clients].append(cell)
                        single = (f" (one pipeline call {cell['one_call_ms']:.1f} ms; means: request "
                                  f"{cell['request_mean_ms']:.1f}, server forward {cell['forward_mean_ms']:.1f}, "
                                  f"pipeline call {cell['one_call_mean_ms']:.1f} ms)" if "one_call_ms" in cell else "")
                        print(f"  {name} at {clients} clients: {cell['tokens_s']:.0f} tokens/s, p50 "
                              f"{cell['p50_ms']:.1f} ms{single}, {cell['errors']} errors", flush=True)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(60)
        results = {key: median_cell(value) for key, value in cells.items()}
        for precision in args.precision:  # every one-call measurement at that precision
            results["ceiling", precision]["single_ms"] = statistics.median(
                cell["one_call_ms"] for name in pipes_of if name.split()[1] == precision
                for cell in cells[name, 1]) if args.singles and 1 in args.clients else math.nan
        report(args, servers, results, loads)
        goals = report_ratios(args, servers, cells)
    rows = [{"server": name, "clients": clients, **cell} for (name, clients), cell in results.items()
            if name != "ceiling"]
    rows += [{"server": f"ceiling {precision}", **results["ceiling", precision]} for precision in args.precision]
    variant = args.size if args.allocator == "auto" else f"{args.size}_{args.allocator}"
    write_results("bench_serve", rows, vars(args), variant=variant, goals=goals, round_loads=loads,
                  int8_engines=engines, allocator=in_use())


def int8_engines(servers: dict) -> dict:
    """The int8 engine each int8 server measured fastest (its /info), and this process's pipeline's: a
    one-time measurement per process, and engines within a few percent of each other may differ."""
    from roberta_prelayernorm.quantization import fastest_int8_engine

    engines = {name: json.load(urllib.request.urlopen(url + "/info"))["int8_engine"]
               for name, (_, url) in servers.items() if name.startswith("serve int8")}
    if engines:
        engines["ceiling int8"] = fastest_int8_engine()
        print(f"int8 engines: {engines}", flush=True)
    return engines


def report(args, servers: dict, results: dict, loads: list[float]) -> None:
    print(f"load average (1 min) at each round's start: {', '.join(f'{x:.1f}' for x in loads)}")
    for precision in args.precision:
        top = results["ceiling", precision]
        print(f"ceiling {precision} (offline pipeline, batches of 32): {top['tokens_s']:.0f} tokens/s; one call on one "
              f"text: p50 {top['single_ms']:.1f} ms")
    print(f"\n{'server':<18}{'clients':>8}{'req/s':>9}{'tokens/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}")
    for name in servers:
        for clients in args.clients:
            cell = results[name, clients]
            print(f"{name:<18}{clients:>8}{cell['requests_s']:>9.1f}{cell['tokens_s']:>10.0f}{cell['p50_ms']:>9.1f}"
                  f"{cell['p95_ms']:>9.1f}{cell['p99_ms']:>9.1f}{cell['errors']:>8}")


def report_ratios(args, servers: dict, cells: dict) -> list[dict]:
    """The goals' ratios within each round (a busy machine's load changes between rounds), and their medians (one
    dict per serve server)."""
    most, goals = max(args.clients), []
    for name in (name for name in servers if name.startswith("serve")):
        precision = name.split()[1]
        missing = [None] * args.rounds
        rounds = [(ours["tokens_s"] / top["tokens_s"], ours["tokens_s"] / hf["tokens_s"] if hf else math.nan,
                   single["p50_ms"] / single["one_call_ms"] if single else math.nan)
                  for ours, top, hf, single in zip(
                      cells[name, most], cells["ceiling", precision], cells.get(("fastapi+hf", most)) or missing,
                      cells.get((name, 1)) or missing)]
        each = "; ".join(f"{c:.0%}, {h:.1f}x, {p:.2f}x" for c, h, p in rounds)
        medians = [statistics.median(r[i] for r in rounds) for i in range(3)]
        print(f"{name}, each round (of the ceiling at {most} clients, x FastAPI + transformers, 1-client p50 / one "
              f"call): {each}; medians {medians[0]:.0%}, {medians[1]:.1f}x, {medians[2]:.2f}x")
        goals.append({"server": name, "clients": most, "share_of_ceiling": medians[0], "vs_fastapi_hf": medians[1],
                      "p50_vs_one_call": medians[2]})
    return goals


def hf_command(folder: str) -> list[str]:
    """The FastAPI + transformers server: uvicorn on the wrapper script, which reads the model folder from argv."""
    return [sys.executable, "-c", "import sys, uvicorn; sys.argv = ['hf_server', sys.argv[1]]; "
            "sys.path.insert(0, sys.argv[1]); import hf_server; "
            "uvicorn.run(hf_server.app, host='127.0.0.1', port=8780, log_level='warning')", folder]


if __name__ == "__main__":
    main()
