"""`roberta-prelayernorm serve`: the flags, the checks at start (a bad one exits 2 before anything binds), and
uvicorn running until SIGTERM/SIGINT (then: stop accepting, finish the requests in flight, exit 0)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from ..allocator import CHOICES, restart_on
from ..errors import SettingError
from ..flags import positive_int

API_KEY_VARIABLE = "ROBERTA_PRELAYERNORM_API_KEY"
# oneDNN keeps one primitive per GEMM shape (tokens, threads) in an LRU cache of 1024 by default. A server's ragged
# batches fill it and evict the shapes of lone requests, and a lone int8 forward that has to build its primitives
# again runs slower (README, Serving: oneDNN primitives). oneDNN reads the setting when it first builds a
# primitive: set before the model loads.
PRIMITIVE_CACHE_VARIABLE, PRIMITIVE_CACHE_CAPACITY = "ONEDNN_PRIMITIVE_CACHE_CAPACITY", 4096
EXAMPLE = """examples:
  roberta-prelayernorm serve --model out/sst2/best
  curl -s localhost:8080/predict -H 'Content-Type: application/json' -d '{"inputs": "What a great day"}'
  ROBERTA_PRELAYERNORM_API_KEY=secret roberta-prelayernorm serve --model my-ner --host 0.0.0.0 --precision int8"""


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP (dynamic batching, a page to try it at /)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE,
        description="Serve a model of any task over HTTP: POST /predict (sequence classification), /tag, /answer, "
                    "/choose, /fill-mask, /embed, /v1/embeddings, /tokenize; GET /health, /info, /metrics "
                    "(Prometheus), /docs (OpenAPI) and a page at /. Requests are batched by tokens on threads "
                    "beside the event loop (--batchers). Needs the serve extra: "
                    "pip install 'roberta-prelayernorm[serve]'.")
    parser.add_argument("--model", required=True, help="model folder or hub id (with its tokenizer)")
    parser.add_argument("--task", help="the pipeline task (default: from the config's architecture)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, or a GPU index")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                        help="weights and compute: fp32 (default), bf16, or int8 (dynamic quantization, CPU only)")
    parser.add_argument("--max-batch-tokens", type=positive_int, default=16384,
                        help="tokens taken from the queue at a time (default 16384); at least the longest input "
                             "allowed")
    parser.add_argument("--max-batch-size", type=positive_int, default=32,
                        help="sequences per forward: what is taken runs sorted by length in forwards of this many, "
                             "each padded to its own longest, as the offline pipelines do (default 32)")
    parser.add_argument("--batchers", type=positive_int, default=2,
                        help="forwards run at once, each on its own thread with torch's threads / N (a lone request: "
                             "all of them) (default 2: on a busy CPU, two forwards beat one on all the cores)")
    parser.add_argument("--max-concurrent-requests", type=positive_int, default=512,
                        help="requests in flight; more are answered 429 with Retry-After (default 512)")
    parser.add_argument("--max-inputs-per-request", type=positive_int, default=256,
                        help="inputs in one request; more are answered 413 (default 256)")
    parser.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                        help="request body size; larger is answered 413 (default 1 MiB)")
    parser.add_argument("--max-input-length", type=positive_int,
                        help="tokens per input (default: the model's); longer inputs are 422 unless truncated")
    parser.add_argument("--truncate", action=argparse.BooleanOptionalAction, default=False,
                        help='cut long inputs of /predict and /embed when a request does not say "truncate" '
                             "(default: no, a 422)")
    parser.add_argument("--request-timeout", type=positive_float, default=60.0,
                        help="seconds a request may wait for its answer; its queued work is then dropped and it "
                             "gets 503 (default 60)")
    parser.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' on every route but /health and the "
                                          f"page (also: {API_KEY_VARIABLE}; the variable keeps it out of ps)")
    parser.add_argument("--cors-origin", action="append", default=[],
                        help="allow browsers on this origin to call the API (repeat for each; default: none)")
    parser.add_argument("--grace-period", type=positive_float, default=30.0,
                        help="seconds to finish the requests in flight after SIGTERM/SIGINT (default 30)")
    parser.add_argument("--allocator", choices=CHOICES, default="auto",
                        help="malloc of the server process: auto (default: tcmalloc, else jemalloc, where the system "
                             "has one; lone int8 requests ran 1.3x faster than on glibc's), tcmalloc, jemalloc, or "
                             "system; Linux only")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per request")
    parser.set_defaults(func=run)


def run(args) -> int:
    restart_on(args.allocator, args.program)  # returns once this process runs on the allocator chosen
    os.environ.setdefault(PRIMITIVE_CACHE_VARIABLE, str(PRIMITIVE_CACHE_CAPACITY))
    try:
        import fastapi  # noqa: F401 - only to say what is missing
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise SettingError(f"serve needs {err.name}: pip install 'roberta-prelayernorm[serve]'") from None
    from .app import build_app
    from .engine import Engine, Limits

    setup_logging(args.log_json)
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    limits = Limits(max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size,
                    batchers=args.batchers,
                    max_concurrent_requests=args.max_concurrent_requests,
                    max_inputs_per_request=args.max_inputs_per_request, max_body_bytes=args.max_body_bytes,
                    max_input_length=args.max_input_length, truncate=args.truncate,
                    request_timeout=args.request_timeout)
    device = int(args.device) if args.device is not None and args.device.lstrip("-").isdigit() else args.device
    engine = Engine(args.model, task=args.task, device=device, precision=args.precision, limits=limits)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    app = build_app(engine, api_key=api_key, cors_origins=args.cors_origin, log_json=args.log_json)
    print(f"serving the {engine.task or 'embedding'} model {args.model} on http://{args.host}:{port} "
          f"({engine.precision}, {engine.device}, malloc: {app.state.allocator})"
          f"{'; API key required' if api_key else ''}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, access_log=False, timeout_graceful_shutdown=args.grace_period,
                            log_level="info", lifespan="on")
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully, killing the process by it;
    # with these handlers under its own, that re-raise does nothing and the command exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a taken port is a start-up error (exit 2), not a log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it Nagle's
    # algorithm and delayed ACKs hold every response back by ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SettingError(f"--host {host} --port {port}: cannot bind ({err.strerror})") from None
    sock.listen(2048)
    return sock


def setup_logging(log_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if log_json else "%(asctime)s %(message)s"))
    logger = logging.getLogger("roberta_prelayernorm.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
