"""The voice catalog and `voice-companion voices`: list, download (verified, atomic,
resumable) from a local Hub, preview and remove. Never the network."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from conftest import run_cli
from piper_test_voice import dominant_hz, pitch_of
from voice_hub import VOICES, Hub, TestVoices

from voice_companion.core.audio import read_audio
from voice_companion.core.errors import DownloadError
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.voices.install import install, installed_path, staging_dir, state, voice_dir


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    voices = TestVoices.build(tmp_path_factory.mktemp("hub")).serve()
    yield voices
    voices.stop()


@pytest.fixture()
def env(hub, tmp_path, monkeypatch):
    """A fresh home whose catalog is the test hub's; the CLI subprocesses inherit it."""
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(hub.catalog))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    Hub.mode, Hub.served = {}, []
    return tmp_path / "home" / "cache" / "models"


def test_the_real_catalog_is_complete_and_honest():
    voices = catalog.voices()
    families = {v.family for v in voices}
    assert {"en", "zh", "fr"} <= families and len(catalog.for_language("en")) >= 3
    for v in voices:
        assert re.fullmatch(r"[a-z]{2}_[A-Z]{2}-\w+-(x_low|low|medium|high)", v.id), v.id
        assert v.hub_revision == "v1.0.0" and v.sample_rate in (16000, 22050)
        assert [f.name for f in v.files] == [f"{v.id}.onnx", f"{v.id}.onnx.json"]
        for f in v.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)
            assert f.checksum_source, f"{f.path}: say where the checksum came from (or that there is none)"
        assert v.files[0].size and (v.files[0].sha256 or v.files[0].md5), f"{v.id}: the model must be checkable"


def test_list_shows_every_voice_and_the_bundled_one_installed(env):
    result = run_cli("voices", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)["voices"]}
    assert set(VOICES) < set(rows)
    assert rows["en_US-joe-medium"]["state"] == "bundled" and not rows["en_US-joe-medium"]["in_use"]
    # Mia (the default companion) speaks with the offline female voice
    mia = rows["en_US-festival_slt-hts"]
    assert mia["state"] == "bundled" and mia["in_use"] and mia["gender"] == "female" and mia["sample_rate"] == 32000
    assert rows["zh_CN-test-x_low"]["state"] is None and rows["zh_CN-test-x_low"]["sample_rate"] == 16000
    url = rows["zh_CN-test-x_low"]["files"][0]["url"]
    assert url.startswith(os.environ["HF_ENDPOINT"] + "/test/piper-voices/resolve/v1/")
    only_fr = json.loads(run_cli("voices", "list", "--language", "fr", "--json").stdout)["voices"]
    assert [r["id"] for r in only_fr] == ["fr_FR-test-x_low"]
    assert "en_US-joe-medium" in run_cli("voices", "list").stdout
    # the offline Chinese voice is listed, and each language says who will speak it and why
    assert (
        rows["zh_CN-kokoro_nezumi-int8"]["state"] == "bundled"
        and rows["zh_CN-kokoro_nezumi-int8"]["gender"] == "female"
    )
    languages = json.loads(result.stdout)["languages"]
    assert languages["zh"]["voice"] == "zh_CN-kokoro_nezumi-int8" and "offline" in languages["zh"]["why"]
    assert languages["en"]["voice"] == "en_US-festival_slt-hts" and "companion's voice" in languages["en"]["why"]
    assert languages["fr"]["voice"] == "en_US-festival_slt-hts" and "no voice of it installed" in languages["fr"]["why"]


def test_mia_speaks_with_a_female_voice_and_says_so_when_it_is_missing(env, tmp_path, monkeypatch):
    """Issue 18: the default persona is female; her voice is Festival's slt, and where
    Festival is not installed `persona show` says the male default speaks and how to fix it."""
    shown = json.loads(run_cli("persona", "show", "mia", "--json").stdout)["speaks_with"]
    assert shown == {"voice": "en_US-festival_slt-hts", "gender": "female", "problem": None}
    said = run_cli("say", "Hello there.", "-o", str(tmp_path / "mia.wav"))
    assert said.returncode == 0 and "32000 Hz" in said.stdout, said.stderr
    assert run_cli("voices", "preview", "en_US-festival_slt-hts", "-o", str(tmp_path / "p.wav")).returncode == 0
    refused = run_cli("voices", "remove", "en_US-festival_slt-hts")
    assert refused.returncode == 2 and "cannot be removed" in refused.stderr

    nowhere = tmp_path / "bin"  # a machine without Debian's festival (pip install only)
    nowhere.mkdir()
    monkeypatch.setenv("PATH", str(nowhere))
    shown = json.loads(run_cli("persona", "show", "mia", "--json").stdout)["speaks_with"]
    assert shown["voice"] == "en_US-joe-medium" and shown["gender"] == "male"
    assert "en_US-festival_slt-hts" in shown["problem"] and "apt install festival" in shown["problem"]
    assert "# speaks with: en_US-joe-medium (male): " in run_cli("persona", "show", "mia").stdout
    said = run_cli("say", "Hello there.", "-o", str(tmp_path / "joe.wav"))
    assert said.returncode == 0 and "22050 Hz" in said.stdout, said.stderr
    assert "speaking with en_US-joe-medium instead" in said.stderr
    listed = {r["id"]: r for r in json.loads(run_cli("voices", "list", "--json").stdout)["voices"]}
    assert listed["en_US-festival_slt-hts"]["state"] is None and listed["en_US-joe-medium"]["in_use"]


