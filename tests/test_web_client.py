"""The web call screen in a real headless Chromium against the real server and models.

Chromium's fake microphone plays a WAV of a spoken question (Piper), so the page's
whole path runs: getUserMedia → AudioWorklet → 16 kHz frames → the server →
captions and reply audio → the player worklet → playback marks. `window.vcStats`
(app.js) tells what the page sent, received and played. A screenshot of the call
screen is kept in test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pngs import png_image
from servers import ServerThread, make_shared

from voice_companion.companion.companion import Companion
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
from voice_companion.companion.persona import Persona
from voice_companion.conversation.history import Conversation
from voice_companion.core.audio import read_audio, write_wav
from voice_companion.transports.websocket.app import App, Conversations

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


GREETING = (
    "Oh, you came back, I am so glad to hear your voice again. "
    "I kept thinking about the garden we talked about, and the little blue flowers by the gate. "
    "Tell me everything about your day, the good parts and the hard ones."
)


@pytest.fixture(scope="module")
def pictured_server(stt, llm, tts, tmp_path_factory):
    """A companion with a card's picture and a long greeting (to be cut off)."""
    folder = tmp_path_factory.mktemp("seraphina")
    (folder / "picture.png").write_bytes(png_image(96, 128))
    companion = Companion("seraphina", Persona("Seraphina"), folder, SQLiteMemoryStore(folder / "memory.db"))
    shared = make_shared(stt, llm, tts, 24, companion=companion, companion_name="Seraphina")
    app = App(shared, TOKEN)
    app.conversations = Conversations(lambda: Conversation(shared.system_prompt, greeting=GREETING))
    running = ServerThread(app)
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
def lecture_browser(playwright, tmp_path_factory):
    """A microphone that hears en09 (a real lecture): "Well, good luck with that. [1.17 s]
    Who's going to implement a 4% global wealth tax?" (tests/data/en09_lecture_goodluck.txt)."""
    clip = read_audio(Path(__file__).parent / "data" / "en09_lecture_goodluck.wav")
    rate = clip.sample_rate
    audio = np.concatenate([np.zeros(rate // 2), clip.samples, np.zeros(90 * rate)])
    browser = _chromium(
        playwright, write_wav(tmp_path_factory.mktemp("lecture") / "en09.wav", audio.astype(np.float32), rate)
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as running:
        yield running


def _chromium(playwright, microphone: Path):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


@pytest.fixture(scope="module")
def browser(playwright, microphone_wav):
    browser = _chromium(playwright, microphone_wav)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def quiet_browser(playwright, tmp_path_factory):
    """A phone in a quiet room: its microphone hears nothing."""
    silence = write_wav(tmp_path_factory.mktemp("quiet") / "silence.wav", np.zeros(16000 * 60, np.float32), 16000)
    browser = _chromium(playwright, silence)
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


def _words(text: str) -> str:
    return " ".join(re.sub(r"[*()（）]", " ", text).split())


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
        ["en_US-joe-medium", "Joe (en-US)"],  # the call's voice, then the installed ones: here the offline voices
        ["zh_CN-kokoro_nezumi-int8", "Kokoro nezumi (zh-CN)"],
        ["zh_CN-kokoro_kumo-int8", "Kokoro kumo (zh-CN)"],
        ["en_US-festival_slt-hts", "Festival slt (en-US)"],
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
    # the caption shows a stage direction in italics, the history keeps the model's words
    assert history[4].content == "Stop. Tell me about cats instead." and _words(history[5].content) == _words(
        captions[2]
    )

    # the server drops the call while a reply plays: the page comes back to the same
    # conversation by itself, and shows what the drop cut off as text (issue 20)
    played = stats(page)["samplesPlayed"]
    say(page, "Tell me another long story, about a fox who bakes bread.")
    rate = page.evaluate("window.vcStats.audio").split(" at ")[1].split(" Hz")[0]
    wait(page, f"s.samplesPlayed > {played + int(1.2 * int(rate))}", 60)  # 1.2 s heard: two playback marks
    server.drop_calls()
    wait(page, "s.sessions === 2 && s.state === 'live'", 20)
    assert stats(page)["conversationId"] == conversation_id
    page.wait_for_selector(".line.missed", timeout=10_000)
    missed = page.locator(".line.missed").inner_text()
    cut = server.app.conversations.get(conversation_id).history[-1]
    assert cut.role == "assistant" and cut.interrupted and missed.startswith("I was saying: ")
    assert len(missed) > len("I was saying: ") and missed[len("I was saying: ") :] not in cut.content
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


PHONES = {"390x844": (390, 844), "320x568": (320, 568), "landscape-844x390": (844, 390)}
ON_SCREEN = ("#avatar", "#name", "#status", "#text", "#send", "#voice", "#call", "#mute")


def _fits(page) -> list[str]:
    """What is cut off: anything wider than the screen, or a control outside it."""
    problems = []
    width = page.evaluate("window.innerWidth")
    height = page.evaluate("window.innerHeight")
    if page.evaluate("document.documentElement.scrollWidth") > width:
        problems.append("the page scrolls sideways")
    for selector in ON_SCREEN:
        box = page.locator(selector).bounding_box()
        if box is None or box["x"] < 0 or box["y"] < 0 or box["x"] + box["width"] > width + 0.5:
            problems.append(f"{selector} is cut off: {box}")
        elif box["y"] + box["height"] > height + 0.5:
            problems.append(f"{selector} is below the screen: {box}")
    avatar = page.locator("#avatar").bounding_box()
    if avatar and abs(avatar["width"] - avatar["height"]) > 0.5:
        problems.append(f"the avatar is not a circle: {avatar}")
    return problems


def test_call_screen_shows_who_it_calls_and_fits_a_phone(pictured_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, (width, height) in PHONES.items():
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{pictured_server.page}#token={TOKEN}")
        # before any call: its name and its picture (the card's), not "Your companion"
        page.wait_for_function("document.querySelector('#avatar img')?.naturalWidth === 96", timeout=10_000)
        assert page.inner_text("#name") == "Seraphina" and page.title() == "Seraphina · voice-companion"
        assert pictured_server.app.sessions_started == 0
        assert _fits(page) == [], name
        page.screenshot(path=str(ARTIFACTS / f"web-before-call-{name}.png"))
        page.close()
    page = browser.new_page()
    page.goto(f"{pictured_server.page}#token=not-the-right-token-at-all")
    page.wait_for_timeout(500)
    assert page.inner_text("#name") == "Your companion" and not page.locator("#avatar img").count()
    page.close()


def test_call_screen_keeps_captions_true_and_shows_mute(pictured_server, quiet_browser):
    page = quiet_browser.new_page(viewport={"width": 320, "height": 568})
    console: list[str] = []
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    to_page = []  # the call's socket, to add one event of the server's as if it were sent
    page.route_web_socket(re.compile(r".*/v1/realtime.*"), lambda ws: (to_page.append(ws), ws.connect_to_server()))
    page.goto(f"{pictured_server.page}#token={TOKEN}")
    page.click("#call")
    wait(page, "s.state === 'live'", 15)
    page.click("#mute")
    assert page.inner_text("#status").endswith("· muted")

    # the greeting is cut off by a typed message: its caption keeps only what was spoken
    greeting = page.locator(".line.companion").first
    greeting.wait_for(timeout=30_000)
    wait(page, "s.samplesPlayed > 8000", 30)  # about half a second of it heard
    say(page, "Sorry, I have to tell you something first.")
    page.wait_for_function("document.querySelector('.line.companion').classList.contains('interrupted')")
    spoken = greeting.inner_text()
    assert spoken and spoken != GREETING and GREETING.startswith(spoken.rstrip(".… ")), spoken
    wait(page, "s.repliesPlayed >= 1", 60)  # the typed message is answered
    page.screenshot(path=str(ARTIFACTS / "web-call-320x568.png"))
    assert _fits(page) == []

    # an unfinished caption of the user's words does not outlive the call
    event = {"type": "conversation.item.input_audio_transcription.delta", "text": "and then I was going to"}
    to_page[-1].send(json.dumps(event))
    page.locator(".line.user.interim").wait_for(timeout=5_000)
    page.click("#call")  # hang up
    assert page.locator(".line.user.interim").count() == 0
    assert page.inner_text("#status") == "Call ended"
    assert not console, console


def test_call_screen_takes_a_reply_back_when_the_user_goes_on(server, lecture_browser):
    """The pause after "good luck with that." outlasts the wait after a full stop: a reply
    starts, the speaker goes on, the server withdraws it (`retracted`), and the page drops
    its audio and both captions; the whole utterance is one turn with one answer."""
    page = lecture_browser.new_page(viewport={"width": 390, "height": 780})
    page.goto(f"{server.page}#token={TOKEN}")
    page.click("#call")
    wait(page, "s.state === 'live'", 15)
    wait(page, "s.retractions >= 1", 45)
    page.locator(".line.user:not(.interim)").first.wait_for(timeout=45_000)
    wait(page, "s.repliesPlayed >= 1", 60)
    users = page.locator(".line.user:not(.interim)").all_inner_texts()
    assert len(users) == 1 and "luck" in users[0].lower() and "wealth" in users[0].lower(), users
    assert page.locator(".line.companion").count() == 1  # the withdrawn reply left no caption
    history = server.app.conversations.get(stats(page)["conversationId"]).history
    assert [m.role for m in history] == ["user", "assistant"] and "wealth" in history[0].content.lower()
    page.click("#call")


def test_call_screen_offers_the_missing_voice_and_the_computer_downloads_it(stt, playwright, tmp_path, monkeypatch):
    """Issue 18: a phone user cannot run `voices download` on the computer; the notice
    offers it (the computer can reach the hub: a local test hub), one tap downloads it
    with progress, and the voice picker has it."""
    from conftest import espeak
    from voice_hub import TestVoices
    from voice_setup import ScriptedLLM, install_all

    from voice_companion.engines.models import voice_catalog as catalog
    from voice_companion.engines.voices.pool import VoicePool
    from voice_companion.engines.voices.router import VoiceRouter
    from voice_companion.transports.websocket.voice_downloads import VoiceDownloads

    english, french = "en_US-test_a-x_low", "fr_FR-test-x_low"
    hub = TestVoices.build(tmp_path / "hub").serve()
    monkeypatch.setenv(catalog.CATALOG_ENV, str(hub.catalog))
    models = install_all(hub, tmp_path / "models", skip=(french,))
    router = VoiceRouter(VoicePool(models), english, {"fr": french}, sample_rate=22050, offline=())
    shared = make_shared(stt, ScriptedLLM(), router, voice=english, downloads=VoiceDownloads(models, hub.endpoint))
    server = ServerThread(App(shared, TOKEN))
    clip = read_audio(espeak("Bonjour, je voudrais parler français avec toi ce soir.", "fr", tmp_path / "fr.wav"))
    rate = clip.sample_rate
    speech = np.concatenate([np.zeros(rate // 2), clip.samples, np.zeros(90 * rate)]).astype(np.float32)
    browser = _chromium(playwright, write_wav(tmp_path / "mic.wav", speech, rate))
    try:
        page = browser.new_page(viewport={"width": 390, "height": 780})
        page.goto(f"{server.page}#token={TOKEN}")
        page.click("#call")
        wait(page, "s.state === 'live'", 15)
        offer = page.wait_for_selector("button.download", timeout=60_000)
        assert re.fullmatch(r"Download fr_FR-test-x_low \(\d+ MB\) to the computer", offer.inner_text())
        assert "no French voice is installed" in page.inner_text("#captions")
        offer.click()
        page.wait_for_function("!document.querySelector('button.download')", timeout=30_000)
        assert "is ready: the next reply speaks with it." in page.inner_text("#captions")
        assert french in page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-voice-download.png"))
        assert (models / french / f"{french}.onnx").is_file()  # on the computer, verified and in place
    finally:
        browser.close()
        server.stop()
        hub.stop()
