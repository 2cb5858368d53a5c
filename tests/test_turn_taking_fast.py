"""Turn-taking on virtual time: the real Session with fake engines (tests/fakes.py).

Each call is scripted like LiveKit's agent-session tests (what the user says, when;
what the brain answers, how fast) and runs in well under a second, deterministically.
The slow twins with the real models are in tests/test_session.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from fakes import FakeCall, FakeSTT, FakeVoice

from voice_companion.conversation.session import SessionSettings
from voice_companion.core.events import (
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
from voice_companion.transports.desk.virtual import EchoPath

ENDPOINT = SessionSettings().endpoint  # what a call uses when nothing is configured
STORY = "Once upon a time a small dragon lived on a hill. Every morning it made tea for the birds."
WORD_S = FakeVoice().word_s + FakeVoice().gap_s  # one spoken word, its gap included


def _words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


def finals(call: FakeCall) -> list[str]:
    return [e.text for e in call.of_type(TranscriptFinal)]


def history(call: FakeCall) -> list[tuple[str, str, bool]]:
    return [(m.role, m.content, m.interrupted) for m in call.conversation.history]


@pytest.mark.parametrize(
    "words, wait_ms",
    [
        ("What time is it?", ENDPOINT.complete_silence_ms),  # finished: a short pause ends it
        ("Hello Mia", ENDPOINT.default_silence_ms),  # can't tell
        ("I went to the shop and", ENDPOINT.incomplete_silence_ms),  # mid-sentence: wait longer
        ("I went to the shop and um", ENDPOINT.thinking_silence_ms),  # finding a word: longer still
    ],
)
def test_the_pause_that_ends_a_turn_depends_on_the_words(words, wait_ms):
    call = FakeCall(duration_s=5, reply="Fine thanks.")
    end = call.say(0.5, words)
    call.run()
    assert len(call.times(SpeechStopped)) == 1
    # one VAD frame (30 ms) plus one audio block (20 ms) of slack
    assert call.times(SpeechStopped)[0] - end == pytest.approx(wait_ms / 1000, abs=0.05)
    assert finals(call) == [words]
    assert history(call) == [("user", words, False), ("assistant", "Fine thanks.", False)]


def test_a_reply_speculated_during_the_pause_plays_as_the_turn_ends_and_the_metrics_say_so():
    call = FakeCall(duration_s=4, reply="It is noon.")
    end = call.say(0.5, "What time is it?")
    call.run()
    [metrics] = call.of_type(TurnMetrics)
    assert metrics.speculative_hit  # STT and the reply started 150 ms into the pause
    speaker = call.device.speaker_audio()
    first_sound_s = np.flatnonzero(speaker)[0] / call.device.output_rate
    # voice-to-voice on the virtual clock matches what the speaker recording shows
    assert metrics.voice_to_voice_ms / 1000 == pytest.approx(first_sound_s - end, abs=0.05)
    # once the turn ends only the first token (0.2 s) and TTS (0.05 s) remain: STT ran in the pause
    assert first_sound_s - call.times(SpeechStopped)[0] < 0.2 + 0.05 + 0.1
    assert call.speaker_words() == "It is noon."


def test_a_thinking_pause_does_not_end_the_turn():
    call = FakeCall(duration_s=6, reply="Nice.")
    first = call.say(0.5, "I went to the shop and um")
    call.say(first + 0.9, "bought some bread.")  # longer than the 600 ms default, shorter than 1.2 s
    call.run()
    words = "I went to the shop and um bought some bread."
    assert finals(call) == [words]
    assert len(call.of_type(ResponseCreated)) == 1
    assert history(call) == [("user", words, False), ("assistant", "Nice.", False)]
    assert call.llm.asked[0] == "I went to the shop and um"  # a reply was speculated in the pause...
    assert call.speaker_words() == "Nice."  # ...and never heard


def test_the_words_so_far_give_way_to_the_pause_that_may_end_the_turn():
    """The listen-ahead's prefill (1 s steps, as on `small`) stops when the user pauses:
    the pause's transcription waits for it, and until that is read the turn can only
    end after max_silence_ms."""
    words = "I went to the market this morning and bought apples and bread and cheese for lunch."

    def wait_after_speech(listen_ahead_ms: int) -> tuple[float, FakeCall]:
        settings = SessionSettings(prefill_while_speaking_ms=listen_ahead_ms)
        call = FakeCall(duration_s=12, reply="Nice.", prefill_step_s=1.0, prefill_steps=6, settings=settings)
        end = call.say(0.5, words)
        call.run()
        assert finals(call) == [words]
        return call.times(SpeechStopped)[0] - end, call

    without, _ = wait_after_speech(0)
    with_listen_ahead, call = wait_after_speech(1000)
    assert (words.split()[0], False) in [(text.split()[0], done) for text, done in call.llm.prefilled]  # gave way
    assert with_listen_ahead < without + 1.0 < ENDPOINT.max_silence_ms / 1000  # one step at most, not the maximum


def test_a_reply_speculated_in_a_pause_is_dropped_when_the_user_goes_on():
    replies = {"I was thinking": "Thinking is good.", "I was thinking about dogs.": "Dogs are great."}
    call = FakeCall(duration_s=6, reply=replies.__getitem__)
    first = call.say(0.5, "I was thinking")
    call.say(first + 0.45, "about dogs.")  # past the 150 ms speculation point, short of 600 ms
    call.run()
    assert call.llm.asked == ["I was thinking", "I was thinking about dogs."]
    assert finals(call) == ["I was thinking about dogs."]
    assert len(call.of_type(ResponseCreated)) == 1
    assert history(call) == [("user", "I was thinking about dogs.", False), ("assistant", "Dogs are great.", False)]
    assert call.speaker_words() == "Dogs are great."


def test_barge_in_stops_playback_and_the_history_keeps_only_what_was_heard():
    call = FakeCall(duration_s=7, reply=lambda user: STORY if "story" in user else "Dogs are loyal.")
    call.say(0.3, "Tell me a story.")
    call.say(3.6, "Wait, stop that.")  # past the resume window (2 s after the turn's end)
    call.run()
    [interrupted] = call.of_type(ResponseInterrupted)
    barge_in = [t for t in call.times(SpeechStarted) if t > 3.6][0]
    assert call.speaker_level(barge_in - 0.1, barge_in) > 0  # the companion was talking...
    assert call.speaker_level(barge_in, barge_in + 0.3) == 0  # ...and went quiet within one block

    role, heard, was_interrupted = history(call)[1]
    assert was_interrupted and heard == interrupted.spoken_text
    assert heard and STORY.startswith(heard) and len(heard) < len(STORY)
    # the history holds the words that came out of the speaker (a half-played word is not kept)
    played = call.speaker_words(0, barge_in).split()
    assert played[: len(heard.split())] == heard.split() and len(played) - len(heard.split()) <= 1
    assert interrupted.played_ms == pytest.approx(1000 * WORD_S * len(played), abs=1000 * WORD_S)

    assert finals(call) == ["Tell me a story.", "Wait, stop that."]
    assert history(call)[2:] == [("user", "Wait, stop that.", False), ("assistant", "Dogs are loyal.", False)]
    assert [d.status for d in call.of_type(ResponseDone)] == ["interrupted", "completed"]


def test_a_backchannel_while_the_companion_talks_does_not_take_the_turn():
    call = FakeCall(duration_s=7, reply=STORY)
    call.say(0.3, "Tell me a story.")
    call.say(2.2, "mm-hmm yeah")
    call.run()
    barge_in = [t for t in call.times(SpeechStarted) if t > 2.2]
    assert barge_in, "the backchannel never reached the barge-in gate"
    assert call.speaker_level(barge_in[0], barge_in[0] + 0.2) == 0  # it paused to listen...
    assert not call.of_type(ResponseInterrupted)  # ...then went on
    assert finals(call) == ["Tell me a story."]
    assert history(call) == [("user", "Tell me a story.", False), ("assistant", STORY, False)]
    [done] = call.of_type(ResponseDone)
    assert done.status == "completed"
    assert call.device.playback.played_ms(done.response_id) == pytest.approx(1000 * WORD_S * len(STORY.split()))


ECHO = EchoPath(delay_ms=60, gain=0.4, rt60_s=0)  # no echo canceller: the speaker leaks into the microphone


def test_the_companion_hearing_its_own_voice_while_it_talks_is_not_a_barge_in():
    """Its own words open the barge-in gate (it pauses), the echo check (`_is_echo`)
    recognises them and it carries on: it stutters, but never cuts itself off."""
    call = FakeCall(duration_s=14, reply=STORY, echo=ECHO)
    call.say(0.3, "Tell me a story.")
    call.run()
    done = call.of_type(ResponseDone)[0]
    assert done.status == "completed" and not call.of_type(ResponseInterrupted)
    assert history(call)[:2] == [("user", "Tell me a story.", False), ("assistant", STORY, False)]
    assert call.device.playback.played_ms(done.response_id) == pytest.approx(1000 * WORD_S * len(STORY.split()))
    reply_end = call.times(ResponseDone)[0]
    echoes = [t for t in call.times(SpeechStarted) if 1.2 < t < reply_end]
    assert len(echoes) >= 3, "the echo never reached the barge-in gate"
    # after the user's question only its own voice was heard (the echo heard within the
    # resume window is transcribed with the question it may have continued)
    own = set(_words(STORY)) | set(_words("Tell me a story."))
    heard = call.stt.heard[1:]
    assert heard and all(set(_words(h)) <= own for h in heard), heard


def test_the_echo_of_its_last_words_is_not_a_user_turn():
    call = FakeCall(duration_s=14, reply=STORY, echo=ECHO)
    call.say(0.3, "Tell me a story.")
    call.run()
    assert finals(call) == ["Tell me a story."]


def test_a_noise_while_the_companion_talks_pauses_it_then_lets_it_go_on():
    call = FakeCall(duration_s=7, reply=STORY)
    call.say(0.3, "Tell me a story.")
    call.sound(3.6, np.random.default_rng(3).standard_normal(16000 * 4 // 10).astype(np.float32) * 0.2)
    call.run()
    assert [t for t in call.times(SpeechStarted) if t > 3.6], "the noise never reached the barge-in gate"
    assert [e.text for e in call.of_type(TranscriptPartial)][-1] == ""  # no words in it
    assert not call.of_type(ResponseInterrupted)
    assert [d.status for d in call.of_type(ResponseDone)] == ["completed"]
    assert history(call) == [("user", "Tell me a story.", False), ("assistant", STORY, False)]


def test_a_typed_message_cuts_the_companion_off_like_a_spoken_one():
    call = FakeCall(duration_s=6, reply=lambda user: STORY if "story" in user else "Dogs are loyal.")
    call.say(0.3, "Tell me a story.")
    call.type_text(2.4, "Tell me about dogs.")
    call.run()
    [interrupted] = call.of_type(ResponseInterrupted)
    assert call.speaker_level(2.4, 2.5) == 0  # cut off at once
    assert history(call) == [
        ("user", "Tell me a story.", False),
        ("assistant", interrupted.spoken_text, True),
        ("user", "Tell me about dogs.", False),
        ("assistant", "Dogs are loyal.", False),
    ]
    typed = call.of_type(TurnMetrics)[-1]
    speaker = call.device.speaker_audio()
    answer_s = np.flatnonzero(speaker[int(2.5 * call.device.output_rate) :])[0] / call.device.output_rate + 2.5
    assert typed.voice_to_voice_ms / 1000 == pytest.approx(answer_s - 2.4, abs=0.05)  # from the keystroke


# -- a wrong end of turn made cheap: resume, don't barge in (issue 16) --------------------

LONG_DAY = {
    "It was a long day.": "Oh no, tell me all about it, I am listening.",
    "It was a long day. My boss yelled at me.": "That sounds hard.",
}


def test_going_on_after_the_turn_ended_withdraws_the_reply_and_answers_the_whole_turn():
    call = FakeCall(duration_s=8, reply=lambda user: LONG_DAY.get(user, "Hmm?"))
    first = call.say(0.5, "It was a long day.")  # short and finished: the turn ends 250 ms on
    going_on = first + 1.0
    call.say(going_on, "My boss yelled at me.")
    call.run()
    assert [d.status for d in call.of_type(ResponseDone)] == ["retracted", "completed"]
    assert call.speaker_level(first + 0.5, going_on) > 0  # the early reply had begun...
    assert call.speaker_level(going_on + 0.2, going_on + 0.9) == 0  # ...and stopped at the speech onset
    assert call.of_type(PlaybackPaused)  # the client was told to hold it at once
    assert not call.of_type(ResponseInterrupted)  # no barge-in: it never happened
    assert finals(call) == ["It was a long day.", "It was a long day. My boss yelled at me."]
    assert history(call) == [
        ("user", "It was a long day. My boss yelled at me.", False),
        ("assistant", "That sounds hard.", False),
    ]
    assert call.speaker_words(going_on).endswith("That sounds hard.")


def test_a_cough_after_the_turn_ended_lets_the_reply_go_on():
    call = FakeCall(duration_s=7, reply=STORY)
    end = call.say(0.3, "Tell me a story.")
    call.sound(end + 1.0, np.random.default_rng(5).standard_normal(16000 * 3 // 10).astype(np.float32) * 0.2)
    call.run()
    assert [d.status for d in call.of_type(ResponseDone)] == ["completed"]
    assert call.of_type(PlaybackPaused) and call.of_type(PlaybackResumed)
    assert history(call) == [("user", "Tell me a story.", False), ("assistant", STORY, False)]


def test_the_reply_is_recorded_only_once_the_user_can_no_longer_go_on():
    call = FakeCall(duration_s=6, reply="Fine thanks.")
    call.say(0.5, "How are you?")
    recorded_at: list[float] = []
    record = call.conversation.record

    def spy(*args, **kwargs):
        recorded_at.append(asyncio.get_running_loop().time())
        return record(*args, **kwargs)

    call.conversation.record = spy  # type: ignore[method-assign]
    call.run()
    # the short reply played to its end before the window closed: kept from then on
    [done] = call.times(ResponseDone)
    assert recorded_at and recorded_at[0] >= done - 0.05
    assert history(call) == [("user", "How are you?", False), ("assistant", "Fine thanks.", False)]


@pytest.mark.parametrize("at_s", [3.0, 3.4])  # going on with the turn; a barge-in (1.5 s heard)
def test_words_judged_a_backchannel_during_a_reply_join_the_next_turn(at_s):
    call = FakeCall(duration_s=12, reply=lambda user: STORY if "story" in user else "Here is more.")
    call.say(0.3, "Tell me a story.")
    call.say(at_s, "mm-hmm yeah")  # a backchannel: the story goes on
    call.say(7.0, "Tell me more.")
    call.run()
    assert [d.status for d in call.of_type(ResponseDone)] == ["completed", "completed"]
    assert history(call)[:2] == [("user", "Tell me a story.", False), ("assistant", STORY, False)]
    assert finals(call) == ["Tell me a story.", "mm-hmm yeah Tell me more."]  # kept, not lost


def test_a_long_turn_is_transcribed_in_stretches_and_answered_whole():
    first_part = "I went to the market this morning and bought bread and milk for the whole week"
    call = FakeCall(duration_s=8, reply="Sounds like a good plan.")
    end = call.say(0.3, first_part)  # 2.4 s of speech, then a pause shorter than the wait
    rest = "then I came home and made a big pot of soup for my sister and her two children."
    call.say(end + 0.45, rest)  # 2.4 s again: long enough for Whisper alone
    call.run()
    whole = f"{first_part} {rest}"
    assert finals(call) == [whole]
    assert call.stt.heard[-1] == rest  # only the audio after the pause was read again
    assert history(call) == [("user", whole, False), ("assistant", "Sounds like a good plan.", False)]


def test_a_short_rest_after_a_pause_is_read_with_the_words_before_it():
    first_part = "I went to the market this morning and bought bread and milk for the whole week"
    call = FakeCall(duration_s=8, reply="Nice.")
    end = call.say(0.3, first_part)
    call.say(end + 0.45, "then home.")  # too short to read alone ("wealth tax?" became "Well, that is...")
    call.run()
    assert finals(call) == [f"{first_part} then home."]
    assert call.stt.heard[-1] == f"{first_part} then home."


class UnsureSTT(FakeSTT):
    """Whisper unsure of some words (it gave "two, three" a no-speech probability of 0.34)."""

    def __init__(self, voice, unsure: str) -> None:
        super().__init__(voice)
        self.unsure = unsure

    def transcribe(self, audio, language=None):
        transcript = super().transcribe(audio, language)
        if self.unsure in transcript.text:
            return dataclasses.replace(transcript, no_speech_prob=0.34)
        return transcript


def test_words_whisper_is_unsure_of_still_continue_the_turn():
    """Issue 16's lost case: "one [0.6 s] two, three" — the words after the pause scored
    0.34 against the barge-in filter's 0.3 and were thrown away."""
    replies = {"one": "One what? Tell me more about it, please.", "one two three": "One, two, three!"}
    call = FakeCall(duration_s=6, reply=lambda user: replies.get(user, "Hmm."))
    call.stt = UnsureSTT(call.voice, "two three")
    first = call.say(0.5, "one")
    call.say(first + 1.2, "two three")  # after the turn ended and the reply began
    call.run()
    assert [d.status for d in call.of_type(ResponseDone)] == ["retracted", "completed"]
    assert finals(call)[-1] == "one two three"
    assert history(call) == [("user", "one two three", False), ("assistant", "One, two, three!", False)]


def test_unsure_words_during_a_reply_are_kept_for_the_next_turn():
    call = FakeCall(duration_s=12, reply=lambda user: STORY if "story" in user else "Here is more.")
    call.stt = UnsureSTT(call.voice, "two three")
    call.say(0.3, "Tell me a story.")
    call.say(3.6, "two three")  # a barge-in Whisper doubts: the story goes on...
    call.say(7.0, "Tell me more.")
    call.run()
    assert history(call)[:2] == [("user", "Tell me a story.", False), ("assistant", STORY, False)]
    assert finals(call)[-1] == "two three Tell me more."  # ...and the words are not lost
