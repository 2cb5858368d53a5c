"""One WebSocket client wired to its own live `Session` over the shared engines.

Everything the client receives goes through one bounded outbox drained by its own
task: the session never waits on the network, and a client that stops reading is
closed (4008) instead of holding memory or slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voice_companion.conversation.history import Conversation
from voice_companion.conversation.session import Session
from voice_companion.core.errors import CompanionError
from voice_companion.core.events import AudioChunk, Event, Notice, ResponseCreated, ResponseDone
from voice_companion.transports.websocket import call_voice
from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.audio_frames import encode_audio, parse_audio
from voice_companion.transports.websocket.heard import MissedReply, Replies
from voice_companion.transports.websocket.limits import InputLimits
from voice_companion.transports.websocket.shared import Shared
from voice_companion.transports.websocket.transport import RateLimited, RemoteAudio

log = logging.getLogger(__name__)
OUTBOX_SIZE = 1024  # messages (~20 s of audio frames plus events) before a client counts as too slow
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY_ERRORS = 4009
ERROR_BUDGET = 50  # protocol errors per 10 s before the connection is closed


class Connection:
    def __init__(
        self,
        ws: ServerConnection,
        shared: Shared,
        conversation: Conversation,
        conversation_id: str,
        resumed: bool = False,
        missed: tuple[MissedReply, ...] = (),
    ) -> None:
        self.ws, self.shared = ws, shared
        self.id = f"sess_{uuid.uuid4().hex[:12]}"
        self.conversation, self.conversation_id = conversation, conversation_id
        # A new conversation may open with the companion's greeting (`response.create`
        # before any typed text); a resumed one goes on where it was.
        self.greeting = "" if resumed else conversation.greeting
        self.resumed = resumed
        self.missed_before = missed  # cut off by the previous connection's drop: told first
        self.missed_now: list[MissedReply] = []  # cut off by this one's end
        self.rate = shared.tts.sample_rate
        self.replies = Replies(conversation, self.rate)
        self.audio = RemoteAudio(self.rate, self._on_event, self._send_audio)
        self.tts = shared.tts.for_call()  # this call's voice choice, shared models
        self.session = Session(
            shared.stt, shared.llm, self.tts, self.audio, conversation, shared.options, shared.session_settings
        )
        self._outbox: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOX_SIZE)
        self._typed: list[str] = []
        self.limits = InputLimits()
        self._closing = False
        self._errors: list[float] = []
        self._last_rate_error = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._closer: asyncio.Task | None = None

    async def run(self) -> None:
        """Serve the client until it leaves; then stop its session and keep what it heard."""
        self._send({"type": "session.created", "session": self.describe()})
        for missed in self.missed_before:
            self._send(
                {
                    "type": "response.missed",
                    "response_id": missed.response_id,
                    "heard_text": missed.heard_text,
                    "missed_text": missed.missed_text,
                }
            )
        unlisten = self._hear_store_outages()
        sender = asyncio.create_task(self._sender())
        pacer = asyncio.create_task(self.audio.pace())
        session = asyncio.create_task(self.session.run())
        session.add_done_callback(self._session_ended)
        try:
            async for message in self.ws:
                self._receive(message)
                if self._closing:
                    break
        except ConnectionClosed:
            pass
        finally:
            self.audio.end()
            await asyncio.wait({session}, timeout=5)
            for task in (sender, pacer, session, *self._tasks):
                task.cancel()
            await asyncio.gather(sender, pacer, session, *self._tasks, return_exceptions=True)
            if self._closer is not None:
                await asyncio.gather(self._closer, return_exceptions=True)
            self.missed_now = self.replies.hang_up()
            if unlisten is not None:
                unlisten()

    def describe(self) -> dict[str, Any]:
        voice = call_voice.current(self.tts, self.shared.voice)
        return {
            "id": self.id,
            "protocol": p.PROTOCOL_VERSION,
            "conversation_id": self.conversation_id,
            "resumed": self.resumed,
            "companion": {
                "name": self.shared.companion_name,
                "greeting": self.greeting or None,
                "picture": p.PICTURE_PATH if self.shared.picture else None,
            },
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": self.audio.input_rate}},
                "output": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "voice": voice,
                    "voices": call_voice.offered(self.tts, self.shared.voice),
                },
            },
        }

    # -- client → server ---------------------------------------------------------------

    def _receive(self, message: str | bytes) -> None:
        try:
            self.limits.admit_frame(message)
            if isinstance(message, bytes):
                self.audio.push_mic(parse_audio(message))
            else:
                event = p.parse_text(message)
                self.limits.admit_event()
                self._handle(event)
        except p.ProtocolError as exc:
            self._error(exc.code, exc.message, exc.event_id)
            self._count_error()
        except RateLimited as exc:
            now = time.perf_counter()
            if now - self._last_rate_error > 1.0:  # one report a second, not one per frame
                self._last_rate_error = now
                self._error("rate_limited", str(exc))
        except Exception:  # noqa: BLE001 - a bug in handling one frame must not end the call
            log.exception("%s: failed to handle a client frame", self.id)
            self._error("internal_error", "the server failed to handle that message; the call goes on")
            self._count_error()

    def _handle(self, event: p.ClientEvent) -> None:
        if isinstance(event, p.SessionUpdate):
            self.limits.admit_update()
            call_voice.check(self.tts, self.shared.voice, event)
            if event.input_rate is not None:
                self.audio.set_input_rate(event.input_rate)
            if event.instructions is not None:
                self.conversation.system_prompt = event.instructions
            if event.voice is not None or event.speed is not None:
                self._spawn(self._update_voice(event))  # answered once the voice is loaded
            else:
                self._send({"type": "session.updated", "event_id": event.event_id, "session": self.describe()})
        elif isinstance(event, p.ItemCreate):
            self.limits.check_typed(self._typed, event.text, event.event_id)
            self._typed.append(event.text)
            item = {
                "id": f"item_{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": event.text}],
            }
            self._send({"type": "conversation.item.created", "event_id": event.event_id, "item": item})
        elif isinstance(event, p.ResponseCreate):
            if self._typed:
                text, self._typed = " ".join(self._typed), []
                self._spawn(self.session.respond_to_text(text))
            elif self.greeting:  # the companion speaks first: once, when the call opens
                line, self.greeting = self.greeting, ""
                self._spawn(self.session.say(line))
            else:
                raise p.ProtocolError("no_input", "send conversation.item.create with the user's text first")
        elif isinstance(event, p.Truncate):
            if self.replies.find(event.item_id) is None:
                raise p.ProtocolError("unknown_item", f"no reply {event.item_id!r} in this session")
            kept = self.replies.truncate(event.item_id, event.audio_end_ms)
            self._send(
                {
                    "type": "conversation.item.truncated",
                    "event_id": event.event_id,
                    "item_id": event.item_id,
                    "audio_end_ms": event.audio_end_ms,
                    "text": kept,
                }
            )
        elif isinstance(event, p.PlaybackMark):
            reply = self.replies.find(event.response_id)
            if reply is None:
                raise p.ProtocolError("unknown_item", f"no reply {event.response_id!r} in this session")
            reply.client_played_ms = max(reply.client_played_ms or 0.0, event.played_ms)
        elif isinstance(event, p.Ping):
            self._send({"type": "pong", "event_id": event.event_id, "server_time_ms": round(time.time() * 1000)})
        elif isinstance(event, p.VoiceDownload):
            self._spawn(self._download_voice(event))

    async def _update_voice(self, event: p.SessionUpdate) -> None:
        try:
            if event.voice is not None and event.voice != call_voice.current(self.tts, self.shared.voice):
                await self.session.set_voice(event.voice, event.speed)
            elif event.speed is not None and (control := self.tts.voice_control) is not None:
                control.set_speed(event.speed)  # a fixed voice refused it already (call_voice.check)
        except CompanionError as exc:
            self._error("voice_failed", str(exc), event.event_id)
            return
        self._send({"type": "session.updated", "event_id": event.event_id, "session": self.describe()})

    async def _download_voice(self, event: p.VoiceDownload) -> None:
        """Install the voice on this computer for the phone, with progress (at most 4 a
        second); the call's next reply in its language speaks with it."""
        downloads = self.shared.downloads
        if downloads is None:
            self._error("download_failed", "this server does not download voices for phones", event.event_id)
            return
        last = 0.0

        def progress(received: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last >= 0.25 or received >= total:
                last = now
                self._send(
                    {
                        "type": "voice.download.progress",
                        "event_id": event.event_id,
                        "voice": event.voice,
                        "received_bytes": received,
                        "total_bytes": total,
                    }
                )

        try:
            await downloads.download(event.voice, progress)
        except CompanionError as exc:
            log.warning("%s: the phone's download of %s failed: %s", self.id, event.voice, exc)
            self._error("download_failed", str(exc), event.event_id)
            return
        self._send(
            {
                "type": "voice.download.done",
                "event_id": event.event_id,
                "voice": event.voice,
                "voices": call_voice.offered(self.tts, self.shared.voice),
            }
        )

    async def _send_with_offer(self, message: dict[str, Any]) -> None:
        """A `voice_missing` notice, with the download this computer can make (if any)."""
        downloads, details = self.shared.downloads, message.get("details") or {}
        if downloads is not None and details.get("language"):
            preferred = self.shared.settings.tts.languages if self.shared.settings is not None else {}
            offer = await downloads.offer(details["language"], preferred)
            if offer is not None:
                message["details"] = {**details, "download": offer}
        self._send(message)

    def _count_error(self) -> None:
        now = time.perf_counter()
        self._errors = [t for t in self._errors if now - t < 10] + [now]
        if len(self._errors) > ERROR_BUDGET:
            self._close(CLOSE_TOO_MANY_ERRORS, "too many invalid messages")

    # -- server → client ---------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        self.replies.observe(event)
        if isinstance(event, AudioChunk):
            return  # the audio itself goes out as binary frames, paced
        message = event.as_dict()
        if isinstance(event, Notice) and event.code == "voice_missing":
            self._spawn(self._send_with_offer(message))  # after a quick look at whether the hub is reachable
            return
        if isinstance(event, ResponseCreated):
            message["audio_id"] = self.replies.get(event.response_id).audio_id
        elif isinstance(event, ResponseDone):
            reply = self.replies.get(event.response_id)
            if reply.frames:
                self._send(
                    {
                        "type": "response.output_audio.done",
                        "response_id": reply.response_id,
                        "audio_id": reply.audio_id,
                        "frames": reply.frames,
                        "audio_ms": round(reply.sent_ms, 1),
                    }
                )
        self._send(message)

    def _send_audio(self, response_id: str, samples: np.ndarray) -> None:
        reply = self.replies.get(response_id)
        if reply.frames == 0:
            self._send(
                {
                    "type": "response.output_audio.started",
                    "response_id": response_id,
                    "audio_id": reply.audio_id,
                    "format": {"type": "audio/pcm", "rate": self.rate},
                }
            )
        self._send(encode_audio(reply.audio_id, reply.frames, samples))
        reply.frames += 1
        reply.sent_samples += len(samples)

    def _error(self, code: str, message: str, event_id: str | None = None) -> None:
        self._send(p.error_event(code, message, event_id))

    def _send(self, message: dict[str, Any] | bytes) -> None:
        if self._closing:
            return
        try:
            self._outbox.put_nowait(message if isinstance(message, bytes) else p.encode(message))
        except asyncio.QueueFull:
            log.warning("%s: client too slow, closing", self.id)
            self._close(CLOSE_TOO_SLOW, "client too slow: messages are not being read")

    async def _sender(self) -> None:
        try:
            while True:
                await self.ws.send(await self._outbox.get())
        except ConnectionClosed:
            pass

    def _close(self, code: int, reason: str) -> None:
        if self._closer is None:
            self._closing = True
            self._closer = asyncio.ensure_future(self.ws.close(code, reason))

    def _session_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: session failed", self.id, exc_info=task.exception())
            self._error("internal_error", "the session failed; please reconnect")
            self._close(1011, "session failed")

    def _hear_store_outages(self):
        """A memory store that spools (companion/memory/spooling_store.py) tells this client when
        its turns cannot be saved; its listener may run on the memory worker's thread."""
        loop = asyncio.get_running_loop()
        return self.conversation.listen_for_outages(
            lambda code, message: loop.call_soon_threadsafe(self._error, code, message)
        )

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
