"""A phone asks the computer it calls to download a voice it lacks (issue 18).

The call screen cannot run `voices download` on the computer, and a phone user should
not need a terminal: when a reply's language has no voice here, the `voice_missing`
notice offers the catalog voice for it, but only when this computer can reach the
voice hub right now (a 3 s probe), and the call screen's button sends `voice.download`.
The download is the terminal's own (engines/voices/install.py: verified, resumable,
installed in one step); every call on this server that asks for the same voice
shares one download and its progress. The call's token is the permission, as for
everything else on this server; `download.phone_downloads = false` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from voice_companion.core.errors import CompanionError, DownloadError
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.models.download import hf_file_url
from voice_companion.engines.voices.install import install, installed_path

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0  # a computer that is offline is told in this long, not after a 30 s timeout

Progress = Callable[[int, int], None]  # (bytes received, bytes in all)


@dataclass
class VoiceDownloads:
    models_dir: Path
    endpoint: str
    allowed: bool = True
    _running: dict[str, asyncio.Task[Path]] = field(default_factory=dict)
    _listeners: dict[str, list[Progress]] = field(default_factory=dict)

    def wanted(self, language: str, preferred: dict[str, str]) -> catalog.Voice | None:
        """The voice to offer for `language`: the persona's for it if the catalog has
        it, else the catalog's first; None when nothing is to be downloaded."""
        family = catalog.language_family(language)
        voices = catalog.for_language(family)
        chosen = next((v for v in voices if v.id == preferred.get(family)), voices[0] if voices else None)
        if chosen is None or installed_path(chosen, self.models_dir) is not None:
            return None
        return chosen

    async def offer(self, language: str, preferred: dict[str, str]) -> dict | None:
        """What the notice offers ({voice, size_bytes}), or None: downloads off, nothing
        to download, or the hub out of reach from this computer."""
        if not self.allowed:
            return None
        try:
            voice = self.wanted(language, preferred)
        except CompanionError:  # no readable catalog
            return None
        if voice is None or not await asyncio.to_thread(self._reachable, voice):
            return None
        return {"voice": voice.id, "name": voice.name, "size_bytes": sum(f.size or 0 for f in voice.files)}

    def _reachable(self, voice: catalog.Voice) -> bool:
        config = next(f for f in voice.files if f.name.endswith(".json"))
        url = hf_file_url(self.endpoint, voice.hub_repo, config.path, voice.hub_revision)
        try:
            with httpx.Client(follow_redirects=True, timeout=PROBE_TIMEOUT_S) as client:
                with client.stream("GET", url) as response:  # the headers only: the body is never read
                    return response.status_code == 200
        except httpx.HTTPError as exc:
            log.info("not offering %s to the phone: %s is out of reach (%s)", voice.id, self.endpoint, exc)
            return False

    async def download(self, voice_id: str, progress: Progress) -> Path:
        """Install `voice_id`, reporting progress; DownloadError/CompanionError say why not."""
        if not self.allowed:
            raise DownloadError("downloads from the phone are turned off here (download.phone_downloads)")
        voice = catalog.get(voice_id)  # ModelNotAvailable for an unknown id
        self._listeners.setdefault(voice_id, []).append(progress)
        try:
            task = self._running.get(voice_id)
            if task is None:
                task = asyncio.ensure_future(self._install(voice))
                self._running[voice_id] = task
                task.add_done_callback(lambda _: self._running.pop(voice_id, None))
            return await asyncio.shield(task)
        finally:
            self._listeners[voice_id].remove(progress)

    async def _install(self, voice: catalog.Voice) -> Path:
        loop = asyncio.get_running_loop()

        def report(done: int, total: int) -> None:  # on the download's thread
            loop.call_soon_threadsafe(self._report, voice.id, done, total)

        log.info("the phone asked for voice %s: downloading it", voice.id)
        path = await asyncio.to_thread(install, voice, self.models_dir, self.endpoint, False, report)
        log.info("voice %s is installed (%s)", voice.id, path)
        return path

    def _report(self, voice_id: str, done: int, total: int) -> None:
        for listener in list(self._listeners.get(voice_id, ())):
            listener(done, total)
