"""What each CLI command does. Each returns a dict (printed as JSON with --json)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

from voice_companion.cli import companion_commands, history_commands, server_commands, voice_commands
from voice_companion.companion.companion import open_companion
from voice_companion.companion.memory.session_end import finish_session
from voice_companion.conversation.history import Conversation
from voice_companion.conversation.narration import speakable
from voice_companion.conversation.reply_length import shaped
from voice_companion.core.audio import load_for_stt, write_wav
from voice_companion.core.config import NotGiven, Settings, to_toml_line
from voice_companion.core.errors import CompanionError
from voice_companion.core.language import guess_language
from voice_companion.core.prompts import PERSONA
from voice_companion.engines import loader as engines
from voice_companion.engines.llm import ChatMessage, GenerationOptions, LLMBackend
from voice_companion.engines.loader import Engines
from voice_companion.engines.models import registry as models
from voice_companion.engines.models import tiers
from voice_companion.transports.files import Exchange, reply_to_file, write_demo_question


def run(command: str, args: argparse.Namespace, settings: Settings) -> Any:
    handler = {
        "demo": demo,
        "transcribe": transcribe,
        "say": say,
        "reply": reply,
        "chat": chat,
        "models": models_command,
        "config": config_command,
        "talk": talk,
        "devices": devices,
        "serve": server_commands.serve,
        "call": server_commands.call,
        **companion_commands.HANDLERS,
        **history_commands.HANDLERS,
        **voice_commands.HANDLERS,
    }[command]
    return handler(args, settings)


def _out(args: argparse.Namespace, text: str) -> None:
    """Human-readable output; suppressed when stdout carries JSON."""
    if not getattr(args, "json", False):
        print(text, flush=True)


def demo(args: argparse.Namespace, settings: Settings) -> dict:
    from voice_companion.transports.desk.devices import has_microphone

    if getattr(args, "start", False) and has_microphone():
        args.headset = args.half_duplex = args.no_greeting = False
        args.input_device = args.output_device = args.duration = None
        return talk(args, settings)
    eng = Engines(settings)
    out_dir = Path(args.output_dir)
    question = write_demo_question(eng, out_dir / "question.wav")
    _out(args, f"No microphone found: answering a sample question instead ({question}).")
    # The demo's sample question is not something the user said: nothing is kept.
    conversation = _conversation(settings, eng, args, keep=False)
    exchange = asyncio.run(reply_to_file(eng, conversation, question, out_dir / "answer.wav"))
    _print_exchange(args, exchange.as_dict())
    return {**exchange.as_dict(), "question": str(question), "load_s": eng.load_times.seconds}


def talk(args: argparse.Namespace, settings: Settings) -> dict:
    """A live call at the desk until Ctrl+C (or --duration)."""
    from voice_companion.cli.live_view import LiveView
    from voice_companion.conversation.session import Session, session_settings
    from voice_companion.transports.desk.devices import DeskAudio

    eng = Engines(settings)
    mode = "headset" if args.headset else "half_duplex" if args.half_duplex else "aec"
    view = LiveView(settings.companion.name, as_json=args.json)
    desk = DeskAudio(eng.tts.sample_rate, _device(args.input_device), _device(args.output_device), mode, view)
    desk.check()  # no usable microphone or speaker: say so before loading the rest
    _ = (eng.stt, eng.llm)  # load everything before the microphone opens
    conversation = _conversation(settings, eng, args)
    session = Session(
        eng.stt, eng.llm, eng.tts, desk, conversation, engines.generation_options(settings), session_settings(settings)
    )
    if not args.json:
        print(f"Talking with {settings.companion.name} ({mode}). Speak any time; Ctrl+C hangs up.", flush=True)

    async def call() -> None:
        if sys.stdin.isatty():
            from voice_companion.cli.desk_commands import HELP, read_commands

            read_commands(session, asyncio.get_running_loop())
            if not args.json:
                print(f"Type {HELP.removeprefix('commands: ')}", flush=True)
        if conversation.greeting and not getattr(args, "no_greeting", False):
            await session.say(conversation.greeting)  # it picks up the call
        try:
            await asyncio.wait_for(session.run(), timeout=args.duration)
        except TimeoutError:
            pass
        finally:
            await finish_session(conversation, eng.llm, settings.companion.name)

    asyncio.run(call())
    return {"turns": len(session.conversation.history) // 2}


def _device(value: str | None):
    return int(value) if value is not None and value.isdigit() else value


def devices(args: argparse.Namespace, settings: Settings) -> dict:
    from voice_companion.transports.desk.devices import list_devices

    rows = list_devices()
    for r in rows:
        _out(
            args,
            f"{r['index']:>3}  {r['name']:<40} in {r['inputs']:<3} out {r['outputs']:<3} {r['default_rate']:.0f} Hz",
        )
    if not rows:
        _out(args, "no audio devices found")
    return {"devices": rows}


def transcribe(args: argparse.Namespace, settings: Settings) -> dict:
    audio = load_for_stt(args.file)
    stt = engines.load_stt(settings)
    result = stt.transcribe(audio, settings.stt.language or None)
    _out(args, result.text)
    return {
        "text": result.text,
        "language": result.language,
        "duration_s": round(result.duration_s, 3),
        "stt_ms": round(result.stt_ms, 1),
    }


def say(args: argparse.Namespace, settings: Settings) -> dict:
    if not args.text.strip():
        raise CompanionError('nothing to say: give the text, e.g. voice-companion say "Hello there" -o hello.wav')
    tts = engines.load_tts(settings)
    if not tts.can_speak(args.text):
        raise CompanionError(
            "no installed voice reads Chinese characters, so this would be silence. Get a Chinese voice "
            "with: voice-companion voices download zh_CN-huayan-medium (then `voices list` shows it)"
        )
    audio = tts.synthesize_all(args.text)
    path = write_wav(args.output, audio, tts.sample_rate)
    print(f"wrote {path} ({len(audio) / tts.sample_rate:.2f} s at {tts.sample_rate} Hz)")
    return {}


def reply(args: argparse.Namespace, settings: Settings) -> dict:
    load_for_stt(args.input)  # a missing or broken question fails now, not after the models load
    eng = Engines(settings)
    conversation = _conversation(settings, eng, args)

    async def answer() -> Exchange:
        try:
            return await reply_to_file(eng, conversation, args.input, args.output)
        finally:
            await finish_session(conversation, eng.loaded_llm, settings.companion.name)

    exchange = asyncio.run(answer())
    _print_exchange(args, exchange.as_dict())
    return exchange.as_dict()


def chat(args: argparse.Namespace, settings: Settings) -> dict | None:
    """Typed conversation; one reply line per input line when stdin is piped. The whole
    conversation runs on one event loop (the LLM's HTTP client and slot guard live there)."""
    eng = Engines(settings)
    conversation = _conversation(settings, eng, args)
    ready = asyncio.Event()

    async def converse() -> None:
        try:
            await _chat(args, settings, eng, conversation, ready)
        finally:
            # Ctrl+C before the prompt was ready: saving its state would first read all of it.
            await finish_session(conversation, eng.loaded_llm if ready.is_set() else None, settings.companion.name)

    asyncio.run(converse())
    return None


async def _chat(
    args: argparse.Namespace, settings: Settings, eng: Engines, conversation: Conversation, ready: asyncio.Event
) -> None:
    ready_start = time.perf_counter()
    await conversation.warm_up(eng.llm)  # the saved state of its prompt, or a prefill now
    ready.set()
    ready_ms: float | None = (time.perf_counter() - ready_start) * 1000
    interactive = sys.stdin.isatty()
    if interactive and conversation.greeting:
        print(f"{settings.companion.name}> {conversation.greeting}", flush=True)
    options = engines.generation_options(settings)
    player = _player(eng) if args.speak else None
    lines = _stdin_lines()
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = await lines.get()
        if line is None:
            return
        text = line.strip()
        if not text:
            continue
        try:
            answer, timings = await _timed_reply(eng.llm, conversation.prompt_for(text, guess_language(text)), options)
        except CompanionError as exc:
            _emit_chat(args, {"error": str(exc)}, f"error: {exc}")
            continue  # the conversation goes on
        conversation.record(text, answer)
        if ready_ms is not None:  # the first reply also waited for the prompt to be ready
            timings["prompt_ready"], ready_ms = round(ready_ms, 1), None
        usage = eng.llm.last_usage
        _emit_chat(
            args,
            {
                "user": text,
                "reply": answer,
                "timings_ms": timings,
                "prefill_tokens": usage.processed if usage else None,
            },
            f"{settings.companion.name}> {answer}" if interactive else answer,
        )
        if player:  # its words, not its stage directions
            await asyncio.to_thread(player, speakable(answer, conversation.quoted_dialogue))


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin as they come (None at its end), read by a daemon thread: an
    executor thread blocked in readline would keep the process from exiting on Ctrl+C."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            pass  # the loop has closed: the conversation is over

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


async def _timed_reply(
    llm: LLMBackend, messages: list[ChatMessage], options: GenerationOptions
) -> tuple[str, dict[str, float | None]]:
    """The whole reply, with the time to its first token and to its end (ms)."""
    start = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    options = options.for_prompt(messages)
    async with aclosing(llm.stream(messages, options)) as deltas:
        async for delta in shaped(deltas, options.wrap_up_words):
            first = first if first is not None else (time.perf_counter() - start) * 1000
            parts.append(delta)
    total = (time.perf_counter() - start) * 1000
    return "".join(parts).strip(), {"llm_first_token": first and round(first, 1), "reply_total": round(total, 1)}


def _emit_chat(args: argparse.Namespace, obj: dict, text: str) -> None:
    print(json.dumps(obj, ensure_ascii=False) if args.json else text, flush=True)


def _player(eng: Engines):
    from voice_companion.transports.desk.playback import play

    return lambda text: play(eng.tts.synthesize_all(text), eng.tts.sample_rate, otherwise="drop --speak")


def models_command(args: argparse.Namespace, settings: Settings) -> dict:
    models_dir = settings.paths.models_dir
    if args.action == "download":
        if not args.name:
            raise CompanionError("say which model: voice-companion models download NAME")
        spec = models.get_spec(args.name)
        path = models.download(spec, models_dir, settings.download.endpoint(), not args.no_progress)
        _out(args, f"{spec.name} is ready at {path}")
        return {"name": spec.name, "path": str(path)}
    tier_rows, choice = tiers.describe(settings)
    _out(args, "LLM tiers (--llm NAME, or llm.tier in config.toml; * = used by default):")
    for t in tier_rows:
        where = t["source"] or "not installed"
        size = f"{t['size_mb']:>7.0f} MB" if t["size_mb"] else " " * 10
        extra = f"  install: {t['install']}" if t["install"] else ""
        _out(
            args,
            f"{'*' if t['default'] else ' '} {t['name']:<7} {t['model']:<28} {where:<13} {size}  {t['speed']}{extra}",
        )
    if choice:
        _out(args, f"  ({choice.notice})")
    rows = []
    for spec in models.REGISTRY.values():
        source = models.availability(spec, models_dir)  # lists without assembling anything
        current = models.current_path(spec, models_dir)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "installed": source is not None,
                "source": models.source_of(spec),
                "path": str(current) if current else None,
                "size_mb": round(spec.total_size / 1e6, 1) if spec.total_size else None,
                "description": spec.description,
            }
        )
    _out(args, "\nModels:")
    for r in rows:
        state = "installed" if r["installed"] else "not installed"
        size = f"{r['size_mb']:>7} MB" if r["size_mb"] else "        ? "
        _out(args, f"{r['name']:<28} {r['kind']:<4} {state:<14} {r['source']:<9} {size}  {r['description']}")
    _out(args, f"\ncache: {models_dir}\ndownload one with: voice-companion models download NAME")
    return {
        "tiers": tier_rows,
        "default_tier": choice.tier.name if choice and choice.tier else None,
        "models": rows,
        "cache_dir": str(models_dir),
    }


