"""The end-of-turn fusion decided on recorded features of real speech (fast lane).

tests/data/turn_features.json holds what Whisper had transcribed 150 ms into every
pause inside a turn (and at the real end) of the 17 development clips in
../shared/testdata/speech-pauses. A pause ends the turn when it lasts at least the
silence the fusion asks for; the live benchmark is scripts/bench_turns.py.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from voice_companion.conversation.endpointing import Verdict, end_of_turn_silence_ms, judge
from voice_companion.core.config import EndpointSettings

ROWS = json.loads((Path(__file__).parent / "data" / "turn_features.json").read_text(encoding="utf-8"))["rows"]
FUSION = EndpointSettings()
TEXT = replace(FUSION, policy="text")


def wait_ms(row: dict, settings: EndpointSettings) -> int:
    return end_of_turn_silence_ms(row["text"], row["stt_language"], 1000 * row["at_s"], settings)


def cuts(kind: str, settings: EndpointSettings) -> list[str]:
    """The pauses of this kind that would end the turn."""
    return [
        f"{r['clip']}@{r['at_s']}" for r in ROWS if r["kind"] == kind and wait_ms(r, settings) <= 1000 * r["pause_s"]
    ]


def test_the_fusion_waits_through_mid_clause_pauses_the_text_rule_cut():
    fusion, text = cuts("M", FUSION), cuts("M", TEXT)
    assert len(text) >= 8  # the old rule: 250 ms after any full stop
    # left: "Thomas Piketty in his book." (0.96 s), "…和所谓的高手。" (0.75 s) and
    # "…就是只有一个。" (0.84 s): full stops after a long turn that a listener would wait
    # through; only prosody or the LLM could tell (docs/benchmarks.md)
    assert len(fusion) <= 3, fusion
    assert set(fusion) <= set(text)


def test_the_fusion_still_answers_soon_after_a_real_end():
    ends = [wait_ms(r, FUSION) for r in ROWS if r["kind"] == "E"]
    assert statistics.median(ends) <= FUSION.statement_silence_ms
    assert max(ends) <= FUSION.digits_silence_ms  # the dictated number waits longest


def test_sentence_ends_inside_a_turn_are_waited_through_more_often():
    assert len(cuts("S", FUSION)) < len(cuts("S", TEXT))


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("What time is it?", Verdict.CLOSED),
        ("Yes.", Verdict.CLOSED),
        ("好的。", Verdict.CLOSED),
        ("And so my fellow Americans.", Verdict.FULL_STOP),
        ("Sure, my ID number is.", Verdict.UNFINISHED),
        ("I was wondering if, um...", Verdict.THINKING),
        ("我想问一下，嗯", Verdict.THINKING),
        ("1,001 90210.", Verdict.DIGITS),
        ("one zero zero zero one", Verdict.DIGITS),
        ("你总会。", Verdict.UNFINISHED),
        ("如果你愿意的话", Verdict.UNFINISHED),
        ("I have 2 cats.", Verdict.FULL_STOP),
        ("", Verdict.UNKNOWN),
    ],
)
def test_what_the_words_say(text, verdict):
    assert judge(text, None) == verdict


def test_a_short_turn_with_a_full_stop_ends_fast_and_a_long_one_waits():
    assert end_of_turn_silence_ms("I'm fine.", "en", 600, FUSION) == FUSION.complete_silence_ms
    assert end_of_turn_silence_ms("It was the first great sorrow of his life.", "en", 2300, FUSION) == (
        FUSION.statement_silence_ms
    )
    # a thinking pause may pass the usual cap
    assert end_of_turn_silence_ms("and then um", "en", 3000, FUSION) > FUSION.max_silence_ms
