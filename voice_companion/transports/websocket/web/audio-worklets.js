/*
  The two AudioWorklet processors of the call screen, run on the browser's audio
  thread. Why here and not on the page: the audio thread never stalls when the
  page is busy, and only here can we count exactly which samples reached the
  speaker, which the barge-in protocol needs ("how many ms did you really play").

  mic-capture: microphone (any rate) → 16 kHz PCM16 frames of 20 ms, posted to the page.
  pcm-player:  PCM at the voice's rate → the speaker, through a ~120 ms jitter buffer.
*/

const MIC_RATE = 16000;
const MIC_FRAME = 320; // 20 ms at 16 kHz
const PREBUFFER_S = 0.12; // the jitter buffer: audio held before (re)starting to play
const REPORT_S = 0.1; // how often the player tells the page how far it got

class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / MIC_RATE; // input samples per 16 kHz sample
    this.pos = 0; // where the next 16 kHz sample falls in the current input block
    this.last = 0; // the previous block's last sample, to interpolate across blocks
    this.frame = new Int16Array(MIC_FRAME);
    this.filled = 0;
    this.muted = false;
    this.silence = new Float32Array(128);
    this.port.onmessage = (event) => { this.muted = Boolean(event.data.muted); };
  }

  process(inputs) {
    // No input channel (track ended or not started yet): send silence all the same,
    // the server ends the user's turn by hearing it.
    const input = inputs[0].length ? inputs[0][0] : this.silence;
    const n = input.length;
    // Linear interpolation between neighbouring samples; the page low-passes the
    // signal below 8 kHz first, so dropping to 16 kHz does not alias.
    while (this.pos < n) {
      const i = Math.floor(this.pos);
      const before = i === 0 ? this.last : input[i - 1];
      this.push(before + (input[i] - before) * (this.pos - i));
      this.pos += this.step;
    }
    this.pos -= n;
    this.last = input[n - 1];
    return true;
  }

  push(sample) {
    const clipped = this.muted ? 0 : Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = Math.round(clipped * 32767);
    if (this.filled === MIC_FRAME) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(MIC_FRAME);
      this.filled = 0;
    }
  }
}

class PcmPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {id, samples: Float32Array} at the voice's rate, or {id, end: true}
    this.queued = 0; // samples of audio in the queue
    this.pos = 0; // fractional read position in queue[0].samples
    this.last = 0; // the sample before queue[0].samples[0], to interpolate across chunks
    this.setRate(22050);
    this.waiting = true; // filling the jitter buffer: silence until it holds PREBUFFER_S
    this.played = new Map(); // audio id → samples (at the voice's rate) sent to the speaker
    this.fresh = 0; // samples played since the last report
    this.untilReport = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  setRate(rate) {
    this.rate = rate;
    this.step = rate / sampleRate; // voice samples per speaker sample
  }

  receive(message) {
    if (message.type === "rate") {
      this.setRate(message.rate);
    } else if (message.type === "audio") {
      this.queue.push({ id: message.id, samples: message.samples });
      this.queued += message.samples.length;
    } else if (message.type === "end") {
      this.queue.push({ id: message.id, end: true });
    } else if (message.type === "flush") {
      this.flush(message.id);
    } else if (message.type === "pause") { // the user may be speaking: hold, keep the audio
      this.paused = true;
    } else if (message.type === "resume") {
      this.paused = false;
    } else if (message.type === "clear") { // the call dropped: its replies are gone
      this.queue = [];
      this.queued = 0;
      this.pos = 0;
      this.played.clear();
    }
  }

  // Barge-in: drop the reply's audio at once and say how much of it was heard.
  flush(id) {
    if (this.queue.length && this.queue[0].id === id) this.pos = 0;
    this.queue = this.queue.filter((entry) => entry.id !== id);
    this.queued = this.queue.reduce((sum, entry) => sum + (entry.samples ? entry.samples.length : 0), 0);
    this.port.postMessage({ type: "flushed", id, playedMs: this.playedMs(id) });
    this.played.delete(id);
  }

  playedMs(id) {
    return ((this.played.get(id) || 0) / this.rate) * 1000;
  }

  process(inputs, outputs) {
    const channels = outputs[0];
    const out = channels[0];
    for (let k = 0; k < out.length; k++) out[k] = this.paused ? 0 : this.next();
    for (let c = 1; c < channels.length; c++) channels[c].set(out);
    this.untilReport -= out.length;
    if (this.untilReport <= 0) {
      this.untilReport = REPORT_S * sampleRate;
      const id = this.queue.length ? this.queue[0].id : null;
      this.port.postMessage({ type: "progress", id, playedMs: id === null ? 0 : this.playedMs(id), samples: this.fresh });
      this.fresh = 0;
    }
    return true;
  }

  // The next speaker sample: from the head of the queue, resampled, or silence.
  next() {
    while (this.queue.length) {
      const head = this.queue[0];
      if (head.end) { // the reply's last frame has been played
        this.queue.shift();
        this.port.postMessage({ type: "finished", id: head.id, playedMs: this.playedMs(head.id) });
        this.played.delete(head.id);
        continue;
      }
      if (this.pos < head.samples.length) break;
      this.pos -= head.samples.length;
      this.queued -= head.samples.length;
      this.last = head.samples[head.samples.length - 1];
      this.queue.shift();
    }
    if (!this.queue.length) { // ran dry: wait for the jitter buffer to fill again
      this.waiting = true;
      return 0;
    }
    if (this.waiting) {
      const ending = this.queue.some((entry) => entry.end);
      if (this.queued - this.pos < PREBUFFER_S * this.rate && !ending) return 0;
      this.waiting = false;
    }
    const head = this.queue[0];
    const i = Math.floor(this.pos);
    const before = i === 0 ? this.last : head.samples[i - 1];
    const sample = before + (head.samples[i] - before) * (this.pos - i);
    this.pos += this.step;
    this.played.set(head.id, (this.played.get(head.id) || 0) + this.step);
    this.fresh += this.step;
    return sample;
  }
}

registerProcessor("mic-capture", MicCapture);
registerProcessor("pcm-player", PcmPlayer);
