"""A live conversation: turn-taking, speculation and barge-in over any transport.

The transport (desk sound card, virtual device, WebSocket) supplies microphone
blocks and a playback buffer; the session never knows which one it talks to.

- Listening: webrtcvad finds speech; a pre-roll keeps its first syllable.
- Speculation: once the user has paused `speculative_after_ms`, the utterance is
  transcribed and a reply starts generating with its audio held back. If the
  user goes on, both are thrown away; if the pause becomes the end of the turn,
  the held audio plays at once.
- End of turn: how long a pause must last depends on what was said and how long
  the user has spoken (`endpointing.end_of_turn_silence_ms`).
- Resume, don't barge in: if the user goes on within `resume_window_ms` of the
  turn's end, the reply stops at once and is dropped as if never said, and the
  words join the same turn (transcribed whole). Replies are recorded only once
  that window has passed.
- Barge-in: user speech while the companion talks pauses playback on the very
  next audio block. If the interruption turns out to be noise or a backchannel
  ("mhm", "嗯"), playback resumes; otherwise the reply is cancelled and the
  history keeps only what was heard, marked as interrupted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from voice_companion.conversation import endpointing
from voice_companion.conversation.history import Conversation
from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.conversation.response import Response, run_response
from voice_companion.conversation.vad import SpeechDetector
from voice_companion.core.audio import STT_RATE
from voice_companion.core.config import (
    EndpointSettings,
    Settings,
    TurnSettings,
    VadSettings,
    barge_in_vad,
    given,
)
from voice_companion.core.errors import CompanionError
from voice_companion.core.events import (
    ErrorEvent,
    Event,
    Notice,
    PlaybackPaused,
    PlaybackResumed,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TranscriptPartial,
    TurnMetrics,
)
from voice_companion.core.language import HAN_CHAR, guess_language, word_units
from voice_companion.engines.llm import GenerationOptions, LLMBackend, ScriptedLine
from voice_companion.engines.models import tiers
from voice_companion.engines.stt import SpeechToText, Transcript
from voice_companion.engines.tts import TextToSpeech

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Cutting the companion off needs words Whisper is fairly sure of: a cough came out
# as "I" with a high no-speech probability, where "Stop." scores near 0.
INTERRUPT_MAX_NO_SPEECH = 0.3
# A long turn is transcribed in stretches split at its pauses: at a pause, only the audio
# since an earlier pause is read, at least this long (Whisper base drops words and makes
# some up on short windows: "wealth tax?" alone came out "Well, that is..."), starting this
# far back inside that pause.
SEGMENT_MIN_S = 2
SEGMENT_BACK_MS = 100


class AudioTransport(Protocol):
    playback: PlaybackBuffer

    def mic_frames(self) -> AsyncIterator[tuple[np.ndarray, float]]:
        """16 kHz mono float32 blocks, each with the time at its end on `playback.clock`."""
        ...

    async def emit(self, event: Event) -> None: ...


@dataclass(frozen=True)
class SessionSettings:
    """One call's turn-taking, resolved from Settings (core/config.py documents each
    value and the measurement behind it) and the brain's tier."""

    vad: VadSettings = field(default_factory=VadSettings)
    barge_in_vad: VadSettings = field(default_factory=barge_in_vad)  # while the companion talks
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    preroll_ms: int = TurnSettings.preroll_ms
    language: str | None = None  # None: detect per utterance
    speculative: bool = TurnSettings.speculative
    first_clause_max_words: int = 0
    prefill_while_speaking_ms: int = 0
    resume_window_ms: int = TurnSettings.resume_window_ms
    resume_max_played_ms: int = TurnSettings.resume_max_played_ms
    keep_unanswered_s: float = TurnSettings.keep_unanswered_s


def session_settings(settings: Settings) -> SessionSettings:
    """Live-call settings: the user's language plus what suits the chosen brain's speed."""
    choice = tiers.select(settings)
    live = choice.tier.live if choice.tier else tiers.LiveTuning()
    turns = settings.turns
    if settings.endpointing.policy not in ("fusion", "text"):
        raise CompanionError(f'endpointing.policy must be "fusion" or "text", not {settings.endpointing.policy!r}')
    return SessionSettings(
        vad=settings.vad,
        barge_in_vad=settings.barge_in,
        endpoint=settings.endpointing,
        preroll_ms=turns.preroll_ms,
        speculative=turns.speculative,
        language=settings.stt.language or None,
        first_clause_max_words=given(turns.first_clause_max_words, live.first_clause_max_words),
        prefill_while_speaking_ms=given(turns.prefill_while_speaking_ms, live.prefill_while_speaking_ms),
        resume_window_ms=turns.resume_window_ms,
        resume_max_played_ms=turns.resume_max_played_ms,
        keep_unanswered_s=turns.keep_unanswered_s,
    )


