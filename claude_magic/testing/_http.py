"""The fake Messages API server's HTTP side: one handler that reads a request (plain or
chunked body, API key from ``x-api-key`` or a bearer token), records it, and answers with JSON
or server-sent events in the API's formats (:mod:`.wire`), cut short when the script says so.
The script, the prompt cache and the recorded requests live in
:class:`~claude_magic.testing.fake_server.FakeMessagesServer`.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .prompt_cache import RequestRefused
from .wire import (
    STATUS_OF_TYPE,
    Failure,
    RecordedRequest,
    Reply,
    bad_signature,
    cut_here,
    error_body,
    events_of,
    input_tokens_of,
    message_of,
)

if TYPE_CHECKING:
    from .fake_server import FakeMessagesServer


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests for the :class:`FakeMessagesServer` it serves."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeMessagesServer/1.0"

    @property
    def fake(self) -> FakeMessagesServer:
        return self.server.fake  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must not wait for Nagle's algorithm.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and notebooks do not want an access log on stderr."""

    # --- request parsing ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> RecordedRequest:
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        key, scheme = self.headers.get("x-api-key"), None
        if key:
            scheme = "x-api-key"
        else:
            auth = self.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                key, scheme = auth[7:].strip(), "bearer"
        headers = {k.lower(): v for k, v in self.headers.items()}
        for secret in ("x-api-key", "authorization"):
            if secret in headers:
                headers[secret] = "<redacted>"
        parts = urlsplit(self.path)
        request = RecordedRequest(self.command, parts.path.rstrip("/") or "/",
                                  parse_qs(parts.query), headers, body, scheme, key or None)
        self.fake._record(request)
        return request

    # --- responses ------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, error_type: str, message: str,
                    headers: dict[str, str] | None = None) -> None:
        self._send_json(status, error_body(error_type, message), headers)

    def do_GET(self) -> None:
        request = self._record()
        if not self._authorized(request):
            return
        if request.path == "/v1/models":
            model = {"type": "model", "id": self.fake.model, "display_name": "Fake model",
                     "created_at": "2025-01-01T00:00:00Z"}
            self._send_json(200, {"data": [model], "has_more": False,
                                  "first_id": model["id"], "last_id": model["id"]})
            return
        self._send_error(404, "not_found_error", f"no route {request.path}")

    def do_POST(self) -> None:
        request = self._record()
        if not self._authorized(request):
            return
        body = request.body if isinstance(request.body, dict) else None
        if request.path == "/v1/messages/count_tokens":
            if body is None:
                self._send_error(400, "invalid_request_error", "body must be a JSON object")
                return
            self._send_json(200, {"input_tokens": input_tokens_of(body)})
            return
        if request.path != "/v1/messages":
            self._send_error(404, "not_found_error", f"no route {request.path}")
            return
        if body is None or not body.get("messages") or "max_tokens" not in body:
            self._send_error(400, "invalid_request_error",
                             "messages and max_tokens are required")
            return
        refused = bad_signature(body)
        if refused is not None:
            self._send_error(400, "invalid_request_error", refused)
            return
        item = self.fake._next(body)
        if isinstance(item, Failure):
            self._send_error(item.status, item.error_type, item.message, item.headers)
            return
        try:
            prompt = self.fake._prompt_usage(body)
        except RequestRefused as exc:
            self._send_error(400, "invalid_request_error", str(exc))
            return
        if body.get("stream"):
            self._stream(item, body, prompt)
        elif item.cut_after is not None:
            self._send_cut_json(item, body, prompt)
        elif item.error_after is not None:
            self._send_error(STATUS_OF_TYPE.get(item.error_type, 500), item.error_type,
                             item.error_message)
        else:
            self._send_json(200, message_of(item, body, prompt))

    def _authorized(self, request: RecordedRequest) -> bool:
        fake = self.fake
        if request.api_key is None and fake.require_auth:
            self._send_error(401, "authentication_error", "x-api-key header is required")
            return False
        if fake.api_key is not None and request.api_key not in (None, fake.api_key):
            self._send_error(401, "authentication_error", "invalid x-api-key")
            return False
        return True

    def _stream(self, reply: Reply, body: dict[str, Any],
                prompt: dict[str, Any] | None) -> None:
        chunked = reply.cut_how != "eof"  # an "eof" body is ended by closing the connection
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding" if chunked else "connection",
                         "chunked" if chunked else "close")
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        self.end_headers()
        try:
            texts = 0
            for event in events_of(reply, body, prompt):
                if event is None:
                    time.sleep(reply.delay)
                    continue
                name, data = event
                payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload) if chunked
                                 else payload)
                texts += name == "content_block_delta" and data["delta"]["type"] == "text_delta"
                if cut_here(reply.cut_after, name, texts):
                    self._end_early(reply.cut_how)
                    return
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream

    def _send_cut_json(self, reply: Reply, body: dict[str, Any],
                       prompt: dict[str, Any] | None) -> None:
        """A non-streamed answer whose body stops half-way (``end_early``)."""
        data = json.dumps(message_of(reply, body, prompt)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self._end_early("truncate" if reply.cut_how == "chunked" else reply.cut_how)

    def _end_early(self, how: str) -> None:
        """End a response cut short: a clean chunked end, or close (cleanly, or by a reset)."""
        if how == "chunked":
            self.wfile.write(b"0\r\n\r\n")
            return
        self.close_connection = True
        if how == "reset":  # SO_LINGER 0: close() sends a TCP reset instead of a FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
