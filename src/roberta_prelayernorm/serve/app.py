"""The FastAPI app: each route turns its body into the pipeline's inputs and options, and its answer is the
pipeline's own (same tokenization, same postprocessing, same JSON as the task commands)."""

from __future__ import annotations

import asyncio
import base64
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .engine import TASK_ROUTES, Batcher, Engine, Job
from .gate import Gate, error_response
from .metrics import Metrics
from .schemas import (AnswerRequest, ChooseRequest, EmbedRequest, FillMaskRequest, OpenAIEmbeddingRequest,
                      PredictRequest, TagRequest, TokenizeRequest)

INLINE_BODY_BYTES = 16384  # bodies up to this size are prepared on the event loop, larger ones in a thread
# pydantic's names of union members in an error's location: not fields, left out of the messages.
TYPE_TAGS = ("str", "int", "bool", "float")


class ServeError(Exception):
    """A refused request: its status, error type, one-line message and headers."""

    def __init__(self, status: int, kind: str, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def validation_message(err: dict) -> str:
    """One line from pydantic's first error: the field, what is wrong, the value."""
    path = [str(part) for part in err["loc"][1:]
            if not (isinstance(part, str) and (part in TYPE_TAGS or part[:1].isupper() or "[" in part))]
    field = ".".join(path) or "body"
    if err["type"] == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})"
    if err["type"] == "missing":
        return f"{field}: required" if path else "body: required (a JSON object)"
    if err["type"] == "extra_forbidden":
        return f"{field}: unknown field"
    message = err["msg"].removeprefix("Value error, ")
    return f"{field}: {message}" + ("" if "got" in message else f", got {str(err.get('input'))[:80]!r}")


def prepare(pipe, items: list, call_options: dict):
    """(options, features of each input), checked by the pipeline itself; a bad one is a 422 naming it."""
    try:
        options = pipe.check_options({**pipe.raw_options, **call_options})
    except (ValueError, TypeError) as err:
        raise ServeError(422, "validation", one_line(err)) from None
    features = []
    for i, item in enumerate(items):
        try:
            features.append(pipe.features(item, options))
        except ValueError as err:
            raise ServeError(422, "validation", f"inputs{f'[{i}]' if len(items) > 1 else ''}: {one_line(err)}") \
                from None
    return options, features


