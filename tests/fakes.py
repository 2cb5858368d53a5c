"""The fast lane: fake STT, LLM and TTS on a virtual clock, so turn-taking runs in milliseconds.

The real session (VAD, endpointing, speculation, barge-in, echo checks) talks through
the virtual sound card as in tests/test_session.py, but to engines that take no CPU
and whose latencies are scripted, and on an event loop whose clock jumps to the next
timer instead of sleeping: 10 s of a call run in a few hundred milliseconds, and the
same way on every run (modelled on LiveKit Agents' tests/test_agent_session.py).

The fakes share a toy speech code, `FakeVoice`: each distinct word is a tone of its
own pitch, which webrtcvad takes for speech. FakeTTS speaks replies in it and FakeSTT
decodes whatever reached the microphone, so a transcript holds exactly the words the
microphone heard: the user's, or the companion's own voice coming back as echo.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from unittest import mock

import numpy as np

from voice_companion.conversation.history import Conversation
from voice_companion.conversation.session import Session, SessionSettings
from voice_companion.core.audio import STT_RATE
from voice_companion.core.events import Event
from voice_companion.engines.llm import CpuGate, GenerationOptions, LLMBase
from voice_companion.engines.stt import Transcript
from voice_companion.engines.tts import TextToSpeech
from voice_companion.transports.desk.virtual import EchoPath, VirtualAudioDevice

# -- virtual time ------------------------------------------------------------------------

IDLE_LIMIT_S = 5.0  # real seconds to wait for another thread before calling it a deadlock


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run.

    Nothing but a timer can wake a loop with no ready callbacks (the fakes do no I/O and
    start no threads), so jumping is exactly what sleeping would have done, minus the wait.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._real_select = self._selector.select
        self._selector.select = self._select

    def time(self) -> float:
        return self._now

    def _select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real_select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only another thread could still wake us
            ready = self._real_select(IDLE_LIMIT_S)
            if not ready:
                raise RuntimeError("virtual-time loop idle: every task waits for something that never comes")
            return ready
        self._now += timeout
        return ready


async def virtual_to_thread(func: Callable, /, *args, **kwargs):
    """`asyncio.to_thread` on virtual time: a fake engine's blocking call runs at once, and
    its answer comes the engine's `latency_s` later, the same moment on every run."""
    result = func(*args, **kwargs)
    await asyncio.sleep(getattr(getattr(func, "__self__", None), "latency_s", 0.0))
    return result


# -- the toy speech code -----------------------------------------------------------------

_FRAME = STT_RATE // 50  # 20 ms analysis frames: 50 Hz FFT bins
_FIRST_BIN, _BIN_STEP = 6, 2  # pitches 300, 400, ... Hz: a Hann window keeps neighbours apart
_MAX_WORDS = 37  # up to 3.9 kHz: webrtcvad at 16 kHz only looks below 4 kHz
_LOUD_RMS = 0.01  # quieter frames are gaps between words


