"""`voice-companion persona|memory|export|import`: the user's control over their companion.

Who it is (persona cards in, out, switch), what it remembers (list, search, add, edit,
forget), and the whole companion as one file. Each handler returns a dict, printed
as JSON with --json; problems are one-line `CompanionError`s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from voice_companion.companion import cards, portability
from voice_companion.companion import persona as persona_format
from voice_companion.companion.companion import Companion, choose, open_companion
from voice_companion.companion.library import Library, slug
from voice_companion.companion.memory import window
from voice_companion.companion.memory.retrieval import Retriever
from voice_companion.companion.memory.types import Memory
from voice_companion.companion.persona_settings import (
    apply_persona,
    speaking_voice,
    voice_gender,
    voice_known,
    voice_problem,
)
from voice_companion.core.config import Settings
from voice_companion.core.errors import CompanionError
from voice_companion.core.language import language_from_text
from voice_companion.engines import llm_state


def add_parsers(add) -> None:
    """The commands' flags; `add(name, help)` is cli.py's subparser factory."""
    p = add("persona", "who your companion is: list, show, import a card, export, use", json_flag=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(sub, "list", "companions here and bundled (* = in use)")
    _sub(sub, "show", "a persona in our TOML format").add_argument("name")
    s = _sub(sub, "import", "a persona TOML, or a Character Card V2/V3 (JSON or PNG)")
    s.add_argument("file")
    s.add_argument("--as", dest="as_name", help="install under this name")
    s.add_argument("--replace", action="store_true", help="replace a persona of the same name")
    s = _sub(sub, "export", "write a persona: .toml (ours) or .json (Character Card V3)")
    s.add_argument("name")
    s.add_argument("file")
    _sub(sub, "use", "talk with this companion from now on").add_argument("name")

    p = add("memory", "what your companion remembers: list, search, add, edit, forget", json_flag=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(sub, "list", "every memory with its id", companion=True)
    _sub(sub, "search", "memories and past words that match", companion=True).add_argument("query")
    s = _sub(
        sub,
        "recall",
        "what the companion would recall into its prompt for a message (stdin: one message a line)",
        companion=True,
    )
    s.add_argument("message", nargs="?", help="what you would say (default: each line of stdin)")
    _sub(sub, "add", "tell it something to remember", companion=True).add_argument("text")
    s = _sub(sub, "edit", "correct a memory", companion=True)
    s.add_argument("id", type=int)
    s.add_argument("text")
    s = _sub(sub, "forget", "forget one memory (and the words it came from), or everything", companion=True)
    s.add_argument("id", type=int, nargs="?")
    s.add_argument("--all", action="store_true", help="every memory and the whole history")
    s.add_argument("-y", "--yes", action="store_true", help="forget --all without asking first")

    p = add("export", "write the whole companion (persona, memories, history, voice) to one file")
    p.add_argument("file")
    p.add_argument("--companion", help="which companion (default: the one in use)")
    p = add("import", "add a companion from a file `export` wrote")
    p.add_argument("file")
    p.add_argument("--as", dest="as_name", help="install under this name")
    p.add_argument("--replace", action="store_true", help="replace a companion of the same name")


def _sub(sub, name: str, help_text: str, companion: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if companion:
        p.add_argument("--companion", help="which companion (default: the one in use)")
    return p


def prepare(settings: Settings, args: argparse.Namespace) -> None:
    """For commands that talk: the chosen companion's name and voice into the settings."""
    library = Library(settings.paths.data_dir)
    cid = choose(settings, getattr(args, "companion", None))
    apply_persona(
        settings,
        library.persona(cid),
        keep_voice=bool(getattr(args, "voice", None)),
        keep_speed=bool(getattr(args, "speed", None)),
    )
    args.companion = cid


