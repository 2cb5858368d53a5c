"""Rough edges a new user hit in their first hour (issue 15), each through the real CLI:
messages that name the real fix, bad input refused before any model loads, nothing
destructive without asking, and a server that is quiet and stops at once."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from conftest import one_line_error, run_cli


def _tone(path, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path


@pytest.fixture()
def no_sound_card(tmp_path, monkeypatch):
    """ALSA with no card at all: PortAudio finds no device to open."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".asoundrc").write_text("pcm.!default { type hw card 99 }\nctl.!default { type hw card 99 }\n")
    return tmp_path


@pytest.mark.slow  # loads a Piper voice
def test_voices_preview_without_speaker_names_its_own_way_out(no_sound_card):
    error = one_line_error(run_cli("voices", "preview", "en_US-joe-medium"))
    assert "cannot play audio" in error and "-o preview.wav" in error
    assert "--speak" not in error  # a flag of `chat`, not of this command


def test_say_help_points_to_the_voice_list():
    proc = run_cli("say", "--help")
    assert proc.returncode == 0
    assert "voices list" in proc.stdout and "models list" not in proc.stdout


@pytest.mark.parametrize("text", ["", "   "])
def test_say_refuses_empty_text(tmp_path, text):
    out = tmp_path / "empty.wav"
    assert "nothing to say" in one_line_error(run_cli("say", text, "-o", str(out)))
    assert not out.exists()


def test_reply_checks_its_input_before_loading_models(tmp_path):
    proc = run_cli("reply", "-i", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "a.wav"))
    assert "no such file" in one_line_error(proc)
    assert "loading" not in proc.stderr  # no engine was loaded for nothing


def test_unknown_voice_flag_is_an_error():
    proc = run_cli("chat", "--voice", "nosuchvoice", stdin="hello\n")
    error = one_line_error(proc)
    assert "'nosuchvoice' is unknown" in error and "voices list" in error
    assert "loading" not in proc.stderr and not proc.stdout


@pytest.mark.slow  # `chat` loads the tiny model
def test_persona_with_unknown_voice_is_warned_about(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\nmax_tokens = 8\n')
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(home))
    card = tmp_path / "ada.toml"
    card.write_text('name = "Ada"\n[voice]\nname = "en_US-nosuch-medium"\n[voices]\nfr = "fr_FR-nosuch-low"\n')

    imported = run_cli("persona", "import", str(card))
    assert imported.returncode == 0, imported.stderr
    warnings = [l for l in imported.stderr.splitlines() if l.startswith("warning: ")]
    assert len(warnings) == 2, imported.stderr
    assert "'en_US-nosuch-medium' is unknown" in warnings[0] and "voices list" in warnings[0]
    assert "voice for fr, 'fr_FR-nosuch-low', is unknown" in warnings[1]

    chat = run_cli("chat", "--companion", "ada", stdin="")
    assert chat.returncode == 0, chat.stderr
    assert "Ada's voice 'en_US-nosuch-medium' is unknown" in chat.stderr and "speaking with" in chat.stderr


@pytest.mark.slow  # loads the voice first (its rate opens the speaker)
def test_talk_without_sound_card_fails_before_the_prompt(no_sound_card):
    proc = run_cli("talk", "--duration", "2")
    assert "cannot open the audio devices" in one_line_error(proc)
    assert "Speak any time" not in proc.stdout


def test_call_to_self_signed_server_names_the_tls_options(tmp_path):
    """The server answers, but with a certificate the caller cannot verify."""
    from voice_companion.transports.websocket import tls

    certificate = tls.self_signed(tmp_path / "tls", ["127.0.0.1"])
    context = tls.server_context(certificate.cert, certificate.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def handshakes() -> None:
        while True:
            conn, _ = listener.accept()
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    threading.Thread(target=handshakes, daemon=True).start()
    question = _tone(tmp_path / "q.wav")
    proc = run_cli("call", "--url", f"wss://127.0.0.1:{port}/v1/realtime", "-i", str(question), "--token", "x" * 32)
    error = one_line_error(proc)
    assert "certificate" in error and "--tls-ca" in error and "--insecure" in error
    assert "is `voice-companion serve` running" not in error
    listener.close()


def _fresh_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(home))
    return home