class FakeVoice:
    """Each distinct word is a tone of its own pitch: `word_s` of tone, `gap_s` of silence."""

    def __init__(self, word_s: float = 0.1, gap_s: float = 0.04, level: float = 0.3) -> None:
        self.word_s, self.gap_s, self.level = word_s, gap_s, level
        self.words: list[str] = []  # word i sounds at (6 + 2i) * 50 Hz

    def duration_s(self, text: str) -> float:
        """How long `text` takes to say, to the end of its last word."""
        n = len(text.split())
        return n * (self.word_s + self.gap_s) - self.gap_s if n else 0.0

    def speak(self, text: str) -> np.ndarray:
        """16 kHz float32 audio of `text`, each word followed by its gap."""
        t = np.arange(int(self.word_s * STT_RATE)) / STT_RATE
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms ramps: no clicks
        gap = np.zeros(int(self.gap_s * STT_RATE))
        pieces = []
        for word in text.split():
            pieces += [self.level * fade * np.sin(2 * np.pi * self._bin(word) * 50 * t), gap]
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, dtype=np.float32)

    def hear(self, audio: np.ndarray) -> str:
        """The words in `audio`: the strongest known pitch of each loud frame, one word per run."""
        audio = np.asarray(audio)
        audio = audio / 32768 if audio.dtype == np.int16 else audio.astype(np.float64)  # speaker or microphone
        bins = [_FIRST_BIN + _BIN_STEP * i for i in range(len(self.words))]
        window = np.hanning(_FRAME)
        heard: list[str] = []
        last = None
        for start in range(0, len(audio) - _FRAME + 1, _FRAME):
            frame = audio[start : start + _FRAME]
            spectrum = np.abs(np.fft.rfft(frame * window))
            best = int(np.argmax(spectrum[bins])) if bins else 0
            # a word is one clear pitch; noise (or silence) has none
            tonal = bool(bins) and spectrum[bins[best]] > 10 * np.median(spectrum)
            if np.sqrt(np.mean(frame**2)) < _LOUD_RMS or not tonal:
                last = None
                continue
            if best != last:
                heard.append(self.words[best])
            last = best
        return " ".join(heard)

    def _bin(self, word: str) -> int:
        if word not in self.words:
            if len(self.words) == _MAX_WORDS:
                raise ValueError(f"FakeVoice knows {_MAX_WORDS} words at most: use fewer distinct words in a test")
            self.words.append(word)
        return _FIRST_BIN + _BIN_STEP * self.words.index(word)


# -- the engines ---------------------------------------------------------------------------


class FakeSTT:
    """Whisper's stand-in: the FakeVoice words in the audio, `latency_s` of virtual time later."""

    def __init__(self, voice: FakeVoice, latency_s: float = 0.1, language: str = "en") -> None:
        self.voice, self.latency_s, self.language = voice, latency_s, language
        self.heard: list[str] = []  # every transcription, speculative ones too

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        text = self.voice.hear(audio)
        self.heard.append(text)
        no_speech = 0.0 if text else 0.9  # like Whisper on a cough: no words, and it knows it
        return Transcript(text, language or self.language, 1.0, len(audio) / STT_RATE, self.latency_s * 1000, no_speech)


class FakeLLM(LLMBase):
    """Streams a scripted reply word by word: the first after `first_token_s`, then one
    every `token_s`. `reply` is the text, or a function of the user's words. A prefill
    with `should_stop` takes `prefill_steps` steps of `prefill_step_s`, like llama.cpp's
    short steps, and gives way between two."""

    name = "fake"

    def __init__(
        self,
        reply: str | Callable[[str], str] = "Okay.",
        first_token_s: float = 0.2,
        token_s: float = 0.02,
        prefill_step_s: float = 0.0,
        prefill_steps: int = 0,
    ) -> None:
        self.reply, self.first_token_s, self.token_s = reply, first_token_s, token_s
        self.prefill_step_s, self.prefill_steps = prefill_step_s, prefill_steps
        self.asked: list[str] = []  # the user's words of every request, speculative ones too
        self.prefilled: list[tuple[str, bool]] = []  # (last message, finished) of every prefill

    async def prefill(
        self, messages: Sequence, should_stop: Callable[[], bool] | None = None, ahead: bool = False
    ) -> bool:
        steps = self.prefill_steps if should_stop is not None else 0
        for _ in range(steps):
            if should_stop is not None and should_stop():
                self.prefilled.append((messages[-1].content, False))
                return False
            await asyncio.sleep(self.prefill_step_s)
        self.prefilled.append((messages[-1].content, True))
        return True

    async def stream(
        self, messages: Sequence, options: GenerationOptions | None = None, gate: CpuGate | None = None
    ) -> AsyncIterator[str]:
        user = messages[-1].content
        self.asked.append(user)
        reply = self.reply(user) if callable(self.reply) else self.reply
        await asyncio.sleep(self.first_token_s)
        for i, word in enumerate(reply.split()):
            if i:
                await asyncio.sleep(self.token_s)
            yield word if i == 0 else " " + word


class FakeTTS(TextToSpeech):
    """Piper's stand-in: FakeVoice audio (length proportional to the words), `latency_s` later."""

    sample_rate = STT_RATE

    def __init__(self, voice: FakeVoice, latency_s: float = 0.05) -> None:
        self.voice, self.latency_s = voice, latency_s

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        audio = self.voice.speak(text)
        if len(audio):
            yield np.round(audio * 32767).astype(np.int16)


