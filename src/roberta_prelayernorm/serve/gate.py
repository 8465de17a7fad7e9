"""The ASGI layer around the app: a request id on every response, the body-size limit, the API key, one log line
and the metrics of every request, and an internal error turned into a 500 that names the request id (the
traceback goes to the log only)."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid

from starlette.responses import JSONResponse

logger = logging.getLogger("roberta_prelayernorm.serve")

# Served without the API key: they hold no model output (the page asks for the key itself).
OPEN_PATHS = frozenset({"/health", "/", "/page.js", "/docs", "/openapi.json"})


class BodyTooLarge(Exception):
    pass


def error_response(status: int, kind: str, message: str, headers=None, **extra) -> JSONResponse:
    """The JSON body of every error: {"error": one line, "error_type": kind, ...}."""
    return JSONResponse({"error": message, "error_type": kind, **extra}, status_code=status, headers=headers)


class Gate:
    """ASGI middleware: see the module docstring. `routes` are the paths metrics are labelled with (others:
    "other", so random paths cannot grow the metrics without bound)."""

    def __init__(self, app, metrics, routes, api_key=None, max_body_bytes: int = 1 << 20, log_json: bool = False):
        self.app, self.metrics, self.routes, self.log_json = app, metrics, set(routes), log_json
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, request_id = time.perf_counter(), uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, tokens=0)
        status = []

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, self.limited(receive), send_with_id)
        except BodyTooLarge:
            if not status:
                await self.too_large()(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - an internal error: the traceback to the log, the id to the client
            logger.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            if not status:
                await error_response(500, "internal", f"internal error; the server's log has the details under "
                                     f"request id {request_id}", request_id=request_id)(scope, receive, send_with_id)
        finally:
            self.record(scope, status[0] if status else 499, state["tokens"], time.perf_counter() - started)

    def refusal(self, scope):
        """The response refusing a request before it runs (wrong API key, body too large), else None."""
        if self.api_key is not None and scope["path"] not in OPEN_PATHS and scope["method"] != "OPTIONS":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.api_key):  # constant time: no timing oracle
                what = "no Authorization header" if not given else "a wrong API key"
                return error_response(401, "unauthorized", f"{what}: send 'Authorization: Bearer KEY' with the "
                                      "server's --api-key", headers={"WWW-Authenticate": "Bearer"})
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self.too_large(int(length))
        return None

    def too_large(self, size=None):
        size = f"{size} bytes" if size is not None else "larger than that"
        return error_response(413, "payload_too_large", f"the request body is {size}; the server takes at most "
                              f"{self.max_body_bytes} bytes (--max-body-bytes)")

    def limited(self, receive):
        """`receive` that stops a body (one without Content-Length too) as soon as it passes the limit."""
        seen = 0

        async def receive_limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise BodyTooLarge
            return message
        return receive_limited

    def record(self, scope, status: int, tokens: int, seconds: float) -> None:
        route = scope["path"] if scope["path"] in self.routes else "other"
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        fields = {"method": scope["method"], "route": scope["path"], "status": status, "tokens": tokens,
                  "ms": round(seconds * 1000, 1), "request_id": scope["state"]["request_id"]}
        if self.log_json:
            logger.info(json.dumps(fields))
        else:
            logger.info("%(method)s %(route)s %(status)s %(tokens)s tokens %(ms).1f ms id=%(request_id)s", fields)