def config_command(args: argparse.Namespace, settings: Settings) -> dict:
    """Every effective value, and where each one that is not the default came from."""
    sections = settings.as_dict()
    origins = {key: origin for key, origin in settings.origins.items()}
    for key, (value, origin) in tiers.tier_values(settings).items():
        section, name = key.split(".")
        sections[section][name] = value
        origins[key] = origin
    if isinstance(settings.companion.persona, NotGiven):  # each persona's, in its own language
        sections["companion"]["persona"] = PERSONA
        origins["companion.persona"] = "built-in: core/prompts.py, in the persona's language"
    lines = [f"# config file: {settings.paths.config_file}"]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            given = origins.get(f"{section}.{key}")
            lines.append(to_toml_line(key, value) + (f"  # {given}" if given else ""))
        lines.append("")
    _out(args, "\n".join(lines))
    return {**sections, "origins": origins}


def _conversation(settings: Settings, eng: Engines, args: argparse.Namespace, keep: bool = True) -> Conversation:
    """A new session of the companion `prepare` chose (cli.py), with its memory; the
    command ends it (session_end.end_session). `keep=False`: it remembers nothing."""
    companion = open_companion(settings, getattr(args, "companion", None))
    return companion.conversation(settings, eng.llm, keep=keep)


def _print_exchange(args: argparse.Namespace, d: dict) -> None:
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in d["timings_ms"].items() if v is not None)
    _out(
        args,
        f"you said:   {d['transcript']}\ncompanion:  {d['reply']}\nanswer:     {d['output']} "
        f"({d['audio_s']:.1f} s)\ntimings:    {timings}",
    )
