"""The web call screen in a real headless Chromium against the real server and models.

Chromium's fake microphone plays a WAV of a spoken question (Piper), so the page's
whole path runs: getUserMedia → AudioWorklet → 16 kHz frames → the server →
captions and reply audio → the player worklet → playback marks. `window.vcStats`
(app.js) tells what the page sent, received and played. A screenshot of the call
screen is kept in test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from servers import ServerThread, make_shared

from voice_companion.core.audio import read_audio, write_wav
from voice_companion.transports.websocket.app import App

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (scripts/setup.sh --dev installs it)"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (scripts/setup.sh --dev installs it)", allow_module_level=True)

TOKEN = "web-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def server(stt, llm, tts):
    shared = make_shared(
        stt, llm, tts, 24, system_prompt="You are Mia, a friendly companion. Answer in two or three sentences."
    )
    running = ServerThread(App(shared, TOKEN))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def microphone_wav(spoken, tmp_path_factory):
    """The question as Chromium's fake microphone wants it: 16-bit PCM WAV. Chromium loops
    the file, so a long silence follows the question (the server ends the turn on it)."""
    clip = read_audio(spoken("What is the capital of France?"))
    rate = clip.sample_rate
    audio = np.concatenate([np.zeros(rate // 2), clip.samples, np.zeros(90 * rate)])
    return write_wav(tmp_path_factory.mktemp("mic") / "question.wav", audio.astype(np.float32), rate)


@pytest.fixture(scope="module")
def browser(microphone_wav):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone_wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


def stats(page) -> dict:
    return page.evaluate("window.vcStats")


def wait(page, condition: str, timeout_s: float = 30) -> None:
    """Wait until a JavaScript condition over `s` (= window.vcStats) holds."""
    try:
        page.wait_for_function(
            f"(() => {{ const s = window.vcStats; return {condition}; }})()", timeout=timeout_s * 1000
        )
    except sync_api.TimeoutError:
        raise AssertionError(
            f"timed out waiting for {condition}; vcStats = {stats(page)}; "
            f"captions = {page.locator('#captions').inner_text()!r}; "
            f"error = {page.locator('#error').inner_text()!r}"
        ) from None


def say(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_call_screen_speaks_types_interrupts_and_reconnects(server, browser):
    page = browser.new_page(viewport={"width": 390, "height": 780})  # a phone's screen
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.goto(f"{server.page}#token={TOKEN}")
    page.click("#call")
    wait(page, "s.state === 'live'", 15)
    assert page.inner_text("#name") == "Mia" and page.inner_text("#avatar") == "M"
    assert page.eval_on_selector_all("#voice option", "options => options.map(o => [o.value, o.text])") == [
        ["en_US-joe-medium", "Joe (en-US)"]
    ]

    # the spoken question: its caption, the companion's caption, its voice played out
    user_line = page.locator(".line.user:not(.interim)").first
    user_line.wait_for(timeout=45_000)
    assert "capital of france" in user_line.inner_text().lower()
    wait(page, "s.repliesPlayed >= 1", 45)
    first = stats(page)
    assert first["framesSent"] > 50 and first["framesReceived"] > 10 and first["samplesPlayed"] > 10_000, first
    assert first["marks"] >= 1 and page.locator(".line.companion").first.inner_text().strip()

    # typed questions; the second one cuts the first reply off while it plays
    say(page, "Tell me a long story about a dragon who loves tea.")
    wait(page, f"s.samplesPlayed > {first['samplesPlayed'] + 4410}")  # 0.2 s of it heard
    say(page, "Stop. Tell me about cats instead.")
    wait(page, "s.truncations === 1 && s.repliesPlayed >= 2", 60)
    assert page.locator(".line.user").nth(2).inner_text() == "Stop. Tell me about cats instead."
    assert page.locator(".line.companion.interrupted").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-call-screen.png"))

    conversation_id = stats(page)["conversationId"]
    history = server.app.conversations.get(conversation_id).history
    assert "capital of france" in history[0].content.lower()
    captions = page.locator(".line.companion").all_inner_texts()
    heard = "" if captions[1] == "…" else captions[1]  # the caption shows "…" when nothing was heard
    assert history[3].content == heard and history[3].interrupted  # only what the page played
    assert history[4].content == "Stop. Tell me about cats instead." and history[5].content == captions[2]

    # the server drops the call: the page comes back to the same conversation by itself
    server.drop_calls()
    wait(page, "s.sessions === 2 && s.state === 'live'", 20)
    assert stats(page)["conversationId"] == conversation_id
    page.click("#mute")  # muted, the page keeps sending (silent) frames: the server ends turns on silence
    sent = stats(page)["framesSent"]
    wait(page, f"s.framesSent > {sent + 25}", 10)
    page.click("#call")  # hang up
    assert stats(page)["state"] == "idle"
    assert not [line for line in console if line.startswith("pageerror")], console


def test_wrong_token_is_explained(server, browser):
    started = server.app.sessions_started
    page = browser.new_page()
    page.goto(f"{server.page}#token=not-the-right-token-at-all")
    page.click("#call")
    wait(page, "s.state === 'failed'", 15)
    assert "token is wrong" in page.inner_text("#error")
    assert page.get_attribute("#call", "aria-label") == "Call"
    assert server.app.sessions_started == started
