"""The Messages API's wire formats, as the fake server speaks them: token counts, scripted
replies, recorded requests, error bodies and the SSE events of a streamed answer
(``wire-formats.md``)."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import split_words  # the chunking the offline backends use too

DEFAULT_PREFIX = "[fake Messages API server — no model was called]"

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}
STATUS_OF_TYPE = {v: k for k, v in ERROR_TYPES.items()}
# How a stream cut short by ``end_early`` ends (see FakeMessagesServer.end_early).
ENDINGS = ("chunked", "eof", "truncate", "reset")
CUT_POINTS = ("message_start", "content_block_start", "content_block_stop", "message_delta")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def text_of(content: Any) -> str:
    """The text of a message ``content`` (a string, or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text_of(b.get("text", b.get("content", ""))) for b in content
                         if isinstance(b, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """The last text block of the last user message (what a person typed)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = [b.get("text", "") for b in content
                     if isinstance(b, dict) and b.get("type") == "text"]
            return texts[-1] if texts else text_of(content)
        return text_of(content)
    return ""


def input_tokens_of(body: dict[str, Any]) -> int:
    system = text_of(body.get("system") or "")
    return estimate_tokens(system) + sum(
        estimate_tokens(text_of(m.get("content"))) for m in body.get("messages") or [])


def plain_content(content: Any) -> Any:
    """A content list of text blocks as one string (else the content as sent)."""
    if isinstance(content, list) and content and all(
            isinstance(b, dict) and b.get("type") == "text" for b in content):
        return "".join(b.get("text", "") for b in content)
    return content


@dataclass
class Reply:
    """A scripted answer. ``chunks`` default to the text split into words; ``usage`` keys
    override the estimated counts; ``error_after`` sends an ``error`` event after that many
    chunks (a mid-stream failure); ``delay`` waits before each chunk (a slow stream);
    ``cut_after`` ends the response early in the way ``cut_how`` names (see ``end_early``);
    ``thinking`` is the reasoning sent first when the request enables thinking (a default
    when None)."""

    text: str
    chunks: list[str] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: str = "end_turn"
    model: str | None = None
    delay: float = 0.0
    error_after: int | None = None
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    cut_after: str | int | None = None
    cut_how: str = "chunked"
    thinking: str | None = None


@dataclass
class Failure:
    """A scripted HTTP error response (used ``times`` times in a row)."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str]
    times: int = 1


@dataclass
class RecordedRequest:
    """One request the server received. Credential header values are redacted in ``headers``;
    ``api_key`` holds the key that was sent (in memory only, never in ``repr``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    auth_scheme: str | None
    api_key: str | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The body's messages as plain ``{"role", "content"}`` with the content as text
        when it is text only (``cache_control`` and block lists undone), for assertions."""
        body = self.body if isinstance(self.body, dict) else {}
        return [{"role": m.get("role"), "content": plain_content(m.get("content"))}
                for m in body.get("messages") or []]

    @property
    def breakpoints(self) -> list[dict[str, Any]]:
        """Every block (system or message content) that carries ``cache_control``."""
        body = self.body if isinstance(self.body, dict) else {}
        blocks = list(body["system"]) if isinstance(body.get("system"), list) else []
        for message in body.get("messages") or []:
            if isinstance(message.get("content"), list):
                blocks += message["content"]
        return [b for b in blocks if isinstance(b, dict) and "cache_control" in b]


def default_message(error_type: str) -> str:
    return {"authentication_error": "invalid x-api-key", "rate_limit_error": "Rate limited",
            "overloaded_error": "Overloaded", "api_error": "Internal server error",
            "not_found_error": "Not found"}.get(error_type, error_type.replace("_", " "))


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message},
            "request_id": f"req_fake_{uuid.uuid4().hex[:20]}"}


def cut_here(cut: str | int | None, name: str, texts: int) -> bool:
    """Whether a stream cut after ``cut`` ends after this event (``texts`` chunks sent)."""
    if isinstance(cut, int):
        return (name == "content_block_delta" and texts == cut) or (cut == 0 and name == "ping")
    return cut == name