async def disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read by then: what comes next is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def build_app(engine: Engine, api_key: Optional[str] = None, cors_origins=(), log_json: bool = False) -> FastAPI:
    """The server's ASGI app for a loaded engine; the batcher thread runs from the app's start-up to its end."""
    from .. import __version__
    from ..allocator import in_use

    limits, metrics, allocator = engine.limits, Metrics(), in_use()
    batcher = Batcher(engine, on_batch=metrics.batch, on_drop=lambda job: metrics.dropped.inc())
    metrics.queue.set_function(lambda: batcher.queued_features)
    in_flight = [0]

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await run_in_threadpool(batcher.stop)

    app = FastAPI(title="roberta-prelayernorm serve", version=__version__, lifespan=lifespan,
                  description=f"{engine.task or 'embedding'} model {engine.name}")
    app.state.engine, app.state.batcher, app.state.metrics, app.state.allocator = engine, batcher, metrics, allocator

    @app.exception_handler(ServeError)
    async def serve_error(request, err: ServeError):
        return error_response(err.status, err.kind, str(err), headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError):
        return error_response(422, "validation", validation_message(err.errors()[0]))

    @contextmanager
    def admitted():
        """Counts a request in flight while its work runs; past --max-concurrent-requests it is a 429 instead."""
        if in_flight[0] >= limits.max_concurrent_requests:
            raise ServeError(429, "overloaded", f"the server is at its limit of {limits.max_concurrent_requests} "
                             "requests in flight (--max-concurrent-requests); retry later", {"Retry-After": "1"})
        in_flight[0] += 1
        metrics.in_flight.inc()
        try:
            yield
        finally:
            in_flight[0] -= 1
            metrics.in_flight.dec()

    async def run(request: Request, name: str, items: list, single: bool, options: dict):
        """The pipeline `name`'s answer for `items`, run by the batcher: admission, preparing, waiting."""
        pipe = engine.pipes.get(name)
        if pipe is None:
            raise ServeError(404, "not_found", f"{request.url.path} needs a {name} model; this server serves "
                             f"{engine.task or 'a model without a task head'} (GET /info)")
        if len(items) > limits.max_inputs_per_request:
            raise ServeError(413, "payload_too_large", f"inputs holds {len(items)} items; the server takes at most "
                             f"{limits.max_inputs_per_request} per request (--max-inputs-per-request)")
        if not batcher.ready:
            raise ServeError(503, "loading", "the model is warming up; retry in a second", {"Retry-After": "1"})
        with admitted():
            # A small body is tokenized right here (well under a millisecond); a thread hop would cost more.
            if int(request.headers.get("content-length") or INLINE_BODY_BYTES + 1) <= INLINE_BODY_BYTES:
                options, features = prepare(pipe, items, options)
            else:
                options, features = await run_in_threadpool(prepare, pipe, items, options)
            loop = asyncio.get_running_loop()
            future = loop.create_future()

            def settle(result, error):
                if not future.done():
                    future.set_exception(error) if error is not None else future.set_result(result)

            job = Job(pipe, items, features, options, single,
                      lambda *answer: loop.call_soon_threadsafe(settle, *answer))
            request.state.tokens = job.tokens
            batcher.submit(job)
            gone = asyncio.ensure_future(disconnected(request))
            try:
                await asyncio.wait({future, gone}, timeout=limits.request_timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
            if future.done():
                metrics.tokens.inc(job.tokens)
                return future.result()
            batcher.cancel(job)
            if gone.done() and not gone.cancelled():
                return None  # the client has gone: nobody reads an answer
            raise ServeError(503, "timeout", f"not answered within {limits.request_timeout:g} s (--request-timeout): "
                             "the server is busy; retry later", {"Retry-After": "1"})

    def answer(result) -> Response:
        # JSONResponse straight away: FastAPI's encoder would walk every float of the result again.
        return Response(status_code=499) if result is None else JSONResponse(result)

    def default_truncate(truncate: Optional[bool]) -> Optional[bool]:
        return True if (limits.truncate if truncate is None else truncate) else None

    @app.post("/predict", summary="classify texts or text pairs (text-embeddings-inference's /predict)")
    async def predict(body: PredictRequest, request: Request):
        inputs = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        items = [item if isinstance(item, str) else {"text": item[0], "text_pair": item[1]} for item in inputs]
        options = {"top_k": None, "function_to_apply": "none" if body.raw_scores else None,
                   "truncation": default_truncate(body.truncate)}
        return answer(await run(request, "text-classification", items, isinstance(body.inputs, str), options))

    @app.post("/tag", summary="find the entities in texts")
    async def tag(body: TagRequest, request: Request):
        # As the tag command: long texts are split into windows unless the strategy is "none".
        stride = body.stride if body.stride is not None or body.aggregation_strategy == "none" else 0
        options = {"aggregation_strategy": body.aggregation_strategy, "ignore_labels": body.ignore_labels,
                   "stride": stride}
        items = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        return answer(await run(request, "token-classification", items, isinstance(body.inputs, str), options))

    @app.post("/answer", summary="find the answer to a question in its context")
    async def answer_question(body: AnswerRequest, request: Request):
        items = [item.model_dump() for item in (body.inputs if isinstance(body.inputs, list) else [body.inputs])]
        options = body.model_dump(exclude={"inputs"})
        return answer(await run(request, "question-answering", items, not isinstance(body.inputs, list), options))

    @app.post("/choose", summary="rank the choices of a prompt")
    async def choose(body: ChooseRequest, request: Request):
        items = [item.model_dump() for item in (body.inputs if isinstance(body.inputs, list) else [body.inputs])]
        options = {"top_k": body.top_k, "truncation": True}  # as the choose command
        return answer(await run(request, "multiple-choice", items, not isinstance(body.inputs, list), options))

    @app.post("/fill-mask", summary="the likeliest tokens for each <mask>")
    async def fill_mask(body: FillMaskRequest, request: Request):
        items = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        options = {"top_k": body.top_k, "targets": body.targets}
        return answer(await run(request, "fill-mask", items, isinstance(body.inputs, str), options))

    @app.post("/embed", summary="pooled hidden states, one vector per text (text-embeddings-inference's /embed)")
    async def embed(body: EmbedRequest, request: Request):
        items = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        options = {"pooling": body.pooling, "normalize": body.normalize, "truncation": default_truncate(body.truncate)}
        return answer(await run(request, "embed", items, False, options))

    @app.post("/v1/embeddings", summary="OpenAI's embeddings API (cls pooling, normalized)")
    async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request):
        items = body.input if isinstance(body.input, list) else [body.input]
        options = {"pooling": "cls", "normalize": True, "truncation": default_truncate(None)}
        vectors = await run(request, "embed", items, False, options)
        if vectors is None:
            return answer(None)
        if body.encoding_format == "base64":  # little-endian float32, as OpenAI's clients decode it
            import numpy as np

            vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
        tokens = request.state.tokens
        return JSONResponse({"object": "list", "model": body.model or engine.name,
                             "data": [{"object": "embedding", "index": i, "embedding": v}
                                      for i, v in enumerate(vectors)],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/tokenize", summary="the tokens of texts, with their character spans")
    async def tokenize(body: TokenizeRequest, request: Request):
        texts = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        if len(texts) > limits.max_inputs_per_request:
            raise ServeError(413, "payload_too_large", f"inputs holds {len(texts)} items; the server takes at most "
                             f"{limits.max_inputs_per_request} per request (--max-inputs-per-request)")
        with admitted():  # tokenizing a large body takes a thread of the pool: it counts like a model request
            result = await run_in_threadpool(tokens_of, engine.tokenizer, texts, body.add_special_tokens)
        request.state.tokens = sum(map(len, result))
        return JSONResponse(result)

    @app.get("/health", summary="200 once the model is loaded and warmed up, else 503")
    async def health():
        return JSONResponse({"status": "ok" if batcher.ready else "loading"}, status_code=200 if batcher.ready else 503)

    @app.get("/info", summary="the model, its task and labels, the limits, precision and device")
    async def info():
        return JSONResponse({
            "model": engine.name, "task": engine.task, "route": TASK_ROUTES.get(engine.task), "labels": engine.labels,
            "mask_token": engine.tokenizer.mask_token, "precision": engine.precision, "device": str(engine.device),
            "int8_engine": engine.int8_engine, "allocator": allocator,
            "max_input_length": engine.max_input_length, "max_batch_tokens": limits.max_batch_tokens,
            "max_batch_size": limits.max_batch_size, "batchers": limits.batchers,
            "max_concurrent_requests": limits.max_concurrent_requests, "truncate": limits.truncate,
            "max_inputs_per_request": limits.max_inputs_per_request, "max_body_bytes": limits.max_body_bytes,
            "request_timeout": limits.request_timeout, "version": __version__})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    static = resources.files(__package__) / "static"

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(static.joinpath("index.html").read_text(encoding="utf-8"))

    @app.get("/page.js", include_in_schema=False)
    async def page_script():
        return Response(static.joinpath("page.js").read_text(encoding="utf-8"), media_type="text/javascript")

    routes = [route.path for route in app.routes]
    app.add_middleware(Gate, metrics=metrics, routes=routes, api_key=api_key, max_body_bytes=limits.max_body_bytes,
                       log_json=log_json)
    if cors_origins:  # outermost: preflight requests are answered before the API key is asked for
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def tokens_of(tokenizer, texts: list, add_special_tokens: bool) -> list:
    """Each text's tokens: id, token, the text it covers (start, stop in characters), whether it is special."""
    encoding = tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                         return_special_tokens_mask=True)
    result = []
    for text, ids, offsets, special in zip(texts, encoding["input_ids"], encoding["offset_mapping"],
                                           encoding["special_tokens_mask"]):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        result.append([{"id": i, "token": token, "text": token if s else text[start:stop], "special": bool(s),
                        "start": start, "stop": stop}
                       for i, token, (start, stop), s in zip(ids, tokens, offsets, special)])
    return result
