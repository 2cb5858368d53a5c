"""Personas: our TOML format, Character Card V2/V3 import from JSON and PNG (built here
from the public specs), malformed cards, and the `persona` command."""

from __future__ import annotations

import base64
import json
import os

import pytest
from conftest import run_cli
from pngs import png_image

from voice_companion.companion import cards
from voice_companion.companion import persona as persona_format
from voice_companion.companion.library import BUNDLED_DIR
from voice_companion.core.errors import PersonaError
from voice_companion.core.prompts import PERSONA

BOOK = {
    "name": "Aria's world",
    "entries": [
        {
            "keys": ["Lumen"],
            "content": "Lumen is the floating city where Aria grew up.",
            "enabled": True,
            "insertion_order": 2,
            "extensions": {},
        },
        {
            "keys": ["tea"],
            "content": "Aria brews jasmine tea every evening.",
            "enabled": True,
            "insertion_order": 1,
            "extensions": {},
        },
        {"keys": ["secret"], "content": "A disabled entry.", "enabled": False, "insertion_order": 0, "extensions": {}},
    ],
}


def card_v2(**changes) -> dict:
    data = {
        "name": "Aria",
        "description": "{{char}} is a star-gazing botanist.",
        "personality": "gentle, curious",
        "scenario": "{{char}} chats with {{user}} in the evening.",
        "first_mes": "Hello {{user}}, the stars are out!",
        "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hi there!",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "character_book": BOOK,
        "tags": ["calm"],
        "creator": "test",
        "character_version": "1",
        "extensions": {},
    }
    data.update(changes)
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def card_v3(**changes) -> dict:
    card = card_v2(**changes)
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"].update(
        {
            "nickname": "Ari",
            "group_only_greetings": [],
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
            "creation_date": 1700000000,
        }
    )
    return card


def png_with(chunks: dict[str, str]) -> bytes:
    """A 1x1 PNG with tEXt chunks."""
    return png_image(1, 1, chunks)


def b64(card: dict) -> str:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode()).decode()


def test_bundled_personas_load_and_one_speaks_chinese():
    found = {p.stem: persona_format.load_toml(p) for p in BUNDLED_DIR.glob("*.toml")}
    assert len(found) >= 2
    assert any(p.language == "zh" and "你" in p.greeting for p in found.values())
    for p in found.values():
        prompt = p.system_prompt(PERSONA)
        assert prompt.startswith(PERSONA.replace("{name}", p.name)[:40]) and p.description in prompt


def test_toml_round_trip(tmp_path):
    original = cards.from_card(card_v2(), "aria.json")
    original.voice = persona_format.PersonaVoice("en_US-joe-medium", length_scale=1.1, speaker_id=0)
    original.voices = {"zh": "zh_CN-huayan-medium"}
    path = tmp_path / "aria.toml"
    path.write_text(persona_format.to_toml(original), encoding="utf-8")
    assert persona_format.load_toml(path) == original


@pytest.mark.parametrize("make", [card_v2, card_v3], ids=["v2", "v3"])
def test_card_json_import(make, tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(make()), encoding="utf-8")
    aria = cards.load_persona_file(path)
    assert aria.name == "Aria" and aria.personality == "gentle, curious"
    assert aria.greeting == "Hello {{user}}, the stars are out!"
    assert [e.content for e in aria.lore] == [
        "Aria brews jasmine tea every evening.",
        "Lumen is the floating city where Aria grew up.",
    ]
    prompt = aria.system_prompt(PERSONA)
    assert "Aria is a star-gazing botanist." in prompt and "{{" not in prompt and "<START>" not in prompt


@pytest.mark.parametrize("keyword, make", [("chara", card_v2), ("ccv3", card_v3)])
def test_card_png_import(keyword, make, tmp_path):
    path = tmp_path / "card.png"  # the name says nothing: content decides
    path.write_bytes(png_with({"Software": "test", keyword: b64(make())}))
    assert cards.load_persona_file(path).name == "Aria"


def test_png_with_both_chunks_prefers_v3(tmp_path):
    path = tmp_path / "both.png"
    path.write_bytes(png_with({"chara": b64(card_v2(name="Old")), "ccv3": b64(card_v3(name="New"))}))
    assert cards.load_persona_file(path).name == "New"


def test_our_settings_travel_in_extensions(tmp_path):
    ours = {"language": "zh", "speaking_style": "short", "voice": {"name": "zh_CN-huayan-medium", "length_scale": 1.2}}
    aria = cards.from_card(card_v3(extensions={"voice_companion": ours}), "x")
    assert aria.language == "zh" and aria.voice.length_scale == 1.2
    assert cards.from_card(cards.to_card(aria), "again") == aria