# -- a whole call ----------------------------------------------------------------------------


class FakeCall:
    """Script what the user says when, run the real Session to the end on virtual time,
    then read what happened (events with their virtual times, the history, the speaker)."""

    def __init__(
        self,
        duration_s: float,
        reply: str | Callable[[str], str] = "Okay.",
        *,
        stt_latency_s: float = 0.1,
        first_token_s: float = 0.2,
        token_s: float = 0.02,
        prefill_step_s: float = 0.0,
        prefill_steps: int = 0,
        tts_latency_s: float = 0.05,
        echo: EchoPath | None = None,
        settings: SessionSettings | None = None,
    ) -> None:
        self.duration_s, self.echo, self.settings = duration_s, echo, settings
        self.voice = FakeVoice()
        self.stt = FakeSTT(self.voice, stt_latency_s)
        self.llm = FakeLLM(reply, first_token_s, token_s, prefill_step_s, prefill_steps)
        self.tts = FakeTTS(self.voice, tts_latency_s)
        self.conversation = Conversation("You are a test companion.")
        self.said: list[tuple[float, str]] = []
        self.sounds: list[tuple[float, np.ndarray]] = []
        self.typed: list[tuple[float, str]] = []
        self.device: VirtualAudioDevice | None = None

    def say(self, at_s: float, text: str) -> float:
        """The user says `text` from `at_s` seconds on; returns when their last word ends."""
        self.said.append((at_s, text))
        return at_s + self.voice.duration_s(text)

    def sound(self, at_s: float, audio: np.ndarray) -> None:
        """Other 16 kHz audio (a noise) reaches the microphone from `at_s` seconds on."""
        self.sounds.append((at_s, audio))

    def type_text(self, at_s: float, text: str) -> None:
        """The user types `text` at `at_s` seconds (the web client's text box)."""
        self.typed.append((at_s, text))

    def run(self) -> FakeCall:
        async def call() -> None:
            clock = asyncio.get_running_loop().time
            self.device = VirtualAudioDevice(self.tts.sample_rate, self.duration_s, echo=self.echo, clock=clock)
            for at_s, text in self.said:
                self.device.say(at_s, self.voice.speak(text))
            for at_s, audio in self.sounds:
                self.device.say(at_s, audio)
            session = Session(self.stt, self.llm, self.tts, self.device, self.conversation, settings=self.settings)
            typing = [asyncio.ensure_future(self._type_at(session, at_s, text)) for at_s, text in self.typed]
            await session.run()
            await asyncio.gather(*typing)

        with mock.patch("asyncio.to_thread", virtual_to_thread), asyncio.Runner(loop_factory=VirtualTimeLoop) as r:
            r.run(call())
        return self

    @staticmethod
    async def _type_at(session: Session, at_s: float, text: str) -> None:
        await asyncio.sleep(at_s)
        await session.respond_to_text(text)

    def events(self, cls: type[Event]) -> list[tuple[float, Event]]:
        """(virtual seconds, event) of every event of type `cls`."""
        assert self.device is not None, "run() the call first"
        return [(t, e) for t, e in self.device.events if isinstance(e, cls)]

    def of_type(self, cls: type[Event]) -> list:
        return [e for _, e in self.events(cls)]

    def times(self, cls: type[Event]) -> list[float]:
        return [t for t, _ in self.events(cls)]

    def speaker_words(self, from_s: float = 0.0, to_s: float | None = None) -> str:
        """The words that came out of the companion's speaker (between two virtual times)."""
        return self.voice.hear(self._speaker(from_s, to_s))

    def speaker_level(self, from_s: float, to_s: float) -> int:
        """Peak speaker level (int16) between two virtual times."""
        return int(np.abs(self._speaker(from_s, to_s).astype(np.int32)).max(initial=0))

    def _speaker(self, from_s: float, to_s: float | None) -> np.ndarray:
        assert self.device is not None, "run() the call first"
        rate = self.device.output_rate
        audio = self.device.speaker_audio()
        return audio[int(from_s * rate) : None if to_s is None else int(to_s * rate)]