def _memories() -> list[str]:
    proc = run_cli("memory", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return [m["text"] for m in json.loads(proc.stdout)["memories"]]


def _forget_all_at_terminal(answer: str) -> subprocess.CompletedProcess:
    """`memory forget --all` with a terminal as stdin, the user typing `answer`."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "voice_companion", "memory", "forget", "--all"],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ.copy(),
        )
    finally:
        os.close(follower)
        os.close(leader)


@pytest.mark.slow  # nine CLI processes
def test_forget_all_asks_first(tmp_path, monkeypatch):
    _fresh_home(tmp_path, monkeypatch)
    assert run_cli("memory", "add", "The user loves rainy days").returncode == 0

    piped = run_cli("memory", "forget", "--all", stdin="y\n")  # not a terminal: only --yes will do
    assert "pass --yes" in one_line_error(piped)
    assert _memories() == ["The user loves rainy days"]

    declined = _forget_all_at_terminal("n")
    assert declined.returncode == 0, declined.stderr
    assert "[y/N]" in declined.stderr and "nothing forgotten" in declined.stdout
    assert _memories() == ["The user loves rainy days"]

    agreed = _forget_all_at_terminal("y")
    assert agreed.returncode == 0 and "forgot everything" in agreed.stdout
    assert _memories() == []

    assert run_cli("memory", "add", "The user has a cat").returncode == 0
    assert run_cli("memory", "forget", "--all", "--yes").returncode == 0
    assert _memories() == []


def _start_serve(*args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "serve", "--port", "0", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    line = proc.stdout.readline()  # printed once the engines are loaded and the port is open
    assert line, proc.communicate(timeout=30)[1]
    return proc, json.loads(line)


@pytest.mark.slow  # `serve` loads the real models
def test_serve_is_quiet_and_stops_at_once():
    """It used to wait for the model to read the whole prompt, then to save its state."""
    from websockets.sync.client import connect

    proc, info = _start_serve()
    try:
        for _ in range(3):
            with urllib.request.urlopen(info["page"], timeout=10) as page:
                assert page.status == 200
        ws_url = info["page"].replace("http", "ws", 1) + "v1/realtime"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {info['token']}"}) as ws:
            assert json.loads(ws.recv())["type"] == "session.created"
            digits = " ".join(str(i % 10) for i in range(1900))  # ~2,000 tokens: ~10 s for `tiny` to read
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": digits}]}
            ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            ws.send(json.dumps({"type": "response.create"}))
            time.sleep(2)
            asked = time.monotonic()
            proc.send_signal(signal.SIGINT)  # a call is open, the model reading its long message
            _, stderr = proc.communicate(timeout=60)
            took = time.monotonic() - asked
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "server stopped" in stderr
    for chatter in ("HTTP response sent", "connection open", "connection closed"):
        assert chatter not in stderr, stderr
    assert took < 5, f"serve took {took:.1f} s to stop"


@pytest.mark.slow  # `chat` loads the tiny model
def test_chat_stops_at_once_while_the_model_reads_a_long_message(tmp_path, monkeypatch):
    """Ctrl+C used to wait until llama.cpp had read the whole prompt (20-30 s on `small`)."""
    _fresh_home(tmp_path, monkeypatch)
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        while "is ready" not in (line := proc.stderr.readline()):  # the prompt is ready: warm-up done
            assert line, "chat ended before its prompt was ready"
        pasted = " ".join(f"item {i % 50} is on the list" for i in range(400))  # ~2,800 tokens: ~15 s to read
        proc.stdin.write(f"Please sort this list: {pasted}\n")
        proc.stdin.flush()
        time.sleep(3)
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - asked
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and not out.strip()
    assert took < 5, f"chat took {took:.1f} s to stop"
