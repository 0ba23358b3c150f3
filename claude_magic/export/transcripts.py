"""Sessions as Markdown, nbformat v4 notebooks and JSON exports (and JSON back to a session)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..checks import json_text
from ..errors import ClaudeMagicError
from ..message import Message, SessionStats
from ..session import Session
from ..storage import _jsonio
from ..times import format_time, utc_now

if TYPE_CHECKING:
    from nbformat import NotebookNode

EXPORT_FORMAT = "claude-magic/session-export"
EXPORT_VERSION = 1


class InvalidExport(ClaudeMagicError, ValueError):
    """A file or text that is not a claude_magic session export."""



def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _cell_text(value: Any) -> str:
    """A metadata key or value in a Markdown table cell (as typed, on one line)."""
    return json_text(value).replace("|", "\\|").replace("\n", " ")


def _totals(stats: SessionStats) -> str:
    from ..costs import cost_text

    return (f"{plural(stats.turns, 'turn')} · {plural(stats.message_count, 'message')} · "
            f"{stats.input_tokens:,} tokens in / {stats.output_tokens:,} out · "
            f"{cost_text(stats)}")


def session_header_markdown(session: Session, *, level: int = 1) -> str:
    """A Markdown title, a table of times, totals and metadata, and the system prompt."""
    stats = session.stats
    rows = [("Created", _when(session.created_at)), ("Updated", _when(session.updated_at)),
            ("Totals", _totals(stats))]
    if stats.last_model:
        rows.append(("Model", stats.last_model))
    rows += [(f"`{_cell_text(k)}`", _cell_text(v)) for k, v in sorted(session.metadata.items())]
    rows += [(f"setting `{_cell_text(k)}`", _cell_text(v))
             for k, v in sorted(session.settings.items())]
    lines = [f"{'#' * level} Claude session `{session.id}`", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    if session.system_prompt:
        quoted = "\n".join(f"> {line}" for line in session.system_prompt.splitlines())
        lines += ["", "**System prompt**", "", quoted]
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    """``1 turn``, ``2 turns``, ``1,000 messages``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


# who wrote an answer, by backend: offline answers never read as a model's
_ANSWERED_BY = {"echo": "Offline echo (no model)", "replay": "Claude (replayed)"}


