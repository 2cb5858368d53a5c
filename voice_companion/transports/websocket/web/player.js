/*
  The page's side of the companion's voice: hands PCM16 frames to the pcm-player
  worklet and keeps track of what was really heard. Why a separate file: the
  barge-in bookkeeping (flush at once, then report the ms played) is easy to get
  wrong when mixed with the UI.
*/

export class Player {
  // onProgress({id, playedMs, samples}) about ten times a second;
  // onFinished({id, playedMs}) when a reply's last sample has been played.
  constructor(context, { onProgress, onFinished }) {
    this.node = new AudioWorkletNode(context, "pcm-player", { numberOfInputs: 0, outputChannelCount: [1] });
    this.node.connect(context.destination);
    this.flushes = new Map(); // audio id → resolve() of a pending flush
    this.node.port.onmessage = ({ data }) => {
      if (data.type === "progress") onProgress(data);
      else if (data.type === "finished") onFinished(data);
      else if (data.type === "flushed") this.flushes.get(data.id)?.(data.playedMs);
    };
  }

  setRate(rate) {
    this.node.port.postMessage({ type: "rate", rate });
  }

  // One downstream frame's samples (Int16Array) for reply `id`.
  push(id, pcm16) {
    const samples = new Float32Array(pcm16.length);
    for (let i = 0; i < pcm16.length; i++) samples[i] = pcm16[i] / 32768;
    this.node.port.postMessage({ type: "audio", id, samples }, [samples.buffer]);
  }

  // All of reply `id` has arrived: play out what is buffered, then report it finished.
  end(id) {
    this.node.port.postMessage({ type: "end", id });
  }

  // Stop reply `id` now; resolves to the milliseconds of it that were played.
  // The server heard the user start to speak over a reply: hold it (resume() goes on).
  pause() {
    this.node.port.postMessage({ type: "pause" });
  }

  resume() {
    this.node.port.postMessage({ type: "resume" });
  }

  flush(id) {
    return new Promise((resolve) => {
      this.flushes.set(id, (playedMs) => {
        this.flushes.delete(id);
        resolve(playedMs);
      });
      this.node.port.postMessage({ type: "flush", id });
    });
  }

  // Forget everything buffered (the connection dropped; a new one numbers replies anew).
  clear() {
    this.node.port.postMessage({ type: "clear" });
  }

  close() {
    this.node.disconnect();
  }
}
