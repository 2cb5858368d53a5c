/*
  The user's microphone as 20 ms frames of 16 kHz PCM16, the upstream format of
  docs/protocol.md. Why the browser's echo cancellation and noise suppression:
  on a phone's loudspeaker the companion would otherwise hear itself and
  interrupt its own replies. The frames keep coming while muted (as zeros),
  because the server ends a turn by hearing silence.
*/

const CUTOFF_HZ = 7000; // below 8 kHz, the Nyquist frequency at 16 kHz

export class Microphone {
  // onFrame(ArrayBuffer) receives each 20 ms frame of PCM16 at 16 kHz.
  static async open(context, onFrame) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    return new Microphone(context, stream, onFrame);
  }

  constructor(context, stream, onFrame) {
    this.stream = stream;
    this.source = context.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(context, "mic-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
    });
    this.node.port.onmessage = ({ data }) => onFrame(data);
    // Two low-pass stages (a 4th-order filter) against aliasing in the worklet's resampling.
    let last = this.source;
    if (context.sampleRate > 2 * CUTOFF_HZ + 1000) {
      for (let i = 0; i < 2; i++) {
        const filter = new BiquadFilterNode(context, { type: "lowpass", frequency: CUTOFF_HZ, Q: Math.SQRT1_2 });
        last.connect(filter);
        last = filter;
      }
    }
    last.connect(this.node);
    // Browsers only run nodes that lead to the speaker; this one leads there silently.
    this.sink = new GainNode(context, { gain: 0 });
    this.node.connect(this.sink).connect(context.destination);
  }

  set muted(value) {
    this.node.port.postMessage({ muted: value });
  }

  close() {
    for (const track of this.stream.getTracks()) track.stop();
    this.source.disconnect();
    this.node.disconnect();
    this.sink.disconnect();
  }
}