def byline(message: Message) -> str:
    """Who wrote a message, with its model, time, tokens and cost (Markdown)."""
    who = "You" if message.role == "user" else _ANSWERED_BY.get(message.backend or "", "Claude")
    parts = [f"**{who}**"]
    if message.model and message.role == "assistant":
        parts.append(f"`{message.model}`")
    parts.append(_when(message.created_at))
    usage = message.usage
    if usage.input_tokens or usage.output_tokens:
        parts.append(f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens")
    if message.cost_usd:
        parts.append(f"${message.cost_usd:.4f}")
    return " · ".join(parts)


def message_markdown(message: Message, attach: Any = None) -> str:
    """One message as Markdown: a byline, a visible warning if it failed, then its text."""
    lines = [byline(message)]
    if message.status == "error":
        lines += ["", f"> ⚠️ **FAILED** — this turn failed: {message.error or 'unknown error'}"]
    elif message.status == "incomplete":
        lines += ["", "> ⚠️ **INCOMPLETE** — the answer was cut off"
                  + (f": {message.error}" if message.error else "")]
    from ..blocks import markdown_of

    body = message.content if isinstance(message.content, str) else markdown_of(
        message.content, attach)
    lines += ["", body or "*(empty)*"]
    return "\n".join(lines)


def _notebook_metadata(session: Session) -> dict[str, Any]:
    return {"format": "claude-magic/notebook", "version": 1,
            "exported_at": format_time(utc_now()),
            "session": {**session.header_dict(), "stats": session.stats.to_dict()}}


def session_to_notebook(session: Session) -> NotebookNode:
    """An nbformat v4 notebook: a header cell, then one Markdown cell per message.

    The session header and totals are in ``notebook.metadata["claude_magic"]``; each message
    cell has its role, seq, status and model in ``cell.metadata["claude_magic"]``.
    """
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata["claude_magic"] = _notebook_metadata(session)
    nb.cells.append(v4.new_markdown_cell(session_header_markdown(session),
                                         metadata={"claude_magic": {"kind": "header"}}))
    compacted = compacted_seqs(session.messages)
    for m in session.messages:
        meta = {"kind": "message", "role": m.role, "seq": m.seq, "status": m.status,
                "model": m.model, "created_at": format_time(m.created_at)}
        attachments: dict[str, Any] = {}
        source = message_markdown(m, _attacher(attachments))
        if m.seq in compacted:  # greyed and collapsed, as in show and the panel
            meta["compacted"] = True
            source = compacted_fold([source])
        cell = v4.new_markdown_cell(source, metadata={"claude_magic": meta})
        if attachments:  # images of the message, as nbformat attachments
            cell.attachments = attachments
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def _attacher(attachments: dict[str, Any]) -> Any:
    """An ``attach`` for :func:`message_markdown` that puts base64 images in ``attachments``."""
    def attach(block: dict[str, Any]) -> str | None:
        source = block["source"]
        if source.get("type") != "base64":
            return None
        name = f"image-{len(attachments) + 1}.{source['media_type'].split('/')[-1]}"
        attachments[name] = {source["media_type"]: source["data"]}
        return f"attachment:{name}"
    return attach


Attach = Callable[[dict[str, Any]], "str | None"]


def compacted_seqs(messages: Sequence[Message]) -> set[int]:
    from ..compaction import compacted_seqs as seqs

    return seqs(messages)


def compacted_fold(parts: Sequence[str]) -> str:
    """Compacted messages (rendered) in one collapsed, greyed part naming how many."""
    body = "\n\n---\n\n".join(parts)
    return (f"<details><summary>{plural(len(parts), 'compacted message')} (a summary "
            "replaces them in later requests)</summary>\n\n"
            f'<div style="opacity: 0.6; color: gray">\n\n{body}\n\n</div>\n\n</details>')


def folded_markdown(messages: Sequence[Message], attach: Attach | None = None) -> list[str]:
    """Each message as Markdown, each run of compacted messages folded into one part."""
    compacted = compacted_seqs(messages)
    pieces: list[str] = []
    run: list[str] = []
    for message in messages:
        if message.seq in compacted:
            run.append(message_markdown(message, attach))
            continue
        if run:
            pieces.append(compacted_fold(run))
            run = []
        pieces.append(message_markdown(message, attach))
    return pieces + ([compacted_fold(run)] if run else [])


def data_uri(block: dict[str, Any]) -> str | None:
    """A base64 image block's ``data:`` URI (an ``attach``: the image inline)."""
    source = block.get("source", {})
    if source.get("type") != "base64":
        return None
    return f"data:{source['media_type']};base64,{source['data']}"


def session_to_markdown(session: Session, attach: Attach | None = None) -> str:
    """The whole conversation as one Markdown document; ``attach`` gives an image block its
    URL (a file beside the export, a ``data:`` URI), else images are described. Compacted
    messages are folded, collapsed and greyed."""
    pieces = [session_header_markdown(session), *folded_markdown(session.messages, attach)]
    return "\n\n---\n\n".join(pieces) + "\n"


def message_text(message: Message) -> str:
    """One message as plain text (a terminal): a byline, its status, its text, and one
    bracketed line for each image, document, thinking or tool block (collapsed)."""
    from ..blocks import describe

    lines = [byline(message).replace("**", "").replace("`", "")]
    if message.status != "ok":
        lines.append(f"  [{message.status.upper()}] {message.error or ''}".rstrip())
    blocks = [message.content] if isinstance(message.content, str) else [
        b["text"] if b["type"] == "text" else describe(b) for b in message.content]
    lines += ["", "\n".join(b for b in blocks if b) or "(empty)"]
    return "\n".join(lines)


def session_to_text(session: Session) -> str:
    """The transcript as plain text; each run of compacted messages is one line naming how
    many (they are folded away, as in the Markdown)."""
    header = session_header_markdown(session).split("\n")
    lines = [header[0].lstrip("# ").replace("`", "")] + [
        line.strip("|").replace(" | ", ": ").replace("`", "").strip() for line in header[4:]
        if line.startswith("|")]
    if session.system_prompt:
        lines.append(f"System prompt: {session.system_prompt}")
    pieces = ["\n".join(lines)]
    compacted = compacted_seqs(session.messages)
    folded = 0
    for message in [*session.messages, None]:
        if message is not None and message.seq in compacted:
            folded += 1
            continue
        if folded:
            pieces.append(f"[{plural(folded, 'compacted message')} folded: a summary replaces "
                          "them in later requests]")
            folded = 0
        if message is not None:
            pieces.append(message_text(message))
    return "\n\n".join(pieces) + "\n"


def session_to_json(session: Session) -> str:
    """The session with every message field; :func:`session_from_json` reverses it exactly."""
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "session": session.to_dict()}
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def session_from_json(text: str | bytes) -> Session:
    """A :class:`Session` from :func:`session_to_json` output (or a bare session object).

    Anything that is not such an export, including a field of the wrong type, raises
    :class:`InvalidExport` with one line naming the field (``messages[3]: message cost_usd
    must be a number, got str``); nothing is half-read."""
    try:
        doc = _jsonio.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidExport(f"not a session export: invalid JSON ({exc})") from None
    if isinstance(doc, dict) and "format" in doc:
        if doc["format"] != EXPORT_FORMAT:
            raise InvalidExport(f"not a session export: format is {doc['format']!r}, "
                                f"expected {EXPORT_FORMAT!r}")
        if doc.get("version") != EXPORT_VERSION:
            raise InvalidExport(f"session export version {doc.get('version')!r} is not supported "
                                f"(this claude_magic reads version {EXPORT_VERSION})")
        doc = doc.get("session")
    if not isinstance(doc, dict) or "id" not in doc:
        raise InvalidExport("not a session export: expected a JSON object with a session 'id'")
    try:
        return Session.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:  # InvalidSessionId, InvalidMetadata too
        raise InvalidExport(f"session export is damaged: {exc}") from None
