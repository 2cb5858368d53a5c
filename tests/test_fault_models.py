"""Fault: a corrupt or missing model file is one clear line at start (exit status 2), never
a traceback and never a call that fails later. Real files, damaged the ways disks and
interrupted copies damage them: random bytes, a valid header with nothing after it."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import one_line_error, run_cli


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, settings):
    from voice_companion.engines.loader import stt_model_dir, voice_path

    folder = tmp_path_factory.mktemp("damaged")
    (folder / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + os.urandom(4096))
    shutil.copy(f"{voice_path(settings)}.json", folder / "voice.onnx.json")
    (folder / "voice.onnx").write_bytes(os.urandom(100_000))
    whisper = folder / "whisper"
    whisper.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(stt_model_dir(settings) / name, whisper / name)
    (whisper / "model.bin").write_bytes(os.urandom(200_000))
    return folder


def config(folder, name: str, text: str) -> str:
    path = folder / f"{name}.toml"
    path.write_text(text + '\n[llm]\ntier = "tiny"\n')
    return str(path)


def test_corrupt_whisper_model_stops_serve_at_start(damaged):
    result = run_cli(
        "--config",
        config(damaged, "stt", f'[stt]\nmodel_path = "{damaged / "whisper"}"'),
        "serve",
        "--port",
        "0",
        timeout=120,
    )
    one_line_error(result, "whisper", "corrupt", "delete it")


def test_missing_whisper_folder_is_not_taken_for_a_download(damaged):
    result = run_cli(
        "--config",
        config(damaged, "stt2", f'[stt]\nmodel_path = "{damaged / "nowhere"}"'),
        "serve",
        "--port",
        "0",
        timeout=120,
    )
    one_line_error(result, "does not exist", "stt.model_path")


@pytest.mark.slow  # loads Whisper before the voice fails
def test_corrupt_piper_voice_stops_serve_at_start(damaged):
    result = run_cli(
        "--config",
        config(damaged, "tts", f'[tts]\nvoice_path = "{damaged / "voice.onnx"}"'),
        "serve",
        "--port",
        "0",
        timeout=120,
    )
    one_line_error(result, "voice.onnx", "corrupt", "delete it")


def test_corrupt_gguf_stops_chat_at_start(damaged):
    result = run_cli("chat", "--llm-model", str(damaged / "bad.gguf"), stdin="hello\n", timeout=120)
    one_line_error(result, "bad.gguf", "corrupt")