@dataclass
class _EndedTurn:
    """A user turn that just ended: for `resume_window_ms` the user may still go on."""

    blocks: list[np.ndarray]  # its audio
    ended_ms: float  # the detector's clock when the turn was ended
    gap: list[np.ndarray] = field(default_factory=list)  # audio since then
    response: Response | None = None  # its reply, once the transcript is in
    continued: bool = False  # the user went on: this turn is part of the next one
    interrupting: Response | None = None  # it began as a barge-in on this reply


@dataclass(frozen=True)
class _Unanswered:
    """Speech that got no answer, kept in case it was words after all."""

    text: str
    reason: str
    at_ms: float
    language: str | None


@dataclass
class _Utterance:
    blocks: list[np.ndarray]
    interrupting: Response | None  # the reply that was playing when it began
    spec_samples: int = 0  # audio length the speculation was started on
    # Transcribed already: the words up to a pause the user went on after. Only the audio
    # since then is transcribed at the next pause, so a long turn's last words are ready
    # as fast as a short turn's (Whisper's cost grows with the audio it reads).
    # (audio length read, the turn's transcript up to there, its language), oldest first
    read: list[tuple[int, str, str]] = field(default_factory=list)
    spec_stt: asyncio.Task[Transcript] | None = None
    spec_response: Response | None = None
    partial_at_samples: int = 0  # audio length the last listen-ahead started on
    partial: asyncio.Task[None] | None = None
    continues: _EndedTurn | None = None  # the turn this speech goes on with

    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks)


