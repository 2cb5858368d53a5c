/*
  The call screen: one WebSocket to /v1/realtime (docs/protocol.md), captions of
  both sides, the microphone up and the companion's voice down. Why it reconnects
  by itself: a phone drops Wi-Fi now and then, and the call should carry on in the
  same conversation (`?conversation=ID`) without the user doing anything.
  `window.vcStats` counts what happened, for tests and for a look in the console.
*/

import { Microphone } from "./microphone.js";
import { Player } from "./player.js";

const $ = (id) => document.getElementById(id);
const ui = {
  avatar: $("avatar"), name: $("name"), status: $("status"), error: $("error"),
  captions: $("captions"), form: $("type-form"), text: $("text"), send: $("send"),
  voice: $("voice"), call: $("call"), mute: $("mute"),
};
const token = () => new URLSearchParams(location.hash.slice(1)).get("token"); // #token=T: a fragment is never sent in requests
const MARK_EVERY_MS = 500; // playback.mark while a reply plays, so a hang-up keeps what was heard
const MAX_BACKOFF_MS = 10000;
const KEEP_REPLIES = 32;

const stats = (window.vcStats = {
  state: "idle", sessions: 0, conversationId: null, framesSent: 0, framesReceived: 0,
  framesDropped: 0, samplesPlayed: 0, repliesPlayed: 0, truncations: 0, retractions: 0, marks: 0, lastError: null,
  get audio() { return call.context ? `${call.context.state} at ${call.context.sampleRate} Hz, ${call.context.currentTime.toFixed(1)} s` : "off"; },
});

const call = {
  active: false, // the user wants to be in a call (false after hanging up)
  ws: null,
  context: null, mic: null, player: null, wakeLock: null,
  conversationId: null,
  retries: 0, retryTimer: null,
  muted: false,
  replies: new Map(), // response id → {audioId, line, lastMark}
  byAudio: new Map(), // audio id → response id
  interrupted: new Set(), // audio ids whose late frames are dropped
  statusText: "",
  picture: { path: null, url: null }, // the companion's picture, fetched once (with the token)
  userLine: null, // the caption of what the user is saying now
  lastUserLine: null, // the caption of the last finished user turn (removed if its reply is retracted)
  downloads: new Map(), // voice id → its download button, while the computer downloads it
};

// -- the screen ------------------------------------------------------------------------

function setState(state, text) {
  stats.state = state;
  call.statusText = text;
  ui.status.textContent = state === "live" && call.muted ? `${text} · muted` : text; // muted is easy to forget
}

function showError(text) {
  stats.lastError = text;
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
}

function addLine(who, text, ...classes) {
  ui.captions.querySelector(".hint")?.remove();
  const line = document.createElement("p");
  line.className = `line ${who} ${classes.join(" ")}`.trim();
  ui.captions.append(line);
  setCaption(line, text);
  return line;
}

// A caption's text; a stage direction (*she smiles*, never spoken) shows in italics.
function setCaption(line, text) {
  line.dataset.text = text;
  line.replaceChildren(
    ...text.split(/(\*[^*]+\*)/).filter(Boolean).map((part) => {
      if (!/^\*[^*]+\*$/.test(part)) return document.createTextNode(part);
      const action = document.createElement("em");
      action.className = "action";
      action.textContent = part.slice(1, -1);
      return action;
    }),
  );
  line.scrollIntoView({ block: "end" });
}

// Chinese and Japanese clauses join without a space; other text with one.
const UNSPACED = /[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/;
function joinCaption(before, delta) {
  return UNSPACED.test(before.slice(-1)) && UNSPACED.test(delta.slice(0, 1)) ? before + delta : `${before} ${delta}`;
}

// Its picture if it has one (an imported card's), else its initial on a colour of its own.
async function showCompanion(name, picturePath) {
  ui.name.textContent = name;
  document.title = `${name} · voice-companion`;
  const url = picturePath ? await pictureUrl(picturePath) : null;
  if (url) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = "";
    ui.avatar.replaceChildren(img);
    return;
  }
  const hue = [...name].reduce((h, c) => (h * 31 + c.codePointAt(0)) % 360, 7);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 100");
  svg.innerHTML = `<circle cx="50" cy="50" r="50" fill="hsl(${hue} 45% 42%)"/>` +
    `<text x="50" y="52" text-anchor="middle" dominant-baseline="central" font-size="48" fill="#fff"></text>`;
  svg.querySelector("text").textContent = [...name][0]?.toUpperCase() || "?";
  ui.avatar.replaceChildren(svg);
}

