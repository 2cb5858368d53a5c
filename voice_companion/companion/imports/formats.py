"""Chat exports of other services, read into one shape: conversations of user and
assistant messages with their original times (issue 19, "bring your companion home").

Formats (documented in README, "Bring your companion home"):
- ChatGPT's data export: `conversations.json`, or the export's .zip holding it. Each
  conversation is a tree (`mapping` of nodes with `parent`); the live branch is walked up
  from `current_node`, so regenerated and edited-away replies are left out, as are hidden
  messages, tool traffic (`recipient` other than "all") and reasoning. The user's custom
  instructions become persona input, images a short "[image]".
- Claude's export `conversations.json` (`chat_messages` with `sender` human/assistant).
- SillyTavern chat `.jsonl` (a metadata line, then `{name, is_user, is_system, send_date,
  mes}`; `send_date` in milliseconds or as "September 28, 2024 1:02am").
- Character.AI history as CAI Tools exports it (`histories.histories[].msgs[]`).
- Plain JSONL of `{role, content, time}`.
A file is read as a stream (ijson), so a 50 MB export never sits in memory whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import ijson

from voice_companion.core.errors import CompanionError

FORMATS = ("chatgpt", "claude", "sillytavern", "characterai", "jsonl")
# ChatGPT content types that are the model's own working, not what it said
_CHATGPT_SKIPPED = {
    "thoughts",
    "reasoning_recap",
    "code",
    "execution_output",
    "tether_browsing_display",
    "tether_quote",
    "system_error",
    "computer_output",
}
_ST_DATE = re.compile(r"^[A-Z][a-z]+ \d{1,2}, \d{4} \d{1,2}:\d{2}\s*[ap]m$", re.IGNORECASE)


class ImportFormatError(CompanionError):
    """An export this reader cannot use: which file, what is wrong, what to do."""


@dataclass(frozen=True)
class ImportedMessage:
    role: str  # "user" or "assistant"
    text: str
    time: float | None  # unix seconds; None when the export has no time for it
    key: str  # stable within its source: re-importing the same file adds nothing twice


@dataclass
class ImportedConversation:
    key: str  # "<format>:<the export's id>"
    title: str
    created: float | None
    messages: list[ImportedMessage] = field(default_factory=list)
    model: str = ""  # ChatGPT's model slug or custom GPT id; a card's character name
    instructions: str = ""  # custom instructions, as persona input
    assistant_name: str = ""
    user_name: str = ""

    @property
    def started(self) -> float | None:
        times = [m.time for m in self.messages if m.time is not None]
        return min(times) if times else self.created


def detect(path: Path) -> str:
    """The format of an export, from its name and its first bytes."""
    if path.suffix.lower() == ".zip":
        return "chatgpt"
    head = _head(path)
    if path.suffix.lower() == ".jsonl" or (head.startswith("{") and "\n{" in head and '"role"' in head):
        first = head.splitlines()[0] if head else ""
        return "sillytavern" if re.search(r'"(character_name|user_name|is_user)"', first + head) else "jsonl"
    if head.startswith("["):
        if '"mapping"' in head or '"current_node"' in head:
            return "chatgpt"
        if '"chat_messages"' in head:
            return "claude"
    if head.startswith("{") and '"histories"' in head:
        return "characterai"
    raise ImportFormatError(
        f"{path.name}: not an export this knows (ChatGPT, Claude, SillyTavern, Character.AI or JSONL of "
        "{role, content, time}); give --format if it is one"
    )


def read(path: Path, fmt: str = "auto", user_name: str = "") -> Iterator[ImportedConversation]:
    """Every conversation of the export, in the file's order; ImportFormatError on a file
    that is not what it says (the message names the file and what to do)."""
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    fmt = detect(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}; one of: auto, {', '.join(FORMATS)}")
    try:
        if fmt == "chatgpt":
            with _chatgpt_file(path) as f:
                yield from _chatgpt(f)
        elif fmt == "claude":
            with open(path, "rb") as f:
                yield from _claude(f)
        elif fmt == "characterai":
            with open(path, "rb") as f:
                yield from _characterai(f)
        else:
            with open(path, encoding="utf-8") as f:
                yield from (_sillytavern(f, path, user_name) if fmt == "sillytavern" else _jsonl(f, path))
    except ImportFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, ijson.JSONError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ImportFormatError(f"{path.name} is not a readable {fmt} export ({detail}); nothing was imported") from exc


def _head(path: Path, size: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(size).decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def _chatgpt_file(path: Path) -> IO[bytes]:
    if path.suffix.lower() != ".zip":
        return open(path, "rb")
    archive = zipfile.ZipFile(path)
    name = next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "conversations.json"), None)
    if name is None:
        archive.close()
        raise ImportFormatError(f"{path.name} holds no conversations.json: is it ChatGPT's data export?")
    return archive.open(name)


def _items(f: IO[bytes], prefix: str = "item") -> Iterator[Any]:
    yield from ijson.items(f, prefix, use_float=True)


# -- ChatGPT ---------------------------------------------------------------------------


def _chatgpt(f: IO[bytes]) -> Iterator[ImportedConversation]:
    for raw in _items(f):
        conversation = _chatgpt_conversation(raw)
        if conversation is not None:
            yield conversation


def _chatgpt_conversation(raw: dict) -> ImportedConversation | None:
    mapping: dict[str, dict] = raw.get("mapping") or {}
    cid = str(raw.get("conversation_id") or raw.get("id") or "")
    if not mapping or not cid:
        return None
    branch: list[dict] = []
    node_id = raw.get("current_node")
    seen: set[str] = set()
    while node_id and node_id in mapping and node_id not in seen:  # the live branch, leaf to root
        seen.add(node_id)
        branch.append(mapping[node_id])
        node_id = mapping[node_id].get("parent")
    conversation = ImportedConversation(
        f"chatgpt:{cid}",
        str(raw.get("title") or ""),
        _number(raw.get("create_time")),
        model=str(raw.get("gizmo_id") or raw.get("default_model_slug") or ""),
    )
    for node in reversed(branch):
        message = node.get("message")
        if not message:
            continue
        role = (message.get("author") or {}).get("role")
        content = message.get("content") or {}
        kind = content.get("content_type", "text")
        metadata = message.get("metadata") or {}
        instructions = _chatgpt_instructions(metadata, content)
        if instructions:
            conversation.instructions = instructions
            continue
        if (
            role not in ("user", "assistant")
            or message.get("recipient", "all") != "all"
            or metadata.get("is_visually_hidden_from_conversation")
            or kind in _CHATGPT_SKIPPED
        ):
            continue
        text = _chatgpt_text(content)
        if not text:
            continue
        if role == "assistant" and metadata.get("model_slug") and not raw.get("gizmo_id"):
            conversation.model = str(metadata["model_slug"])
        when = _number(message.get("create_time")) or conversation.created
        conversation.messages.append(ImportedMessage(role, text, when, str(node.get("id") or message.get("id"))))
    return conversation


def _chatgpt_instructions(metadata: dict, content: dict) -> str:
    """Custom instructions (about the user, how to answer): persona input, not a turn."""
    data = metadata.get("user_context_message_data") or {}
    if content.get("content_type") == "user_editable_context":
        data = {
            "about_user_message": content.get("user_profile"),
            "about_model_message": content.get("user_instructions"),
        }
    parts = [str(data.get(k) or "").strip() for k in ("about_user_message", "about_model_message")]
    return "\n".join(p for p in parts if p)


def _chatgpt_text(content: dict) -> str:
    parts = content.get("parts")
    if parts is None:
        return str(content.get("text") or "").strip()
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            kind = str(part.get("content_type") or "")
            if "image" in kind:
                out.append("[image]")
            elif isinstance(part.get("text"), str):
                out.append(part["text"])
    return "\n".join(p.strip() for p in out if p and p.strip()).strip()


# -- Claude ----------------------------------------------------------------------------


def _claude(f: IO[bytes]) -> Iterator[ImportedConversation]:
    for raw in _items(f):
        cid = str(raw.get("uuid") or "")
        if not cid:
            continue
        conversation = ImportedConversation(
            f"claude:{cid}", str(raw.get("name") or ""), _iso(raw.get("created_at")), assistant_name="Claude"
        )
        for n, message in enumerate(raw.get("chat_messages") or ()):
            role = {"human": "user", "assistant": "assistant"}.get(message.get("sender"))
            text = (
                str(message.get("text") or "").strip()
                or "\n".join(
                    str(c.get("text") or "").strip()
                    for c in message.get("content") or ()
                    if isinstance(c, dict) and c.get("type") == "text"
                ).strip()
            )
            if role and text:
                when = _iso(message.get("created_at")) or conversation.created
                conversation.messages.append(ImportedMessage(role, text, when, str(message.get("uuid") or n)))
        yield conversation


# -- SillyTavern, Character.AI, JSONL ----------------------------------------------------


def _sillytavern(f: io.TextIOBase, path: Path, user_name: str) -> Iterator[ImportedConversation]:
    lines = (line for line in f if line.strip())
    first = json.loads(next(lines, "{}"))
    header = first if "mes" not in first else {}
    conversation = ImportedConversation(
        "",
        str(header.get("character_name") or path.stem),
        _st_date(header.get("create_date")),
        model=str(header.get("character_name") or ""),
        assistant_name=str(header.get("character_name") or ""),
        user_name=user_name or str(header.get("user_name") or ""),
    )
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:16]
    for line in ([json.dumps(first)] if not header else []) + list(lines):
        message = json.loads(line)
        if message.get("is_system") or not str(message.get("mes") or "").strip():
            continue
        role = "user" if message.get("is_user") else "assistant"
        conversation.assistant_name = conversation.assistant_name or (
            "" if role == "user" else str(message.get("name") or "")
        )
        when = _st_date(message.get("send_date"))
        conversation.messages.append(
            ImportedMessage(role, str(message["mes"]).strip(), when, _digest(role, message["mes"], when))
        )
    conversation.key = f"sillytavern:{conversation.assistant_name or path.stem}:{digest}"
    yield conversation


def _characterai(f: IO[bytes]) -> Iterator[ImportedConversation]:
    for n, history in enumerate(_items(f, "histories.histories.item")):
        messages = []
        name = ""
        for message in history.get("msgs") or ():
            source = message.get("src") or {}
            text = str(message.get("text") or "").strip()
            if not text:
                continue
            role = "user" if source.get("is_human") else "assistant"
            name = name or ("" if role == "user" else str(source.get("name") or ""))
            when = _iso(message.get("created") or message.get("create_time"))
            messages.append(ImportedMessage(role, text, when, _digest(role, text, when)))
        key = hashlib.sha256("".join(m.key for m in messages).encode()).hexdigest()[:16]
        yield ImportedConversation(
            f"characterai:{history.get('external_id') or key}",
            name or f"history {n + 1}",
            None,
            messages,
            assistant_name=name,
        )


def _jsonl(f: io.TextIOBase, path: Path) -> Iterator[ImportedConversation]:
    conversation = ImportedConversation(f"jsonl:{path.stem}", path.stem, None)
    for line in f:
        if not line.strip():
            continue
        message = json.loads(line)
        role = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}.get(
            str(message.get("role", "")).lower()
        )
        text = str(message.get("content") or "").strip()
        if role is None or not text:
            continue
        raw_time = message.get("time")
        when = _number(raw_time) if isinstance(raw_time, int | float) else _iso(raw_time)
        conversation.messages.append(ImportedMessage(role, text, when, _digest(role, text, when)))
    yield conversation


# -- dates -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / 1000 if value > 1e11 else float(value)  # milliseconds or seconds


def _iso(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return _number(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _st_date(value: Any) -> float | None:
    """SillyTavern: milliseconds, "September 28, 2024 1:02am" (local time), or ISO."""
    if isinstance(value, str) and _ST_DATE.match(value.strip()):
        compact = re.sub(r"\s*([ap]m)$", r"\1", value.strip(), flags=re.IGNORECASE)
        return datetime.strptime(compact.upper(), "%B %d, %Y %I:%M%p").timestamp()
    return _iso(value)


def _digest(role: str, text: str, when: float | None) -> str:
    return hashlib.sha256(f"{role}\x00{when}\x00{text}".encode()).hexdigest()[:20]
