"""The server's Prometheus metrics, in a registry of its own (several servers may live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    """Requests by route and status, their latency, the queue, batch sizes and tokens."""

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("serve_requests", "requests answered, by route and status", ["route", "status"],
                                registry=registry)
        self.latency = Histogram("serve_request_seconds", "time from request to response, by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("serve_requests_in_flight", "requests admitted and not yet answered",
                               registry=registry)
        self.queue = Gauge("serve_queue_features", "sequences waiting for the model", registry=registry)
        self.batch_size = Histogram("serve_batch_sequences", "sequences per forward", buckets=SIZE_BUCKETS,
                                    registry=registry)
        self.batch_tokens = Histogram("serve_batch_tokens", "padded tokens per forward (rows x longest)",
                                      buckets=TOKEN_BUCKETS, registry=registry)
        self.batch_latency = Histogram("serve_batch_seconds", "time of one forward", buckets=LATENCY_BUCKETS,
                                       registry=registry)
        self.tokens = Counter("serve_input_tokens", "tokens of the inputs that ran", registry=registry)
        self.dropped = Counter("serve_dropped_requests", "requests whose queued work was dropped (client gone or "
                               "timed out)", registry=registry)

    def batch(self, sequences: int, tokens: int, seconds: float) -> None:
        self.batch_size.observe(sequences)
        self.batch_tokens.observe(tokens)
        self.batch_latency.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
