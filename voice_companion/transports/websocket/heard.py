"""What one client was sent and played of each reply, and the history it implies.

A remote client plays the companion's voice through its own jitter buffer, so
only it knows how much the user heard. After a barge-in (or when it hangs up
mid-reply) the client's figure replaces the server's estimate in the history.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from voice_companion.conversation.history import Conversation
from voice_companion.conversation.response import ClauseSpan, Response
from voice_companion.core.events import AudioChunk, Event, ResponseDone, TextDelta

KEEP_REPLIES = 32  # per connection: enough for late truncates, bounded for long calls


@dataclass(frozen=True)
class MissedReply:
    """A reply the client had not finished playing when its connection dropped: the
    history keeps `heard_text`; `missed_text` is told to the client when it comes back."""

    response_id: str
    heard_text: str
    missed_text: str


@dataclass
class Reply:
    response_id: str
    audio_id: int
    sample_rate: int
    spans: list[ClauseSpan] = field(default_factory=list)
    pending_text: list[str] = field(default_factory=list)  # text deltas awaiting their audio
    sent_samples: int = 0
    frames: int = 0
    client_played_ms: float | None = None  # from playback.mark
    truncate_ms: float | None = None  # asked for before the reply was recorded
    status: str | None = None

    @property
    def sent_ms(self) -> float:
        return 1000 * self.sent_samples / self.sample_rate

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.spans)

    def heard_text(self, played_ms: float) -> str:
        return Response("", (), id=self.response_id, spans=self.spans).spoken_text(played_ms)


class Replies:
    def __init__(self, conversation: Conversation, sample_rate: int) -> None:
        self.conversation = conversation
        self.sample_rate = sample_rate
        self._by_id: collections.OrderedDict[str, Reply] = collections.OrderedDict()
        self._next_audio_id = 1

    def get(self, response_id: str) -> Reply:
        """The reply with this id, registered (with a new audio id) on first sight."""
        reply = self._by_id.get(response_id)
        if reply is None:
            reply = self._by_id[response_id] = Reply(response_id, self._next_audio_id, self.sample_rate)
            self._next_audio_id = self._next_audio_id % 0xFFFFFFFF + 1
            while len(self._by_id) > KEEP_REPLIES:
                self._by_id.popitem(last=False)
        return reply

    def find(self, response_id: str) -> Reply | None:
        return self._by_id.get(response_id)

    def observe(self, event: Event) -> None:
        """Follow the session's events: clause text and audio give each clause's span."""
        if isinstance(event, TextDelta):
            self.get(event.response_id).pending_text.append(event.delta)
        elif isinstance(event, AudioChunk):
            reply = self.get(event.response_id)
            start = reply.spans[-1].start_ms + reply.spans[-1].duration_ms if reply.spans else 0.0
            text = " ".join(reply.pending_text)
            reply.pending_text.clear()
            reply.spans.append(ClauseSpan(text, start, event.duration_ms))
        elif isinstance(event, ResponseDone):
            reply = self.get(event.response_id)
            reply.status = event.status
            if reply.truncate_ms is not None:
                self.truncate(event.response_id, reply.truncate_ms)

    def truncate(self, response_id: str, audio_end_ms: float) -> str | None:
        """Keep in the history only what the client played; None if not recorded yet."""
        reply = self._by_id[response_id]  # KeyError: unknown reply
        played = min(audio_end_ms, reply.sent_ms)
        heard = reply.heard_text(played)
        interrupted = heard != reply.text
        if self.conversation.amend(response_id, heard, interrupted):  # the reply's message has its id
            reply.truncate_ms = None
            return heard
        reply.truncate_ms = audio_end_ms  # applied when the reply is recorded
        return None

    def hang_up(self) -> list[MissedReply]:
        """The client left: replies it reported as partly played keep only that part in
        the history, and what it did not hear is returned to be told after a reconnect."""
        missed = []
        for reply in list(self._by_id.values()):
            played = reply.client_played_ms
            if played is not None and played < reply.sent_ms - 100 and reply.status != "interrupted":
                heard = reply.heard_text(min(played, reply.sent_ms))
                self.truncate(reply.response_id, played)
                said = " ".join([reply.text, *reply.pending_text]).strip()
                rest = said[len(heard) :].strip() if said.startswith(heard) else said
                if rest:
                    missed.append(MissedReply(reply.response_id, heard, rest))
        return missed
