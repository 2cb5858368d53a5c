"""The desk: microphone and speakers through PortAudio (sounddevice).

Two streams: the microphone at 16 kHz, the speaker at the voice's rate. The
speaker callback pulls from the shared `PlaybackBuffer` and keeps what it played
as the echo canceller's reference. Modes: echo cancellation (default, for plain
speakers), `headset` (no echo possible, nothing to cancel) and `half_duplex` (the
microphone is muted while the companion talks: no barge-in, but no echo either,
for machines where cancellation is not enough).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import soxr

from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.core.audio import STT_RATE
from voice_companion.core.errors import CompanionError
from voice_companion.core.events import Event

BLOCK_MS = 20


def sounddevice_module():
    """Import sounddevice with a message a person can act on."""
    try:
        import sounddevice
    except OSError as exc:
        raise CompanionError("PortAudio is not installed; install it with: sudo apt-get install libportaudio2") from exc
    return sounddevice


def list_devices() -> list[dict]:
    sd = sounddevice_module()
    rows = []
    for index, dev in enumerate(sd.query_devices()):
        rows.append(
            {
                "index": index,
                "name": dev["name"],
                "inputs": dev["max_input_channels"],
                "outputs": dev["max_output_channels"],
                "default_rate": dev["default_samplerate"],
            }
        )
    return rows


def has_microphone() -> bool:
    try:
        sd = sounddevice_module()
        return any(d["max_input_channels"] > 0 for d in sd.query_devices())
    except Exception:  # noqa: BLE001 - no PortAudio, no devices: no microphone
        return False


class DeskAudio:
    def __init__(
        self,
        output_rate: int,
        input_device=None,
        output_device=None,
        mode: str = "aec",
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if mode not in ("aec", "headset", "half_duplex"):
            raise CompanionError(f"unknown echo mode {mode!r}; use aec, headset or half_duplex")
        self.sd = sounddevice_module()
        self.playback = PlaybackBuffer(output_rate)
        self.output_rate = output_rate
        self.input_device, self.output_device, self.mode = input_device, output_device, mode
        self.on_event = on_event
        self._canceller = None
        if mode == "aec":
            from voice_companion.transports.desk.echo import EchoCanceller

            self._canceller = EchoCanceller()
        self._reference = np.zeros(0, dtype=np.float32)
        self._to_16k = soxr.ResampleStream(output_rate, STT_RATE, 1, dtype="float32")
        self._speaker_pacer = _Pacer(BLOCK_MS / 1000)

    def check(self) -> None:
        """Fail before the call is announced ("Speak any time") when a device cannot work."""
        try:
            self.sd.check_input_settings(self.input_device, channels=1, dtype="float32", samplerate=STT_RATE)
            self.sd.check_output_settings(self.output_device, channels=1, dtype="int16", samplerate=self.output_rate)
        except (self.sd.PortAudioError, ValueError) as exc:
            raise _cannot_open(exc) from exc

    def _speaker_callback(self, outdata, frames, time_info, status) -> None:
        self._speaker_pacer.wait()
        block = self.playback.pull(frames)
        outdata[:, 0] = block
        if self._canceller is not None:
            fresh = self._to_16k.resample_chunk(block.astype(np.float32) / 32768)
            self._reference = np.concatenate([self._reference, fresh])[-STT_RATE:]

    def _take_reference(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        take = min(n, len(self._reference))
        out[:take] = self._reference[:take]
        self._reference = self._reference[take:]
        return out

    async def mic_frames(self) -> AsyncIterator[tuple[np.ndarray, float]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=200)
        block = STT_RATE * BLOCK_MS // 1000

        mic_pacer = _Pacer(BLOCK_MS / 1000)

        def on_mic(indata, frames, time_info, status) -> None:
            mic_pacer.wait()
            loop.call_soon_threadsafe(_put_latest, queue, indata[:, 0].copy())

        try:
            mic = self.sd.InputStream(
                samplerate=STT_RATE,
                channels=1,
                dtype="float32",
                blocksize=block,
                device=self.input_device,
                callback=on_mic,
            )
            speaker = self.sd.OutputStream(
                samplerate=self.output_rate,
                channels=1,
                dtype="int16",
                blocksize=self.output_rate * BLOCK_MS // 1000,
                device=self.output_device,
                callback=self._speaker_callback,
            )
        except (self.sd.PortAudioError, ValueError) as exc:
            raise _cannot_open(exc) from exc
        with mic, speaker:
            while True:
                samples = await queue.get()
                if self.mode == "half_duplex" and self.playback.pending():
                    samples = np.zeros_like(samples)
                elif self._canceller is not None:
                    samples = self._canceller.process(samples, self._take_reference(len(samples)))
                yield samples, time.perf_counter()

    async def emit(self, event: Event) -> None:
        if self.on_event:
            self.on_event(event)


def _cannot_open(exc: Exception) -> CompanionError:
    return CompanionError(
        f"cannot open the audio devices ({exc}); see `voice-companion devices` and pass --input-device/--output-device"
    )


def _put_latest(queue: asyncio.Queue, item: np.ndarray) -> None:
    """Never block the audio thread: if the session falls behind, drop the oldest block."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class _Pacer:
    """Hold a callback thread back when a (virtual) device runs ahead of real time.

    Real sound cards call back once per block and never wait here; ALSA's file
    plugin delivers as fast as it can, which would race through a conversation.
    A lead of up to 100 ms is allowed so a device's initial burst never stalls.
    """

    def __init__(self, block_s: float, lead_s: float = 0.1) -> None:
        self.block_s, self.lead_s = block_s, lead_s
        self.start: float | None = None
        self.blocks = 0

    def wait(self) -> None:
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        self.blocks += 1
        ahead = self.start + self.blocks * self.block_s - now
        if ahead > self.lead_s:
            time.sleep(ahead - self.lead_s)