def thinking_requested(body: dict[str, Any]) -> bool:
    """Whether the request turns extended thinking on (``enabled`` or ``adaptive``)."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def thinking_of(reply: Reply, body: dict[str, Any]) -> str | None:
    """The reasoning this answer streams first: only when the request asks for it."""
    if not thinking_requested(body):
        return None
    return reply.thinking if reply.thinking is not None else (
        f"The user asks: {last_user_text(body)[:200]}. A short answer will do.")


def signature_of(thinking: str) -> str:
    """The (fake, deterministic) signature of a thinking block, as the API signs one."""
    return base64.b64encode(hashlib.sha256(b"fake-thinking:" + thinking.encode()).digest()
                            ).decode()


def bad_signature(body: dict[str, Any]) -> str | None:
    """The API's 400 message for a resent thinking block whose signature does not match its
    text (edited, or signed elsewhere); None when every one matches."""
    for m_index, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        for b_index, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and block.get("type") == "thinking" and (
                    block.get("signature") != signature_of(str(block.get("thinking", "")))):
                return (f"messages.{m_index}.content.{b_index}: Invalid `signature` in "
                        "`thinking` block")
    return None


def usage_of(reply: Reply, body: dict[str, Any], chunks: list[str],
             prompt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer's usage: ``prompt`` (input and cache counts, from the prompt cache; without
    it every input token is uncached), the chunks as output tokens, then ``reply.usage``."""
    usage: dict[str, Any] = dict(prompt) if prompt is not None else {
        "input_tokens": input_tokens_of(body), "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0}
    thought = thinking_of(reply, body)
    usage["output_tokens"] = len(chunks) + (len(split_words(thought)) if thought else 0)
    usage.update(reply.usage)
    return usage


def message_of(reply: Reply, body: dict[str, Any],
               prompt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON of a whole (non-streamed) answer."""
    chunks = reply.chunks if reply.chunks is not None else split_words(reply.text)
    thought = thinking_of(reply, body)
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
    if thought is not None:
        content.insert(0, {"type": "thinking", "thinking": thought,
                           "signature": signature_of(thought)})
    return {"id": f"msg_fake_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": reply.model or body.get("model"),
            "content": content, "stop_reason": reply.stop_reason,
            "stop_sequence": None, "usage": usage_of(reply, body, chunks, prompt)}


def events_of(reply: Reply, body: dict[str, Any], prompt: dict[str, Any] | None = None
              ) -> Iterable[tuple[str, dict[str, Any]] | None]:
    """The SSE events of one streamed answer; ``None`` means: wait ``reply.delay`` now."""
    chunks = reply.chunks if reply.chunks is not None else split_words(reply.text)
    usage = usage_of(reply, body, chunks, prompt)
    start = message_of(reply, body, prompt)
    start.update(content=[], stop_reason=None,
                 usage={**usage, "output_tokens": min(1, usage["output_tokens"])})
    yield "message_start", {"type": "message_start", "message": start}
    thought = thinking_of(reply, body)
    index = 0
    if thought is not None:
        yield from thinking_events(thought)
        index = 1
    yield "content_block_start", {"type": "content_block_start", "index": index,
                                  "content_block": {"type": "text", "text": ""}}
    yield "ping", {"type": "ping"}
    for number, chunk in enumerate(chunks):
        if reply.error_after is not None and number >= reply.error_after:
            break
        if reply.delay:
            yield None
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": {"type": "text_delta", "text": chunk}}
    if reply.error_after is not None:
        yield "error", error_body(reply.error_type, reply.error_message)
        return
    yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def thinking_events(thought: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """A thinking block at index 0 as the API streams it: ``content_block_start`` (empty
    thinking and signature), ``thinking_delta`` chunks, one ``signature_delta``, stop."""
    yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "thinking", "thinking": "", "signature": ""}}
    for chunk in split_words(thought):
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "thinking_delta", "thinking": chunk}}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "signature_delta", "signature": signature_of(thought)}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
