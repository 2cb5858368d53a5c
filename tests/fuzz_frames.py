"""Hypothesis strategies for what a client can put on `/v1/realtime`: text and binary frames.

Shared by the parser fuzz test, the live-server fuzz test and `scripts/fuzz_server.py`,
so the short run in the suite and the long run on record try the same inputs. Frames
are built around the real event shapes (a random `type` and random fields, nested the
way `session.update` nests them) because purely random text almost never gets past
`json.loads`; mangled, truncated, huge-number and deeply nested JSON covers the rest.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from voice_companion.transports.websocket import protocol as p

TYPES = st.sampled_from([*p.CLIENT_EVENTS, "input_audio_buffer.commit", "", "PING", "response.cancel"])
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 7999, 8000, 16000, 48000, 48001, -1, 1e308, True, False]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _maybe(value: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(value, JSON_VALUES)


SESSION = st.fixed_dictionaries(
    {},
    optional={
        "instructions": _maybe(st.text(max_size=200)),
        "audio": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "input": _maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "format": _maybe(
                                    st.fixed_dictionaries(
                                        {}, optional={"type": _maybe(st.just("audio/pcm")), "rate": NUMBERS}
                                    )
                                )
                            },
                        )
                    ),
                    "output": _maybe(
                        st.fixed_dictionaries({}, optional={"voice": _maybe(st.just("en_US-joe-medium"))})
                    ),
                },
            )
        ),
    },
)
CONTENT = st.lists(
    _maybe(st.fixed_dictionaries({"type": _maybe(st.just("input_text")), "text": _maybe(st.text(max_size=80))})),
    max_size=3,
)
ITEM = st.fixed_dictionaries(
    {}, optional={"type": _maybe(st.just("message")), "role": _maybe(st.just("user")), "content": _maybe(CONTENT)}
)
EVENTS = st.fixed_dictionaries(
    {"type": _maybe(TYPES)},
    optional={
        "event_id": _maybe(st.text(max_size=20)),
        "session": _maybe(SESSION),
        "item": _maybe(ITEM),
        "item_id": _maybe(st.text(max_size=20)),
        "response_id": _maybe(st.text(max_size=20)),
        "audio_end_ms": NUMBERS,
        "played_ms": NUMBERS,
        "content_index": NUMBERS,
    },
)


@st.composite
def _mangled(draw) -> str:
    """A real-looking event, cut short or with a few characters replaced."""
    text = json.dumps(draw(EVENTS))
    if draw(st.booleans()):
        return text[: draw(st.integers(0, len(text)))]
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        chars[draw(st.integers(0, len(chars) - 1))] = draw(st.characters())
    return "".join(chars)


TEXT_FRAMES = st.one_of(
    EVENTS.map(json.dumps),
    _mangled(),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 200_000).map(lambda n: '{"type": "ping", "n": ' + "9" * (n % 6000 + 1) + "}"),
    st.integers(1, 100_000).map(lambda n: "[" * n),  # nesting deeper than the JSON parser's stack
    st.integers(p.MAX_TEXT_BYTES - 40, p.MAX_TEXT_BYTES + 40).map(
        lambda n: '{"type": "ping", "x": "' + "é" * (n // 2) + '"}'
    ),
)
BINARY_FRAMES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from([0, 1, 2, 641, 65535, 65536, 65537, 65538]).map(lambda n: bytes(n)),
)
FRAMES = st.one_of(TEXT_FRAMES, BINARY_FRAMES)