def test_card_picture_from_a_png_card_or_a_v3_icon_asset(tmp_path):
    png = tmp_path / "card.png"
    png.write_bytes(png_with({"ccv3": b64(card_v3())}))
    assert cards.card_picture(png) == png.read_bytes() and cards.picture_kind(png.read_bytes()) == "png"
    icon = png_image(4, 4)
    uri = "data:image/png;base64," + base64.b64encode(icon).decode()
    card = card_v3()
    card["data"]["assets"] = [
        {"type": "background", "uri": uri, "name": "main", "ext": "png"},
        {"type": "icon", "uri": "https://example.com/a.png", "name": "other", "ext": "png"},  # needs the network
        {"type": "icon", "uri": uri, "name": "main", "ext": "png"},
    ]
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    assert cards.card_picture(path) == icon
    card["data"]["assets"] = [{"type": "icon", "uri": "data:image/png;base64,bm90IGFuIGltYWdl", "name": "main"}]
    path.write_text(json.dumps(card), encoding="utf-8")
    assert cards.card_picture(path) is None  # base64 of "not an image": no picture, the import goes on
    path.write_text(json.dumps(card_v2()), encoding="utf-8")
    assert cards.card_picture(path) is None


def _bad_png_crc() -> bytes:
    data = bytearray(png_with({"chara": b64(card_v2())}))
    data[-20] ^= 0xFF  # inside IDAT
    return bytes(data)


MALFORMED = [
    ("broken.json", b'{"spec": "chara_card_v2", "data": {', "neither a persona TOML"),
    ("spec.json", json.dumps({"spec": "chara_card_v9", "data": {"name": "A"}}).encode(), "unsupported card spec"),
    ("nodata.json", json.dumps({"spec": "chara_card_v2"}).encode(), "no 'data' object"),
    ("noname.json", json.dumps(card_v2(name="")).encode(), "no name"),
    ("type.json", json.dumps(card_v2(description=["x"])).encode(), "data.description must be text"),
    ("book.json", json.dumps(card_v2(character_book={"entries": [{"keys": ["a"]}]})).encode(), "entry 0 has no text"),
    ("plain.png", png_with({"Software": "paint"}), "holds no character card"),
    ("b64.png", png_with({"chara": "not base64!!"}), "not base64-encoded card JSON"),
    ("crc.png", _bad_png_crc(), "bad checksum"),
    ("cut.png", png_with({"chara": b64(card_v2())})[:60], "truncated"),
    ("bad.toml", b'name = "A"\nmood = "x"\n', "unknown persona field 'mood'"),
]


@pytest.mark.parametrize("name, content, expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_cards_name_the_problem(name, content, expected, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PersonaError, match=expected.replace("(", r"\(")) as info:
        cards.load_persona_file(path)
    assert "\n" not in str(info.value)


@pytest.mark.slow  # ten CLI processes
def test_persona_commands(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(home))
    rows = json.loads(run_cli("persona", "list", "--json").stdout)["personas"]
    assert {"mia", "xiaoyu"} <= {r["id"] for r in rows} and [r["id"] for r in rows if r["active"]] == ["mia"]
    shown = json.loads(run_cli("persona", "show", "小雨", "--json").stdout)
    assert shown["id"] == "xiaoyu" and shown["persona"]["language"] == "zh"

    card = tmp_path / "aria.png"
    card.write_bytes(png_with({"ccv3": b64(card_v3())}))
    imported = run_cli("persona", "import", str(card), "--json")
    assert imported.returncode == 0, imported.stderr
    # its language from its own words; the PNG itself becomes its picture, owner-only
    assert json.loads(imported.stdout) == {"id": "aria", "name": "Aria", "lore": 2, "language": "en", "picture": True}
    picture = home / "data" / "companions" / "aria" / "picture.png"
    assert picture.read_bytes() == card.read_bytes() and os.stat(picture).st_mode & 0o777 == 0o600
    shown = json.loads(run_cli("persona", "show", "aria", "--json").stdout)
    assert shown["picture"] == str(picture) and shown["persona"]["language"] == "en"
    assert f"# picture: {picture}" in run_cli("persona", "show", "aria").stdout
    aria = next(r for r in json.loads(run_cli("persona", "list", "--json").stdout)["personas"] if r["id"] == "aria")
    assert aria["picture"] and aria["language"] == "en"
    assert aria["voice"] == "en_US-joe-medium" and aria["voice_is_default"]
    lore = json.loads(run_cli("memory", "list", "--companion", "aria", "--json").stdout)["memories"]
    assert sorted(m["text"] for m in lore if m["kind"] == "lore") == sorted(e["content"] for e in BOOK["entries"][:2])
    again = run_cli("persona", "import", str(card))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr

    assert run_cli("persona", "use", "Aria").returncode == 0
    rows = json.loads(run_cli("persona", "list", "--json").stdout)["personas"]
    assert [r["id"] for r in rows if r["active"]] == ["aria"]
    for suffix in ("json", "toml"):
        out = tmp_path / f"out.{suffix}"
        assert run_cli("persona", "export", "aria", str(out)).returncode == 0
        assert cards.load_persona_file(out).lore == cards.from_card(card_v3(), "x").lore
    folder = home / "data" / "companions" / "aria"
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.stat(folder / "persona.toml").st_mode & 0o777 == 0o600

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": 3}}))
    proc = run_cli("persona", "import", str(bad))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: bad.json:")
    assert len(proc.stderr.strip().splitlines()) == 1
    missing = run_cli("persona", "use", "nobody")
    assert missing.returncode == 2 and "persona list" in missing.stderr