// The picture needs the token, so it is fetched (a header, never the URL) and shown
// from memory.
const fetchWithToken = (path) => fetch(path, { headers: { Authorization: `Bearer ${token()}` }, cache: "no-store" });

async function pictureUrl(path) {
  if (call.picture.path === path) return call.picture.url;
  try {
    const response = await fetchWithToken(path);
    if (!response.ok) return null;
    call.picture = { path, url: URL.createObjectURL(await response.blob()) };
    return call.picture.url;
  } catch {
    return null;
  }
}

// Before the call: who it will call (name and picture), if the link has the token.
async function introduce() {
  if (!token()) return;
  try {
    const response = await fetchWithToken("/v1/companion");
    if (!response.ok) return; // a wrong token is explained when the user calls
    const companion = await response.json();
    await showCompanion(companion.name, companion.picture);
  } catch {
    // the computer is not reachable yet: calling explains that
  }
}

// An unfinished caption of the user's words means nothing once the call is over.
function dropInterimCaption() {
  call.userLine?.classList.contains("interim") && call.userLine.remove();
  call.userLine = null;
}

function showVoices(output) {
  const voices = output.voices?.length ? output.voices : [output.voice];
  ui.voice.replaceChildren(...voices.map((v) => new Option(voiceLabel(v), v, false, v === output.voice)));
  ui.voice.disabled = false;
}

// "en_US-joe-medium" (a Piper voice name) → "Joe (en-US)"; other names as they are.
function voiceLabel(voice) {
  // Piper's ids (en_US-joe-medium) and the offline voices' (en_US-festival_slt-hts, zh_CN-kokoro_nezumi-int8)
  const piper = /^([a-z]{2,3})_([A-Z]{2})-(.+)-(x_low|low|medium|high|hts|int8)$/.exec(voice);
  if (!piper) return voice;
  const name = piper[3].replaceAll("_", " ");
  return `${name[0].toUpperCase()}${name.slice(1)} (${piper[1]}-${piper[2]})`;
}

function setLive(live) {
  ui.call.classList.toggle("live", live);
  ui.call.setAttribute("aria-label", live ? "Hang up" : "Call");
  ui.mute.disabled = !live;
}

function setConnected(connected) {
  ui.text.disabled = ui.send.disabled = !connected;
  ui.voice.disabled = !connected;
}

// -- the call --------------------------------------------------------------------------

async function startCall() {
  call.active = true;
  call.retries = 0;
  clearError();
  setLive(true);
  setState("connecting", "Calling…");
  if (!token()) showError("This link has no token. Open the link `voice-companion serve` printed (or scan its QR code again).");
  await startAudio();
  if (call.active) connect();
  else stopAudio(); // hung up while the browser was asking for the microphone
}

// The microphone and speaker. Without them (refused, or not https) the call still
// works by typing.
async function startAudio() {
  if (!window.isSecureContext || !window.AudioWorkletNode) {
    showError("This page is not secure (http), so the browser gives it no microphone or sound. " +
      "Start the server with --tls-self-signed and open the https:// link. You can still type.");
    return;
  }
  call.context = new AudioContext({ latencyHint: "interactive" }); // inside the click: allowed to play
  try {
    await call.context.resume();
    await call.context.audioWorklet.addModule("audio-worklets.js");
    call.player = new Player(call.context, { onProgress, onFinished });
    call.mic = await Microphone.open(call.context, sendAudio);
    call.mic.muted = call.muted;
    navigator.wakeLock?.request("screen").then((lock) => { call.wakeLock = lock; }, () => {}); // screen stays on
  } catch (error) {
    const refused = error.name === "NotAllowedError" || error.name === "SecurityError";
    showError(refused
      ? "The microphone is blocked for this page. Allow it in the browser's site settings, or type instead."
      : `The microphone could not be opened (${error.message || error.name}). You can still type.`);
  }
}

function stopAudio() {
  call.mic?.close();
  call.player?.close();
  call.context?.close();
  call.wakeLock?.release();
  call.mic = call.player = call.context = call.wakeLock = null;
}

