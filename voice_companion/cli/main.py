"""The `voice-companion` command line.

Every command has `--help`; `--json` prints exactly one JSON object on stdout
(one per line for `chat`) while logs go to stderr. A `CompanionError` becomes a
one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from voice_companion import __version__
from voice_companion.cli import commands, companion_commands, history_commands, server_commands, voice_commands
from voice_companion.companion.persona_settings import voice_problem
from voice_companion.core.config import apply_overrides, load_settings
from voice_companion.core.errors import CompanionError, ConfigError
from voice_companion.engines.models.tiers import TIERS
from voice_companion.engines.models.tiers import select as select_llm
from voice_companion.engines.tts import length_scale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-companion",
        description="Talk out loud with your AI companion — offline, on your own machine.",
        epilog="Run without a command to start: a live call when a microphone exists, "
        "otherwise a spoken demo exchange. "
        "`voice-companion COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="PATH", help="settings file (default: the user config dir's config.toml)")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="also the libraries' logs (each HTTP request `serve` answers, …)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    p = add("demo", "speak a sample question, answer it, write both WAVs and print timings")
    p.add_argument("--output-dir", default="voice-companion-demo", help="where question.wav and answer.wav go")
    _add_engine_flags(p)

    p = add("talk", "a live voice conversation with the microphone and speakers")
    p.add_argument("--input-device", help="microphone: index or name from `voice-companion devices`")
    p.add_argument("--output-device", help="speaker: index or name from `voice-companion devices`")
    echo = p.add_mutually_exclusive_group()
    echo.add_argument("--headset", action="store_true", help="no echo cancellation (headphones)")
    echo.add_argument(
        "--half-duplex", action="store_true", help="mute the microphone while the companion talks (no barge-in)"
    )
    p.add_argument("--duration", type=float, help="hang up after this many seconds")
    p.add_argument("--language", help="the language you speak (default: detect)")
    p.add_argument("--no-greeting", action="store_true", help="the companion waits for you to speak first")
    _add_engine_flags(p)

    add("devices", "list audio input and output devices")

    p = add("transcribe", "print what is said in an audio file (WAV, FLAC, MP3, AIFF, OGG)")
    p.add_argument("file")
    p.add_argument("--language", help="e.g. en, zh, fr (default: detect)")
    p.add_argument("--stt-model", help="a model name from `voice-companion models list`")

    p = add("say", "speak text into a WAV file", json_flag=False)
    p.add_argument("text")
    p.add_argument("-o", "--output", required=True, help="WAV file to write")
    p.add_argument("--voice", help="a voice id from `voice-companion voices list`")
    p.add_argument("--speed", type=float, help="1.0 normal, 1.2 faster, 0.8 slower")

    p = add("reply", "answer a spoken question file with a spoken answer file")
    p.add_argument("-i", "--input", required=True, help="the question (audio file)")
    p.add_argument("-o", "--output", required=True, help="WAV file for the answer")
    p.add_argument("--language", help="the question's language (default: detect)")
    _add_engine_flags(p)

    p = add("chat", "type to the companion (stdin lines when not a terminal)")
    p.add_argument("--speak", action="store_true", help="also play each reply aloud")
    _add_engine_flags(p)

    p = add("models", "list installed and downloadable models, or download one")
    p.add_argument("action", nargs="?", default="list", choices=["list", "download"])
    p.add_argument("name", nargs="?", help="model to download")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("config", "show the effective configuration")
    p.add_argument("action", nargs="?", default="show", choices=["show"])

    server_commands.add_parsers(add, _add_engine_flags)
    companion_commands.add_parsers(add)
    history_commands.add_parsers(add)
    voice_commands.add_parsers(add)
    return parser


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voice", help="a voice id from `voice-companion voices list`")
    p.add_argument(
        "--llm", choices=list(TIERS), help="which brain (default: the best installed; see `voice-companion models`)"
    )
    p.add_argument("--llm-model", help="embedded GGUF model name or path (overrides --llm)")
    p.add_argument("--llm-backend", choices=["embedded", "openai"], help="where replies come from")
    p.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1")
    p.add_argument("--remote-model", help="model name on that server")
    p.add_argument(
        "--companion", help="which companion to talk with (default: the one in use; see `voice-companion persona list`)"
    )
    p.add_argument(
        "--database", metavar="URL", help="memories in PostgreSQL (postgresql://user@host/db) instead of SQLite files"
    )


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Map flags onto settings sections; a flag left unset changes nothing."""
    table = {
        "voice": ("tts", "voice"),
        "stt_model": ("stt", "model"),
        "speed": ("tts", "length_scale"),
        "llm_backend": ("llm", "backend"),
        "base_url": ("llm", "base_url"),
        "remote_model": ("llm", "remote_model"),
        "language": ("stt", "language"),
        "llm": ("llm", "tier"),
        "database": ("memory", "database_url"),
    }
    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key) in table.items():
        value = getattr(args, flag, None)
        if value is not None:
            if flag == "speed":
                value = length_scale(value)
            out.setdefault(section, {})[key] = value
    model = getattr(args, "llm_model", None)
    if model:
        key = "model_path" if model.endswith(".gguf") else "model"
        out.setdefault("llm", {})[key] = model
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:  # start: a live call when there is a microphone, else the demo
        args = parser.parse_args([*argv, "demo"])
        args.start = True
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # per-call chatter
        logging.getLogger("httpx").setLevel(logging.WARNING)  # llama.cpp slot requests on loopback
        logging.getLogger("websockets").setLevel(logging.WARNING)  # a line for every page and call served
    try:
        settings = load_settings(args.config)
        apply_overrides(settings, _overrides(args), source="command line")
        if getattr(args, "voice", None) and (problem := voice_problem(args.voice, settings.paths.models_dir)):
            raise ConfigError(problem)  # before any model loads
        if hasattr(args, "llm"):
            select_llm(settings)  # a missing brain fails now, before anything loads
        if hasattr(args, "llm") or args.command in ("say", "voices"):
            companion_commands.prepare(settings, args)  # the companion's name and voice
        result = commands.run(args.command, args, settings)
    except CompanionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if isinstance(result, dict) and getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False))
    return 0 if result is not False else 1