def _out(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def persona(args: argparse.Namespace, settings: Settings) -> dict:
    library = Library(settings.paths.data_dir)
    if args.action == "list":
        active = choose(settings)
        rows = [
            {
                "id": cid,
                "name": (p := library.persona(cid)).name,
                "language": p.language,
                "voice": (spoken := speaking_voice(p, settings)[0]),  # what it will speak with here
                "voice_is_default": not p.voice.name,
                "voice_stands_in": bool(p.voice.name) and spoken != p.voice.name,  # its own is not here
                "picture": bool(library.picture(cid)),
                "installed": cid in library.installed(),
                "active": cid == active,
            }
            for cid in library.ids()
        ]
        for r in rows:
            _out(
                args,
                f"{'*' if r['active'] else ' '} {r['id']:<12} {r['name']:<12} {r['language'] or '-':<4} "
                f"{str(r['voice']) + _voice_note(r):<32} "
                f"{'picture ' if r['picture'] else ''}{'' if r['installed'] else '(bundled, not used yet)'}".rstrip(),
            )
        return {"personas": rows}
    if args.action == "import":
        found = cards.load_persona_file(args.file)
        if not found.language:  # a card rarely says; its own words do
            found.language = language_from_text(f"{found.greeting}\n{found.description}") or ""
        _warn_about_voices(found, settings)
        cid = library.install(found, slug(args.as_name) if args.as_name else None, replace=args.replace)
        image = cards.card_picture(args.file)
        kind = cards.picture_kind(image) if image else None
        if image and kind:
            library.set_picture(cid, image, kind)
        open_companion(settings, cid).close()  # its lore goes into its memory now
        _out(
            args,
            f"imported {found.name!r} as {cid!r} ({len(found.lore)} lore entries"
            f"{', with its picture' if kind else ''}); talk with it: voice-companion persona use {cid}",
        )
        return {
            "id": cid,
            "name": found.name,
            "lore": len(found.lore),
            "language": found.language,
            "picture": bool(kind),
        }
    cid = library.require(args.name)
    chosen = library.persona(cid)
    if args.action == "show":
        picture = library.picture(cid)
        _out(args, persona_format.to_toml(chosen).rstrip())
        if picture:
            _out(args, f"# picture: {picture} (shown on the call screen)")
        voice, problem = speaking_voice(chosen, settings)
        gender = voice_gender(voice)
        _out(args, f"# speaks with: {voice}{f' ({gender})' if gender else ''}{f': {problem}' if problem else ''}")
        return {
            "id": cid,
            "persona": persona_format.to_dict(chosen),
            "picture": str(picture) if picture else None,
            "speaks_with": {"voice": voice, "gender": gender, "problem": problem},
        }
    if args.action == "export":
        path = Path(args.file)
        as_card = path.suffix.lower() == ".json"
        text = (
            json.dumps(cards.to_card(chosen), ensure_ascii=False, indent=2)
            if as_card
            else persona_format.to_toml(chosen)
        )
        path.write_text(text, encoding="utf-8")
        _out(args, f"wrote {chosen.name!r} to {path} ({'Character Card V3' if as_card else 'persona TOML'})")
        return {"id": cid, "file": str(path), "format": "chara_card_v3" if as_card else "toml"}
    library.set_active(cid)  # use
    _out(args, f"now talking with {chosen.name} ({cid})")
    if choose(settings) != cid:
        _out(args, f"note: companion.name = {settings.companion.name!r} in config.toml still wins; remove it")
    return {"id": cid, "name": chosen.name}


def _voice_note(row: dict) -> str:
    if row["voice_is_default"]:
        return " (default)"
    return " (stands in)" if row["voice_stands_in"] else ""


def _warn_about_voices(found: persona_format.Persona, settings: Settings) -> None:
    """A persona that names a voice we cannot use still imports, but the user hears why
    it will sound different. A missing voice per language is fine (said once in a call)."""
    main = found.voice.name
    if main and (problem := voice_problem(main, settings.paths.models_dir)):
        print(f"warning: {found.name}'s {problem}", file=sys.stderr, flush=True)
    for language, voice in found.voices.items():
        if voice != main and not voice_known(voice):
            print(
                f"warning: {found.name}'s voice for {language}, {voice!r}, is unknown; "
                "`voice-companion voices list` shows every voice",
                file=sys.stderr,
                flush=True,
            )


def memory(args: argparse.Namespace, settings: Settings) -> dict:
    companion = open_companion(settings, args.companion)
    try:
        if args.action == "recall":
            return _recall(args, settings, companion)
        return _memory(args, companion, settings)
    finally:
        companion.close()


def _recall(args: argparse.Namespace, settings: Settings, companion: Companion) -> dict:
    """Exactly what rides with a message into the prompt (beyond the window's own turns
    and system message), from a session that reads the memory and writes nothing."""
    conversation = companion.conversation(settings, keep=False)
    try:
        if args.message is not None:
            messages = [args.message]
        elif sys.stdin.isatty():
            raise CompanionError('say what to recall for: voice-companion memory recall "When did I plant tomatoes?"')
        else:
            messages = [line.strip() for line in sys.stdin if line.strip()]
            if not messages:
                raise CompanionError("nothing to recall for: stdin was empty (give a MESSAGE, or one message a line)")
        results = []
        for message in messages:
            note = conversation.prompt_for(message)[-1].context
            result = {"message": message, "recall": note, "lines": [line for line in note.splitlines() if line]}
            results.append(result)
            if args.json and args.message is None:
                print(json.dumps(result, ensure_ascii=False), flush=True)  # one JSON object a line
            elif not args.json:
                print(
                    f"{message}\n" + ("\n".join(f"  {line}" for line in result["lines"]) or "  (nothing)"), flush=True
                )
    finally:
        conversation.close()
    if args.json and args.message is None:
        args.json = False  # printed a line each already
    return results[0] if len(results) == 1 and args.message is not None else {"recalls": results}


def _memory(args: argparse.Namespace, companion: Companion, settings: Settings) -> dict:
    store = companion.store
    if args.action == "list":
        items = store.memories()
        for m in items:
            _out(args, _line(m))
        if not items:
            _out(args, f"{companion.persona.name} has no memories yet")
        return {"companion": companion.id, "memories": [_row(m) for m in items], "turns": store.turn_count()}
    if args.action == "search":
        found = Retriever(store, vectors=companion.vectors(settings)).recall(args.query, k=10)
        for r in found:
            _out(args, f"{r.source:<6} {r.id:>6}  {r.score:.2f}  {r.text}")
        return {
            "companion": companion.id,
            "query": args.query,
            "results": [{"source": r.source, "id": r.id, "score": round(r.score, 3), "text": r.text} for r in found],
        }
    if args.action == "add":
        added = store.add_memory("note", args.text, importance=0.9, confidence=1.0)
        _out(args, _line(added))
        return {"companion": companion.id, "memory": _row(added)}
    if args.action == "edit":
        if not any(m.id == args.id for m in store.memories()):
            raise CompanionError(f"no memory {args.id}; `voice-companion memory list` shows the ids")
        edited = store.update_memory(args.id, args.text)
        _prompt_changed(companion)
        _out(args, _line(edited))
        return {"companion": companion.id, "memory": _row(edited)}
    if args.all:
        if not _confirm_forget_all(args, companion):
            _out(args, "nothing forgotten")
            return {"companion": companion.id, "forgotten": None}
        store.forget_all()
        _prompt_changed(companion)
        _out(args, f"{companion.persona.name} forgot everything: memories and history")
        return {"companion": companion.id, "forgotten": "all"}
    if args.id is None:
        raise CompanionError("say which memory: voice-companion memory forget ID (or --all)")
    if not store.forget(args.id):
        raise CompanionError(f"no memory {args.id}; `voice-companion memory list` shows the ids")
    _prompt_changed(companion)
    _out(args, f"forgot memory {args.id}")
    return {"companion": companion.id, "forgotten": args.id}


def _confirm_forget_all(args: argparse.Namespace, companion: Companion) -> bool:
    """Erasing everything cannot be undone: ask at a terminal; elsewhere only --yes does it.
    The question goes to stderr, so stdout stays one JSON object with --json."""
    if args.yes:
        return True
    what = f"everything {companion.persona.name} remembers and your whole history together"
    if not sys.stdin.isatty():
        raise CompanionError(f"forget --all erases {what}; pass --yes to confirm")
    print(f"Forget {what}? This cannot be undone. [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _prompt_changed(companion: Companion) -> None:
    """What the user edited or took back leaves the prompt now: the next session builds a
    new window, and no saved LLM state holds the old words."""
    window.reset(companion.store)
    llm_state.remove(companion.state_dir)


def _row(m: Memory) -> dict:
    return {
        "id": m.id,
        "kind": m.kind,
        "text": m.text,
        "importance": m.importance,
        "confidence": m.confidence,
        "source_turn": m.source_turn,
        "time": m.time,
    }


def _line(m: Memory) -> str:
    when = time.strftime("%Y-%m-%d", time.localtime(m.time))
    return f"{m.id:>5}  {m.kind:<7} {when}  {m.text}"


def export_command(args: argparse.Namespace, settings: Settings) -> dict:
    companion = open_companion(settings, args.companion)
    try:
        manifest = portability.export_companion(companion, args.file)
    finally:
        companion.close()
    counts = manifest["counts"]
    _out(
        args,
        f"wrote {companion.persona.name} to {args.file}: {counts['memories']} memories, "
        f"{counts['turns']} turns, {counts['sessions']} sessions",
    )
    return {**manifest, "file": str(args.file)}


def import_command(args: argparse.Namespace, settings: Settings) -> dict:
    result = portability.import_companion(
        settings.paths.data_dir, args.file, args.as_name, args.replace, settings.memory.database_url
    )
    _out(
        args,
        f"imported {result['name']} as {result['id']!r}: {result['counts'].get('memories', 0)} memories, "
        f"{result['counts'].get('turns', 0)} turns",
    )
    return result


HANDLERS = {"persona": persona, "memory": memory, "export": export_command, "import": import_command}