function connect() {
  const params = new URLSearchParams();
  if (token()) params.set("token", token());
  if (call.conversationId) params.set("conversation", call.conversationId);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/realtime?${params}`);
  ws.binaryType = "arraybuffer";
  let opened = false;
  ws.onopen = () => { opened = true; };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") handleEvent(JSON.parse(event.data));
    else receiveAudio(event.data);
  };
  ws.onclose = (event) => dropped(ws, event, opened, params);
  call.ws = ws;
}

function send(event) {
  if (call.ws?.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(event));
}

function hangUp() {
  call.active = false;
  clearTimeout(call.retryTimer);
  call.ws?.close(1000, "hung up");
  call.ws = null;
  stopAudio();
  dropInterimCaption();
  ui.avatar.classList.remove("speaking");
  setLive(false);
  setConnected(false);
  setState("idle", "Call ended");
}

// The socket closed. After hanging up that is the end; otherwise find out why in
// plain words and try again, a little later each time.
async function dropped(ws, event, opened, params) {
  if (ws !== call.ws) return;
  call.ws = null;
  setConnected(false);
  call.player?.clear();
  dropInterimCaption(); // the turn it showed is over: the server transcribes it whole or not at all
  if (!call.active) return;
  if (!opened) {
    const why = await diagnose(params);
    if (!call.active) return; // hung up meanwhile
    if (why.fatal) {
      showError(why.text);
      hangUp();
      setState("failed", "Could not call");
      return;
    }
    showError(why.text);
  } else {
    showError(closeReason(event.code));
  }
  const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** call.retries++) * (0.8 + 0.4 * Math.random());
  setState("reconnecting", `Reconnecting in ${Math.round(delay / 1000)} s…`);
  call.retryTimer = setTimeout(() => call.active && connect(), delay);
}

// Browsers hide why a WebSocket handshake failed; the same URL over plain HTTP tells
// (401 wrong token, 503 busy; 426 means the token is fine).
async function diagnose(params) {
  try {
    const response = await fetch(`/v1/realtime?${params}`, { cache: "no-store" });
    if (response.status === 401) {
      return { fatal: true, text: "The companion refused the call: this link's token is wrong or missing. " +
        "Open the link `voice-companion serve` printed (or scan its QR code again)." };
    }
    if (response.status === 503) return { text: "The companion is already in as many calls as it takes. Trying again…" };
    return { text: "The call could not be set up. Trying again…" };
  } catch {
    return { text: "Cannot reach the companion's computer. Is `voice-companion serve` still running, on the same Wi-Fi?" };
  }
}

function closeReason(code) {
  return {
    1001: "The companion's server stopped. Trying to reconnect…",
    1009: "The page sent a message that was too big. Reconnecting…",
    1011: "The call failed on the companion's computer. Reconnecting…",
    4008: "The connection was too slow to keep up. Reconnecting…",
    4009: "The page sent too many bad messages. Reconnecting…",
  }[code] || "The connection dropped. Reconnecting…";
}

// -- events from the server ------------------------------------------------------------

function handleEvent(event) {
  switch (event.type) {
    case "session.created": {
      const session = event.session;
      if (call.conversationId && session.conversation_id !== call.conversationId) {
        addLine("companion", "(A new conversation started: the companion's computer no longer had the old one.)", "failed");
      }
      call.conversationId = stats.conversationId = session.conversation_id;
      stats.sessions += 1;
      call.retries = 0;
      call.replies.clear();
      call.byAudio.clear();
      call.interrupted.clear();
      clearError();
      showCompanion(session.companion.name, session.companion.picture);
      showVoices(session.audio.output);
      call.player?.setRate(session.audio.output.format.rate);
      send({ type: "session.update", session: { audio: { input: { format: { type: "audio/pcm", rate: 16000 } } } } });
      // A new conversation: the companion answers the call with its greeting.
      if (!session.resumed && session.companion.greeting) send({ type: "response.create" });
      setConnected(true);
      setState("live", call.mic ? "In call: just talk" : "In call: type below");
      break;
    }
    case "response.missed": // a reply the drop cut off: the rest, as text
      addLine("companion", `I was saying: ${event.missed_text}`, "missed");
      break;
    case "session.updated":
      showVoices(event.session.audio.output);
      break;
    case "input_audio_buffer.speech_started":
      setState("live", "Listening…");
      break;
    case "conversation.item.input_audio_transcription.delta":
      if (call.userLine) setCaption(call.userLine, event.text);
      else call.userLine = addLine("user", event.text, "interim");
      break;
    case "conversation.item.input_audio_transcription.completed":
      if (call.userLine) setCaption(call.userLine, event.text);
      else call.userLine = addLine("user", event.text);
      call.userLine.classList.remove("interim");
      call.lastUserLine = call.userLine;
      call.userLine = null;
      setState("live", "Thinking…");
      break;
    case "conversation.item.created":
      addLine("user", event.item.content.map((part) => part.text).join(" "));
      setState("live", "Thinking…");
      break;
    case "response.created":
      call.replies.set(event.response_id, { audioId: event.audio_id, line: null, lastMark: 0, userLine: call.lastUserLine });
      call.byAudio.set(event.audio_id, event.response_id);
      forgetOldReplies();
      break;
    case "response.output_text.delta": {
      const reply = call.replies.get(event.response_id);
      if (!reply) break;
      if (reply.line) setCaption(reply.line, joinCaption(reply.line.dataset.text, event.delta));
      else reply.line = addLine("companion", event.delta);
      break;
    }
    case "response.output_audio.paused":
      call.player?.pause();
      break;
    case "response.output_audio.resumed":
      call.player?.resume();
      break;
    case "response.output_audio.started":
      call.player?.setRate(event.format.rate);
      break;
    case "response.output_audio.done":
      if (!call.interrupted.has(event.audio_id)) call.player?.end(event.audio_id);
      break;
    case "response.interrupted": {
      call.player?.resume(); // the held reply is flushed; the next one must play
      const line = call.replies.get(event.response_id)?.line;
      if (line) setCaption(line, event.spoken_text || "…"); // what was spoken; truncated refines it
      interrupted(event.response_id);
      break;
    }
    case "response.done": {
      if (event.status === "retracted") {
        retracted(event.response_id);
        break;
      }
      const reply = call.replies.get(event.response_id);
      if (event.status === "failed") addLine("companion", "(no answer this time)", "failed");
      else if (reply?.line && event.status === "completed") setCaption(reply.line, event.text);
      setState("live", call.mic ? "In call: just talk" : "In call: type below");
      break;
    }
    case "conversation.item.truncated": {
      const line = call.replies.get(event.item_id)?.line;
      const heard = event.text?.replace(/\s*\[interrupted[^\]]*\]$/, ""); // only the words heard
      if (line && heard !== undefined) setCaption(line, heard || "…");
      break;
    }
    case "metrics.turn":
      stats.lastMetrics = event;
      break;
    case "notice": // e.g. no voice for the language just spoken (said once per call)
      if (event.code === "voice_missing") {
        const line = addLine("companion", `(${event.message})`, "failed");
        if (event.details?.download) offerDownload(line, event.details.download);
      }
      break;
    case "voice.download.progress": {
      const button = call.downloads.get(event.voice);
      const percent = Math.floor((100 * event.received_bytes) / Math.max(1, event.total_bytes));
      if (button) button.textContent = `Downloading to the computer… ${percent} %`;
      break;
    }
    case "voice.download.done": {
      const button = call.downloads.get(event.voice);
      call.downloads.delete(event.voice);
      button?.replaceWith(document.createTextNode(`${voiceLabel(event.voice)} is ready: the next reply speaks with it.`));
      showVoices({ voice: ui.voice.value, voices: event.voices });
      break;
    }
    case "error":
      serverError(event);
      break;
    default: // pong, speech_stopped and events added later: nothing to show
  }
}

// A long call must not grow without end; the server keeps the last 32 replies too.
function forgetOldReplies() {
  for (const [responseId, reply] of call.replies) {
    if (call.replies.size <= KEEP_REPLIES) break;
    call.replies.delete(responseId);
    call.byAudio.delete(reply.audioId);
    call.interrupted.delete(reply.audioId);
  }
}

// The computer the call screen talks to can download a voice it lacks (the notice
// offers one only when that computer can reach the voice hub now).
function offerDownload(line, offer) {
  const button = document.createElement("button");
  button.className = "download";
  const size = Math.max(1, Math.round(offer.size_bytes / 1e6));
  const label = `Download ${offer.name || voiceLabel(offer.voice)} (${size} MB) to the computer`;
  button.textContent = label;
  button.dataset.label = label;
  button.addEventListener("click", () => {
    button.disabled = true;
    button.textContent = "Downloading to the computer… 0 %";
    call.downloads.set(offer.voice, button);
    send({ type: "voice.download", voice: offer.voice });
  });
  line.append(" ", button);
}

function serverError(event) {
  if (event.code === "download_failed") {
    for (const button of call.downloads.values()) {
      button.disabled = false; // one more try is one tap away
      button.textContent = button.dataset.label;
    }
    call.downloads.clear();
    showError(`The computer could not download the voice: ${event.message}`);
    return;
  }
  if (event.code === "rate_limited" || event.code === "unknown_item") {
    console.warn(event.code, event.message); // our own bookkeeping, nothing the user can act on
    return;
  }
  const plain = {
    llm_failed: "The companion could not come up with an answer. Try again.",
    internal_error: "Something went wrong on the companion's computer.",
    unknown_voice: "That voice is not available on the companion's computer.",
  }[event.code];
  showError(plain || `The companion did not understand: ${event.message}`);
}

// Barge-in: stop the reply now, drop what is still on its way, and tell the server
// how much the user actually heard, so the history keeps only those words.
async function interrupted(responseId) {
  const reply = call.replies.get(responseId);
  if (reply) reply.line?.classList.add("interrupted");
  if (!reply || !call.player) return; // nothing played here: the server's figure stands
  call.interrupted.add(reply.audioId);
  const playedMs = await call.player.flush(reply.audioId);
  send({ type: "conversation.item.truncate", item_id: responseId, content_index: 0, audio_end_ms: Math.round(playedMs) });
  stats.truncations += 1;
}

// The user went on with the turn it answered: that reply never happened (it is not in
// the history, so nothing to truncate); the whole turn's caption and answer follow.
async function retracted(responseId) {
  call.player?.resume();
  stats.retractions += 1;
  const reply = call.replies.get(responseId);
  if (!reply) return;
  call.interrupted.add(reply.audioId);
  await call.player?.flush(reply.audioId);
  reply.line?.remove();
  reply.userLine?.remove();
  call.replies.delete(responseId);
}

// -- audio -----------------------------------------------------------------------------

function sendAudio(frame) {
  const ws = call.ws;
  // Skip frames while disconnected or while the network is stalled (nothing piles up).
  if (ws?.readyState !== WebSocket.OPEN || ws.bufferedAmount > 64 * 1024) return;
  ws.send(frame);
  stats.framesSent += 1;
}

// A downstream frame: "VC", version 1, kind 1, audio id (u32 LE), seq (u32 LE), PCM16 LE.
function receiveAudio(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 12 || view.getUint16(0) !== 0x5643 || view.getUint8(2) !== 1 || view.getUint8(3) !== 1) return;
  const audioId = view.getUint32(4, true);
  stats.framesReceived += 1;
  if (call.interrupted.has(audioId) || !call.player) {
    stats.framesDropped += 1;
    return;
  }
  call.player.push(audioId, new Int16Array(buffer, 12, (buffer.byteLength - 12) >> 1));
}

function onProgress({ id, playedMs, samples }) {
  stats.samplesPlayed += Math.round(samples);
  ui.avatar.classList.toggle("speaking", samples > 0);
  const responseId = call.byAudio.get(id);
  const reply = call.replies.get(responseId);
  if (!reply || call.interrupted.has(id) || playedMs <= 0) return;
  if (performance.now() - reply.lastMark >= MARK_EVERY_MS) {
    reply.lastMark = performance.now();
    mark(responseId, playedMs);
  }
}

function onFinished({ id, playedMs }) {
  const responseId = call.byAudio.get(id);
  if (responseId === undefined || call.interrupted.has(id)) return;
  mark(responseId, playedMs);
  stats.repliesPlayed += 1;
}

function mark(responseId, playedMs) {
  send({ type: "playback.mark", response_id: responseId, played_ms: Math.round(playedMs) });
  stats.marks += 1;
}

// -- controls --------------------------------------------------------------------------

ui.call.addEventListener("click", () => (call.active ? hangUp() : startCall()));

ui.mute.addEventListener("click", () => {
  call.muted = !call.muted;
  if (call.mic) call.mic.muted = call.muted; // zeros keep flowing: the server hears silence
  ui.mute.setAttribute("aria-pressed", String(call.muted));
  ui.mute.textContent = call.muted ? "Unmute" : "Mute";
  setState(stats.state, call.statusText);
});

ui.voice.addEventListener("change", () => {
  send({ type: "session.update", session: { audio: { output: { voice: ui.voice.value } } } });
});

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || call.ws?.readyState !== WebSocket.OPEN) return;
  send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
  send({ type: "response.create" });
  ui.text.value = "";
});

introduce();