class Session:
    def __init__(
        self,
        stt: SpeechToText,
        llm: LLMBackend,
        tts: TextToSpeech,
        transport: AudioTransport,
        conversation: Conversation,
        options: GenerationOptions | None = None,
        settings: SessionSettings | None = None,
    ) -> None:
        self.stt, self.llm, self.tts = stt, llm, tts
        self.transport = transport
        self.playback = transport.playback
        self.conversation = conversation
        self.options = options
        self.settings = settings or SessionSettings()
        self.detector = SpeechDetector(self.settings.vad)
        self.barge_in_detector = SpeechDetector(self.settings.barge_in_vad)
        self.current: Response | None = None
        self._utterance: _Utterance | None = None
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, self.settings.preroll_ms // 20))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stt_lock = asyncio.Lock()  # one transcription at a time on 2 cores
        self._ended: _EndedTurn | None = None
        self._unanswered: list[_Unanswered] = []
        self._to_record: dict[str, Response] = {}  # replies waiting out the resume window, by id

    # -- the audio loop ------------------------------------------------------------

    async def run(self) -> None:
        """Process microphone audio until the transport ends; then finish open work."""
        self._spawn(self._prefill())
        try:
            async for block, wall in self.transport.mic_frames():
                await self._on_block(block, wall)
        finally:
            current = self.current
            if current is not None and current.committed.is_set():
                # hung up (or the phone vanished) mid-reply: keep the question and what was
                # heard, marked as interrupted, so a reconnect resumes with nothing lost.
                # No events: nobody is listening, and it was not a barge-in.
                await self._keep_heard(current)
            self._settle()  # a finished reply waiting out its resume window is kept
            # defensive: a reply still waiting out its resume window is recorded now, not
            # lost with its cancelled wait (not reproduced in the fast lane: see issue 14's note)
            for response in list(self._to_record.values()):
                self._record(response)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_block(self, block: np.ndarray, wall: float) -> None:
        self.detector.push(block)
        self.barge_in_detector.push(block)
        utterance = self._utterance
        if utterance is None:
            self._preroll.append(block)
            if self._ended is not None:
                self._ended.gap.append(block)
                if not self._can_resume(self._ended):
                    self._settle()
            # the stricter detector while it talks, the resume window included: with the
            # everyday one, its own echo (no canceller) went on with the turn
            audible = self._audible_response() is not None
            if (self.barge_in_detector if audible else self.detector).in_speech:
                await self._speech_started()
            return
        utterance.blocks.append(block)
        silence = self.detector.silence_ms()
        if silence == 0 and utterance.spec_stt is not None:
            self._drop_speculation(utterance)  # the user went on talking
        endpoint = self.settings.endpoint
        if silence == 0:
            self._maybe_listen_ahead(utterance)
        if self.settings.speculative and silence >= endpoint.speculative_after_ms and utterance.spec_stt is None:
            self._speculate(utterance)
        text, language = self._speculative_text(utterance)
        if utterance.spec_stt is not None and not utterance.spec_stt.done():
            required = endpoint.max_silence_ms  # the words are coming: judge them, not the clock
        else:
            speech_ms = 1000 * sum(len(b) for b in utterance.blocks) / STT_RATE - silence - self.settings.preroll_ms
            required = endpointing.end_of_turn_silence_ms(text, language, speech_ms, endpoint)
        if silence >= required:
            self.detector.end_speech()
            self.barge_in_detector.end_speech()
            self._utterance = None
            self._settle()
            self._ended = _EndedTurn(utterance.blocks, self.detector.t_ms, interrupting=utterance.interrupting)
            speech_end = wall - silence / 1000
            await self.transport.emit(SpeechStopped(self.detector.t_ms - silence))
            self._spawn(self._finish_turn(utterance, self._ended, speech_end, silence))

    async def _speech_started(self) -> None:
        started = (
            self.detector.speech_started_at_ms() or self.barge_in_detector.speech_started_at_ms() or self.detector.t_ms
        )
        ended = self._ended
        preroll = list(self._preroll)
        self._preroll.clear()
        if ended is not None and self._can_resume(ended):
            # the user goes on: hold the reply (it may not have started) and reopen the turn
            await self._pause_playback()
            ended.continued = True
            self._ended = None
            # a barge-in that got no answer stays one (its filters apply to the whole)
            barged = ended.interrupting if ended.response is None else None
            self._utterance = _Utterance([*ended.blocks, *ended.gap], barged, continues=ended)
            await self.transport.emit(SpeechStarted(started))
            return
        self._settle()
        interrupting = self._audible_response()
        if interrupting is not None:
            await self._pause_playback()  # silence within one audio block
        self._utterance = _Utterance(preroll, interrupting)
        await self.transport.emit(SpeechStarted(started))

    # -- speculation ---------------------------------------------------------------

    def _speculate(self, utterance: _Utterance) -> None:
        audio = utterance.audio()
        utterance.spec_samples = len(audio)
        utterance.spec_stt = self._spawn(self._transcribe_rest(utterance, audio))

    async def _transcribe_rest(self, utterance: _Utterance, audio: np.ndarray) -> Transcript:
        """The whole turn's transcript, reading only the audio since an earlier pause.

        Every reading is remembered (`read`), so if the user goes on after this pause the
        next one reads from here, or from an earlier pause when what follows this one is
        too short for Whisper alone — even when this reading is still running as the user
        goes on (two cores: one transcription at a time, so the next waits for it)."""
        async with self._stt_lock:
            # the latest point read before that leaves Whisper at least SEGMENT_MIN_S to read
            start, before, language = next(
                (read for read in reversed(utterance.read) if len(audio) - read[0] >= SEGMENT_MIN_S * STT_RATE),
                (0, "", ""),
            )
            transcript = await asyncio.to_thread(self.stt.transcribe, audio[start:], self.settings.language)
            if before and transcript.language != language:  # one of them misheard the language
                start, before = 0, ""
                transcript = await asyncio.to_thread(self.stt.transcribe, audio, self.settings.language)
        text = _join_words(before, transcript.text) if before else transcript.text.strip()
        transcript = dataclasses.replace(transcript, text=text)
        if text:
            self.tts.prepare_language(transcript.language)
        end = len(audio) - SEGMENT_BACK_MS * STT_RATE // 1000  # inside the pause, never mid-word
        if (
            text
            and transcript.no_speech_prob <= INTERRUPT_MAX_NO_SPEECH
            and (not utterance.read or end > utterance.read[-1][0])
        ):
            utterance.read.append((end, text, transcript.language))
        await self.transport.emit(TranscriptPartial(text, transcript.language))
        return transcript

    def _speculative_text(self, utterance: _Utterance) -> tuple[str | None, str | None]:
        task = utterance.spec_stt
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None, None
        transcript: Transcript = task.result()
        if utterance.spec_response is None and transcript.text and utterance.interrupting is None:
            utterance.spec_response = self._start_response(transcript.text, transcript.language)
        return transcript.text, transcript.language

    def _maybe_listen_ahead(self, utterance: _Utterance) -> None:
        every = self.settings.prefill_while_speaking_ms * STT_RATE // 1000
        samples = sum(len(b) for b in utterance.blocks)
        if (
            not every
            or utterance.interrupting is not None
            or samples - utterance.partial_at_samples < every
            or (utterance.partial is not None and not utterance.partial.done())
        ):
            return
        utterance.partial_at_samples = samples
        utterance.partial = self._spawn(self._listen_ahead(utterance))

    async def _listen_ahead(self, utterance: _Utterance) -> None:
        """Transcribe the words so far and put them in the LLM's cache (all best effort).

        Its prefill gives way once the user pauses: the pause's own transcription waits
        for the lock, and until it is read the turn may only end after max_silence_ms
        (scripts/bench_returning.py, small, 40-turn call: turns whose pause came during a
        listen-ahead's ~1 s prefill step ended after 1.95-2.0 s of silence, not 0.75)."""
        transcript = await self._transcribe(utterance.audio())
        if not transcript.text.strip() or transcript.no_speech_prob > INTERRUPT_MAX_NO_SPEECH:
            return
        async with self._stt_lock:  # never beside Whisper: on 2 cores both would crawl
            try:
                await self.llm.prefill(
                    self.conversation.prompt_for(
                        transcript.text.strip(), guess_language(transcript.text, transcript.language)
                    ),
                    lambda: self._generating() or utterance.spec_stt is not None,
                )
            except CompanionError as exc:
                log.debug("listen-ahead prefill failed: %s", exc)

    def _drop_speculation(self, utterance: _Utterance) -> None:
        if utterance.spec_response is not None and utterance.spec_response.task:
            utterance.spec_response.task.cancel()
        utterance.spec_stt = None
        utterance.spec_response = None

    # -- end of a user turn ------------------------------------------------------------

    async def _finish_turn(
        self, utterance: _Utterance, ended: _EndedTurn | None, speech_end: float, silence_ms: float
    ) -> None:
        spec_stt = utterance.spec_stt
        hit = spec_stt is not None
        transcript = await (spec_stt if spec_stt is not None else self._transcribe_rest(utterance, utterance.audio()))
        text = transcript.text.strip()
        if ended is not None and ended.continued:  # the user went on: the next turn has it all
            self._drop_speculation(utterance)
            return
        interrupted = utterance.interrupting
        if interrupted is not None:
            reason = self._not_for_the_turn(text, transcript, interrupted)
            if reason:
                self._keep_unanswered(text, reason, transcript.language)
                await self._resume_playback()  # noise, "mhm" or its own voice: keep talking
                return
            await self._interrupt(interrupted)
        continued = utterance.continues.response if utterance.continues else None
        added = _added_words(text, continued.user_text) if continued is not None else ""
        if continued is not None and (
            not added or endpointing.is_backchannel(added, transcript.language) or _is_echo(added, continued)
        ):
            # nothing new (a breath, a cough), "mhm", or its own voice: the reply goes on.
            # The no-speech limit does not apply here: it threw real continuations away.
            if added:
                self._keep_unanswered(added, "backchannel or echo after the turn", transcript.language)
            log.info("speech after the turn added no words (%r): the reply goes on", text)
            await self._resume_playback()
            if ended is not None and ended is self._ended:
                ended.response = continued
            else:
                continued.pending_resume = False
            return
        if continued is not None:
            await self._retract(continued)
        if not text:
            return
        text = " ".join([*self._take_unanswered(transcript.language), text])
        await self.transport.emit(TranscriptFinal(text, transcript.language))
        response = utterance.spec_response
        if response is None or response.user_text != text:
            if response is not None and response.task:
                response.task.cancel()
            response = self._start_response(text, transcript.language)
        self.current = response
        if ended is not None and ended is self._ended:
            ended.response = response
            response.pending_resume = True
        await self.transport.emit(ResponseCreated(response.id))
        response.committed.set()
        self._spawn(
            self._watch_response(
                response, speech_end, silence_ms, transcript.stt_ms, hit and response is utterance.spec_response
            )
        )

    def _start_response(self, text: str, language: str | None = None, line: str | None = None) -> Response:
        """A reply to `text`; with `line`, that fixed line instead (nothing is asked of the LLM)."""
        language = guess_language(line or text, language)
        self._follow_language(language)
        if line is None:
            response = Response(text, self.conversation.prompt_for(text, language))
        else:
            response = Response(text, [], scripted=True)
        response.task = self._spawn(
            run_response(
                response,
                self.llm if line is None else ScriptedLine(line),
                self.tts,
                self.playback,
                self.transport.emit,
                self.options,
                self.settings.first_clause_max_words,
                self.conversation.quoted_dialogue,
            )
        )
        return response

    async def _watch_response(
        self, response: Response, speech_end: float, endpoint_ms: float, stt_ms: float, speculative_hit: bool
    ) -> None:
        """Record the turn, report metrics when the first sample plays, and done at the end."""
        assert response.task is not None
        try:
            await response.task
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - one failed reply must not end the call
            if not isinstance(exc, CompanionError):
                log.exception("reply %s failed", response.id)
            code = "llm_failed" if isinstance(exc, CompanionError) else "internal_error"
            await self.transport.emit(ErrorEvent(code, str(exc) or type(exc).__name__))
            await self.transport.emit(ResponseDone(response.id, response.text, "failed"))
            if self.current is response:
                self.current = None
            return
        if response.scripted:
            await self._done_when_played(response)
            return
        self._spawn(self._record_when_settled(response))
        first = self.playback.first_sample_wall(response.id)
        while first is None and (self.playback.pending() or self.playback.paused) and not response.retracted:
            await asyncio.sleep(0.005)
            first = self.playback.first_sample_wall(response.id)
        if response.retracted:
            return
        metrics = TurnMetrics(
            response.id,
            endpoint_delay_ms=endpoint_ms,
            stt_ms=stt_ms,
            llm_first_token_ms=response.llm_first_token_ms,
            first_clause_ms=response.first_clause_ms,
            tts_first_audio_ms=response.tts_first_audio_ms,
            voice_to_voice_ms=(first - speech_end) * 1000 if first else None,
            speculative_hit=speculative_hit,
            prefill_tokens=response.usage.processed if response.usage else None,
            cached_tokens=response.usage.cached if response.usage else None,
        )
        log.info(
            "turn %s: %s",
            response.id,
            ", ".join(f"{k} {v:.0f} ms" for k, v in metrics.as_dict().items() if k.endswith("_ms") and v is not None),
        )
        await self.transport.emit(metrics)
        await self._done_when_played(response)

    async def _record_when_settled(self, response: Response) -> None:
        """Record the exchange once the user can no longer go on with their turn."""
        self._to_record[response.id] = response
        try:
            while response.pending_resume:
                await asyncio.sleep(0.02)
        finally:
            self._to_record.pop(response.id, None)
        if self._record(response):
            await self._prepare_next()

    def _record(self, response: Response) -> bool:
        """Into the history, once (not a reply the user's going on withdrew)."""
        if response.recorded or response.retracted:
            return False
        self.conversation.record(response.user_text, response.generated_text or response.text, reply_id=response.id)
        response.recorded = True
        return True

    async def _retract(self, response: Response) -> None:
        """The user went on with the turn this reply answered: drop it as if never said."""
        response.retracted = True
        response.pending_resume = False
        if response.task and not response.task.done():
            response.task.cancel()
            await asyncio.gather(response.task, return_exceptions=True)
        if self.current is response:
            self.playback.flush()
            self.current = None
        if response.recorded:  # cannot happen while it was resumable; keep what was heard
            self.conversation.amend(response.id, response.spoken_text(self.playback.played_ms(response.id)), True)
        log.info("the user went on with the turn: reply %s withdrawn", response.id)
        await self.transport.emit(ResponseDone(response.id, "", "retracted"))

    async def _pause_playback(self) -> None:
        """Hold the reply while the user may be taking the turn; the client holds it too."""
        self.playback.pause()
        if self.current is not None:
            await self.transport.emit(PlaybackPaused(self.current.id))

    async def _resume_playback(self) -> None:
        self.playback.resume()
        if self.current is not None:
            await self.transport.emit(PlaybackResumed(self.current.id))

    def _can_resume(self, ended: _EndedTurn) -> bool:
        """May speech now still join the ended turn (its reply barely heard)?"""
        window = self.settings.resume_window_ms
        if not window or self.detector.t_ms - ended.ended_ms > window:
            return False
        response = ended.response
        if response is None:
            return True
        return (
            response is self.current
            and not response.retracted
            and self.playback.played_ms(response.id) <= self.settings.resume_max_played_ms
        )

    def _settle(self) -> None:
        """The last turn can no longer be continued: its reply is kept (recorded)."""
        ended, self._ended = self._ended, None
        if ended is not None and ended.response is not None:
            ended.response.pending_resume = False

    def _not_for_the_turn(self, text: str, transcript: Transcript, playing: Response) -> str:
        """Why speech during a reply is not a bid for the turn ("" if it is)."""
        if not text:
            return "no words"
        if transcript.no_speech_prob > INTERRUPT_MAX_NO_SPEECH:
            return f"unsure (no-speech probability {transcript.no_speech_prob:.2f})"
        if endpointing.is_backchannel(text, transcript.language):
            return "backchannel"
        if _is_echo(text, playing):
            return "echo of the reply"
        return ""

    def _keep_unanswered(self, text: str, reason: str, language: str | None) -> None:
        """Log speech that gets no answer; keep its words for the next turn (not an echo's)."""
        log.info("speech not answered (%s): %r", reason, text)
        if text and not reason.startswith("echo"):
            self._unanswered.append(_Unanswered(text, reason, self.detector.t_ms, language))

    def _take_unanswered(self, language: str | None) -> list[str]:
        """The words of recent unanswered speech in the new turn's language, to put before
        its words (a mumble Whisper read as another language is not the user's words)."""
        kept, self._unanswered = self._unanswered, []
        horizon = self.detector.t_ms - 1000 * self.settings.keep_unanswered_s
        return [u.text for u in kept if u.at_ms >= horizon and (u.language == language or not language)]

    async def _done_when_played(self, response: Response) -> None:
        """Done once its audio has played (unless a newer reply or a barge-in took over)."""
        while self.playback.pending() or self.playback.paused:
            if self.current is not response:
                return
            await asyncio.sleep(0.02)
        if self.current is response:
            self.current = None
            await self.transport.emit(ResponseDone(response.id, response.text))

    async def _interrupt(self, response: Response) -> None:
        """Cancel the reply; the history keeps what was heard, marked as interrupted."""
        played, spoken = await self._keep_heard(response)
        await self.transport.emit(ResponseInterrupted(response.id, played, spoken))
        await self.transport.emit(ResponseDone(response.id, spoken, "interrupted"))

    async def _keep_heard(self, response: Response) -> tuple[float, str]:
        """Stop the reply and keep in the history only what was heard: (ms played, text)."""
        if response.task and not response.task.done():
            response.task.cancel()
            await asyncio.gather(response.task, return_exceptions=True)
        self.playback.flush()
        played = self.playback.played_ms(response.id)
        spoken = response.spoken_text(played)
        response.pending_resume = False
        if response.scripted:
            pass
        elif not response.recorded:  # cut off before it was recorded
            self.conversation.record(response.user_text, spoken, interrupted=True, reply_id=response.id)
            response.recorded = True
        else:
            self.conversation.amend(response.id, spoken, interrupted=True)
        if self.current is response:
            self.current = None
        return played, spoken

    # -- typed input -------------------------------------------------------------------

    async def respond_to_text(self, text: str) -> str:
        """A typed user turn (e.g. the web client's text box): cut off any reply still
        audible, then answer like a spoken turn. Returns the new response id."""
        return await self._respond_now(text, None)

    async def say(self, line: str) -> str:
        """Speak a fixed line now, e.g. the greeting when a call opens. It is not a turn
        (the history holds user/companion exchanges); talking over it cuts it off."""
        return await self._respond_now("", line)

    async def _respond_now(self, text: str, line: str | None) -> str:
        self._settle()
        audible = self._audible_response()
        if audible is not None:
            await self._interrupt(audible)
        response = self._start_response(text, line=line)
        self.current = response
        await self.transport.emit(ResponseCreated(response.id))
        response.committed.set()
        # typed now: the clock the playback buffer stamps first samples with (virtual in tests)
        self._spawn(self._watch_response(response, self.playback.clock(), 0.0, 0.0, False))
        return response.id

    # -- voice -------------------------------------------------------------------------

    async def set_voice(self, voice: str, speed: float | None = None) -> float:
        """Speak with `voice` from the next clause on (a reply already playing goes on in
        it). Loads it first, off the event loop; returns the load time in seconds."""
        control = self.tts.voice_control
        if control is None:
            raise CompanionError("this call's voice is fixed; start it with --voice instead")
        load_s = await asyncio.to_thread(control.use, voice)
        if speed is not None:
            control.set_speed(speed)
        await self.transport.emit(
            Notice("voice_changed", f"speaking with {voice} now", {"voice": voice, "load_ms": round(load_s * 1000, 1)})
        )
        return load_s

    def _follow_language(self, language: str | None) -> None:
        """The reply's voice follows the language the user spoke (a router's job)."""
        notice = self.tts.follow_language(language) if language else None
        if notice:
            self._spawn(self.transport.emit(Notice("voice_missing", notice, {"language": language})))

    # -- helpers -----------------------------------------------------------------------

    def _audible_response(self) -> Response | None:
        response = self.current
        if response is None:
            return None
        if self.playback.pending() or not response.generation_done:
            return response
        return None

    async def _transcribe(self, audio: np.ndarray) -> Transcript:
        async with self._stt_lock:
            transcript = await asyncio.to_thread(self.stt.transcribe, audio, self.settings.language)
        self.tts.prepare_language(transcript.language)  # its voice loads while the user goes on
        await self.transport.emit(TranscriptPartial(transcript.text, transcript.language))
        return transcript

    async def _prefill(self) -> None:
        """The call opens warm: the prompt's saved state restored, or prefilled now."""
        try:
            how = await self.conversation.warm_up(self.llm)
            log.info("prompt ready (%s)", how)
        except CompanionError as exc:
            log.warning("could not prefill the persona prompt: %s", exc)

    async def _prepare_next(self) -> None:
        """While the companion is idle, prefill what the next turn starts with, then the
        window a coming roll swaps in (in short steps that give way to the user)."""
        try:
            if self._llm_wanted():
                return
            # the reply just given (~100 tokens; a whole window after a roll that was not ready)
            if not await self.llm.prefill(self.conversation.prefix(), should_stop=self._llm_wanted):
                return
            upcoming = self.conversation.next_prefix()
            if upcoming[0] != self.conversation.prefix()[0]:  # a roll is coming: its own slot
                if await self.llm.prefill(upcoming, should_stop=self._llm_wanted, ahead=True):
                    self.conversation.mark_prepared(upcoming)
                    log.info("the coming prompt window is prefilled")
        except CompanionError as exc:
            log.debug("background prefill failed: %s", exc)

    def _generating(self) -> bool:
        """A reply is being generated: it needs the model more than the words so far do."""
        current = self.current
        return current is not None and not current.generation_done

    def _llm_wanted(self) -> bool:
        """The user is speaking, or a reply is being generated: live work needs the model."""
        current = self.current
        return self._utterance is not None or (current is not None and not current.generation_done)

    def _spawn(self, coro: Awaitable[_T]) -> asyncio.Task[_T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _is_echo(text: str, response: Response) -> bool:
    """Did the microphone just hear the companion's own words (a speaker echo)?

    Most of what was heard must appear as consecutive words (characters for
    Chinese) of the reply: sharing a few common words is not enough.
    """
    heard, own = word_units(text), word_units("".join(response.text_parts))
    if len(heard) < 2:
        return False
    own_pairs = set(zip(own, own[1:], strict=False))
    pairs = list(zip(heard, heard[1:], strict=False))
    return sum(p in own_pairs for p in pairs) >= 0.6 * len(pairs)


def _join_words(before: str, after: str) -> str:
    """Two stretches of one turn's transcript (no space between Chinese characters)."""
    if not after.strip():
        return before
    if HAN_CHAR.search(before[-1:]) or HAN_CHAR.search(after.strip()[:1]):
        return before + after.strip()
    return f"{before} {after.strip()}"


def _added_words(joined: str, before: str) -> str:
    """The words of `joined` (the whole turn, transcribed again) after those of `before`."""
    new, old = word_units(joined), word_units(before)
    common = 0
    while common < min(len(new), len(old)) and new[common] == old[common]:
        common += 1
    if common < len(old) // 2:  # transcribed differently: judge by the words not heard before
        seen, added = collections.Counter(old), []
        for word in new:
            if seen[word] > 0:
                seen[word] -= 1
            else:
                added.append(word)
        return " ".join(added)
    return " ".join(new[common:])