def test_download_verifies_installs_and_the_voice_speaks(env, tmp_path):
    result = run_cli("voices", "download", "zh_CN-test-x_low", "--json")
    assert result.returncode == 0, result.stderr
    assert "zh_CN-test-x_low/zh_CN-test-x_low.onnx" in result.stderr  # the progress bar names the file
    assert json.loads(result.stdout)["state"] == "installed"
    assert sorted(p.name for p in (env / "zh_CN-test-x_low").iterdir()) == [
        "zh_CN-test-x_low.onnx",
        "zh_CN-test-x_low.onnx.json",
    ]
    assert not staging_dir(catalog.get("zh_CN-test-x_low"), env).exists()
    wav = tmp_path / "preview.wav"
    preview = run_cli("voices", "preview", "zh_CN-test-x_low", "--output", str(wav))
    assert preview.returncode == 0, preview.stderr
    clip = read_audio(wav)
    assert clip.sample_rate == 16000 and clip.duration_s > 0.3  # Chinese text went through piper's phonemizer
    assert abs(dominant_hz(clip.samples, 16000) - pitch_of(500, 16000)) < 1
    again = run_cli("voices", "download", "zh_CN-test-x_low")  # already there: nothing fetched
    assert again.returncode == 0 and len(Hub.served) == 2


def test_a_checksum_mismatch_leaves_no_voice_and_says_so(env):
    Hub.mode = {"corrupt": {"fr_FR-test-x_low.onnx"}}
    result = run_cli("voices", "download", "fr_FR-test-x_low")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: checksum mismatch for fr_FR-test-x_low/")
    assert "Traceback" not in result.stderr
    voice = catalog.get("fr_FR-test-x_low")
    assert not voice_dir(voice, env).exists() and state(voice, env) is None
    assert not list(env.rglob("*.part"))


def test_a_cut_connection_leaves_no_voice_and_the_next_try_resumes(env):
    voice = catalog.get("en_US-test_b-x_low")
    size = voice.files[0].size
    Hub.mode = {"cut_after": {"en_US-test_b-x_low.onnx": size // 2}}
    with pytest.raises(DownloadError, match="interrupted after .* run the same command again to resume"):
        install(voice, env, os.environ["HF_ENDPOINT"], progress=False)
    assert installed_path(voice, env) is None and not voice_dir(voice, env).exists()
    result = run_cli("voices", "download", "en_US-test_b-x_low", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert ("en_US-test_b-x_low.onnx", size // 2) in Hub.served  # resumed, not restarted
    assert installed_path(voice, env) is not None


def test_md5_only_files_are_checked_too(env, hub, tmp_path, monkeypatch):
    data = json.loads(hub.catalog.read_text())
    entry = next(v for v in data["voices"] if v["id"] == "en_US-test_a-x_low")
    entry["files"][0].update(sha256=None, md5="0" * 32)  # like huayan-medium: md5 from voices.json
    bad = tmp_path / "md5-catalog.json"
    bad.write_text(json.dumps(data))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(bad))
    result = run_cli("voices", "download", "en_US-test_a-x_low")
    assert result.returncode == 2 and "md5" in result.stderr
    assert state(catalog.get("en_US-test_a-x_low"), env) is None


@pytest.mark.slow  # a CLI process per case
def test_remove_and_its_errors(env):
    assert run_cli("voices", "download", "en_US-test_a-x_low", "--no-progress").returncode == 0
    assert run_cli("voices", "remove", "en_US-test_a-x_low").returncode == 0
    assert not (env / "en_US-test_a-x_low").exists()
    for args, message in (
        (("remove", "en_US-test_a-x_low"), "is not downloaded here"),
        (("remove", "en_US-joe-medium"), "cannot be removed"),
        (("download", "xx_XX-nobody-low"), "unknown voice"),
        (("preview", "fr_FR-test-x_low"), "voices download fr_FR-test-x_low"),
    ):
        result = run_cli("voices", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, args
    assert run_cli("voices", "--help").returncode == 0 and run_cli("voices", "download", "--help").returncode == 0


@pytest.mark.slow  # loads the real Piper voice, twice
def test_preview_of_the_bundled_voice_at_another_speed(env, tmp_path):
    normal, fast = tmp_path / "normal.wav", tmp_path / "fast.wav"
    assert run_cli("voices", "preview", "en_US-joe-medium", "-o", str(normal)).returncode == 0
    assert run_cli("voices", "preview", "en_US-joe-medium", "-o", str(fast), "--speed", "1.5").returncode == 0
    n, f = read_audio(normal), read_audio(fast)
    assert n.sample_rate == 22050 and 0.55 < f.duration_s / n.duration_s < 0.8
    assert np.abs(n.samples).max() > 0.1
