"""`voice-companion history import FILE`: bring a companion's past home from ChatGPT,
Claude, SillyTavern, Character.AI or a JSONL file (companion/imports/).

Each handler returns a dict (printed as JSON with --json); problems are one-line
`CompanionError`s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from voice_companion.companion.companion import choose, open_store
from voice_companion.companion.imports import importer
from voice_companion.companion.imports.draft import draft_persona
from voice_companion.companion.imports.formats import FORMATS, detect
from voice_companion.companion.library import Library
from voice_companion.companion.memory.types import ImportStore
from voice_companion.companion.memory.vectors import embed_pending
from voice_companion.companion.persona import Persona
from voice_companion.core.config import Settings
from voice_companion.engines import embeddings

SOURCE_NAMES = {
    "chatgpt": "ChatGPT",
    "claude": "Claude",
    "sillytavern": "SillyTavern",
    "characterai": "Character.AI",
    "jsonl": "JSONL",
}


def add_parsers(add) -> None:
    """The commands' flags; `add(name, help)` is cli.py's subparser factory."""
    p = add("history", "bring your companion's past home: import a chat export", json_flag=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser(
        "import",
        help="import conversations from ChatGPT, Claude, SillyTavern, Character.AI or JSONL",
        description="Import a chat export into the companion's memory, with the original times: "
        "ChatGPT (conversations.json or the export .zip), Claude (conversations.json), SillyTavern "
        "(a chat .jsonl), Character.AI (CAI Tools' JSON) or JSONL of {role, content, time}. "
        "Importing the same file again adds nothing twice; an interrupted import resumes.",
    )
    s.add_argument("file", help="the export file")
    s.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="default: recognised from the file")
    s.add_argument(
        "--companion",
        help="which companion (default: the one in use); a new name makes a new companion, its persona drafted "
        "from the export",
    )
    s.add_argument(
        "--conversation",
        action="append",
        default=[],
        metavar="TITLE_OR_ID",
        help="only this conversation (its title, id or model / custom GPT id); repeat for several",
    )
    s.add_argument("--user-name", default="", help="your name in the export, where it does not say")
    s.add_argument("--list", action="store_true", help="list the export's conversations, import nothing")
    s.add_argument(
        "--no-vectors",
        action="store_true",
        help="skip the sentence vectors for recall by meaning (~75 lines a second); running the import again "
        "makes them",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def history(args: argparse.Namespace, settings: Settings) -> dict:
    path = Path(args.file).expanduser()
    fmt = detect(path) if args.format == "auto" and path.is_file() else args.format
    if args.list:
        return _list(args, path, fmt)
    library = Library(settings.paths.data_dir)
    # --companion with a new name: the companion comes home as a new one, its persona
    # drafted from the export (the one in use stays as it is)
    new = bool(args.companion) and library.find(args.companion) is None
    cid = library.install(Persona(args.companion)) if new else choose(settings, args.companion)
    store = open_store(settings.memory.database_url, cid, library.directory(cid))
    started = time.perf_counter()
    _say(args, f"reading {path.name} ({SOURCE_NAMES.get(fmt, fmt)} export)…")
    try:
        with _Bar(args, "importing", "turn") as bar:
            report = importer.import_history(store, path, fmt, args.conversation, args.user_name, bar.update)
        stored_s = time.perf_counter() - started
        with _Bar(args, "summaries and facts", "session") as bar:
            learned = importer.learn(store, bar.update)
    except BaseException:
        store.close()
        if new:  # nothing was imported: no empty companion is left behind
            shutil.rmtree(library.directory(cid), ignore_errors=True)
        raise
    embedded = _embed(args, settings, store)
    store.close()
    seconds = time.perf_counter() - started
    note = f"; {report.already} were there from an earlier import" if report.already else ""
    chosen = f" ({report.conversations} chosen)" if args.conversation else ""
    _say(
        args,
        f"imported {_count(report.turns, 'turn')} in {_count(report.sessions, 'session')} from "
        f"{_count(report.conversations, 'conversation')}{chosen} in {seconds:.1f} s{note}. "
        f"They are in {cid}'s memory from the next conversation.",
    )
    if new:
        draft = draft_persona(report.notes, args.companion)
        library.install(draft, cid, replace=True)
        _say(
            args,
            f"{cid} is a new companion, {draft.name}, its persona drafted from the export: read and edit it with "
            f"`voice-companion persona show {cid}`; talk with it: `voice-companion persona use {cid}`",
        )

    return {
        "companion": cid,
        "format": fmt,
        "conversations": report.conversations,
        "sessions": report.sessions,
        "turns": report.turns,
        "already": report.already,
        "assistant_names": sorted(report.assistant_names),
        "custom_instructions": len(report.instructions),
        "sessions_learned": learned,
        "lines_embedded": embedded,
        "new_companion": new,
        "seconds": round(seconds, 3),
        "storing_seconds": round(stored_s, 3),  # the rest: summaries and facts
    }


def _embed(args: argparse.Namespace, settings: Settings, store: ImportStore) -> int:
    """Sentence vectors for what the user said, so recall finds it by meaning too. Stopped
    with Ctrl-C, the import stays; the next run of the command goes on from there."""
    embedder = embeddings.shared() if settings.memory.recall_by_meaning and not args.no_vectors else None
    if embedder is None:
        return 0
    bar = _Bar(args, "for recall by meaning", "line")
    try:
        with bar:
            return embed_pending(store, embedder, bar.update)
    except KeyboardInterrupt:
        _say(args, "stopped making sentence vectors: the import is kept; run the command again to finish them.")
        return bar.done


def _list(args: argparse.Namespace, path: Path, fmt: str) -> dict:
    rows: list[dict[str, Any]] = []
    for c in importer.conversations(path, fmt, args.conversation, args.user_name):
        rows.append(
            {
                "id": c.key.split(":", 1)[-1],
                "title": c.title,
                "started": c.started,
                "messages": len(c.messages),
                "words": sum(len(m.text.split()) for m in c.messages),
                "model": c.model,
            }
        )
    for r in rows:
        when = datetime.fromtimestamp(r["started"]).strftime("%Y-%m-%d") if r["started"] else "?"
        _say(args, f"{when}  {r['messages']:>5} messages  {r['title'][:48]:<48}  {r['model'] or ''}  {r['id']}")
    _say(args, f"{len(rows)} conversations in {path.name}; import some with --conversation TITLE_OR_ID")
    return {"format": fmt, "conversations": rows}


class _Bar:
    """A progress bar on stderr, made once the total is known (never with --json)."""

    def __init__(self, args: argparse.Namespace, what: str, unit: str) -> None:
        self.shown = not args.no_progress and not args.json
        self.what, self.unit = what, unit
        self.bar: Any = None
        self.done = 0

    def update(self, done: int, total: int) -> None:
        self.done = done
        if self.bar is None and self.shown:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.what, file=sys.stderr)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


HANDLERS = {"history": history}
