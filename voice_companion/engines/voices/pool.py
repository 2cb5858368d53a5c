"""Loaded voices (Piper's and the offline ones), shared by every call and kept while recently used (LRU).

Swapping back to a voice used a moment ago costs nothing; a new one costs its load
time (~0.6 s for a medium voice on 2 cores), once. A voice loads outside the lock, so
calls speaking with voices already loaded never wait for another call's load.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

from voice_companion.core.errors import CompanionError
from voice_companion.engines.models import checks as model_checks
from voice_companion.engines.tts import LoadedVoice, PiperTTS
from voice_companion.engines.voices import offline
from voice_companion.engines.voices.install import resolve_voice

Voice = LoadedVoice  # a Piper voice, or an offline one (engines/voices/offline.py)

log = logging.getLogger(__name__)


class VoicePool:
    def __init__(self, models_dir: Path, capacity: int = 3, threads: int = 2) -> None:
        self.models_dir, self.capacity, self.threads = models_dir, max(1, capacity), threads
        self.load_s: dict[str, float] = {}  # how long each voice took to load, last time
        self._loaded: collections.OrderedDict[str, Voice] = collections.OrderedDict()
        self.broken: dict[str, str] = {}  # voices whose files failed to load, and why
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def add(self, name: str, tts: Voice) -> None:
        """A voice loaded elsewhere (e.g. from `tts.voice_path`) under this name."""
        with self._lock:
            self._loaded[name] = tts
            self._evict()

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return name in self._loaded

    def get(self, name: str) -> Voice:
        """The loaded voice, loading it first when needed (blocking: call from a thread)."""
        while True:
            with self._lock:
                if name in self._loaded:
                    self._loaded.move_to_end(name)
                    return self._loaded[name]
                waiting = self._loading.get(name)
                if waiting is None:
                    self._loading[name] = threading.Event()
                    break
            waiting.wait()  # another call is loading it; then look again
        try:
            start = time.perf_counter()
            known = offline.find(name)
            tts = self._load_offline(known) if known is not None else self._load_piper(name)
            self.load_s[name] = time.perf_counter() - start
            log.info("loaded voice %s in %.2f s", name, self.load_s[name])
            with self._lock:
                self._loaded[name] = tts
                self._evict()
            return tts
        finally:
            with self._lock:
                self._loading.pop(name).set()

    def _load_piper(self, name: str) -> PiperTTS:
        path = resolve_voice(name, self.models_dir)
        downloaded = Path(path).resolve().is_relative_to(Path(self.models_dir).resolve())
        fix = (
            f"get it again: `voice-companion voices remove {name}`, then `voices download {name}`"
            if downloaded
            else model_checks.FIX
        )  # a bundled voice: reinstall its package
        try:  # a damaged file fails inside onnxruntime: say which voice and what to do
            return model_checks.load_checked("Piper voice", path, lambda: PiperTTS(path, threads=self.threads), fix)
        except CompanionError as exc:
            self.broken[name] = str(exc)
            raise

    def _load_offline(self, voice: offline.OfflineVoice) -> Voice:
        """A voice of the install (Kokoro's Chinese, Festival's English): no download."""
        try:
            return offline.load(voice, self.models_dir, self.threads)
        except CompanionError as exc:
            self.broken[voice.id] = str(exc)
            raise

    def _evict(self) -> None:
        while len(self._loaded) > self.capacity:
            name, _ = self._loaded.popitem(last=False)
            log.info("unloaded voice %s (least recently used)", name)
