// Audio worklet: hands the microphone's samples, mixed to mono, to the page as they arrive.
class Recorder extends AudioWorkletProcessor {
  process(inputs) {
    const channels = inputs[0];
    if (channels.length > 0) {
      const mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < mono.length; i += 1) mono[i] += channel[i] / channels.length;
      }
      this.port.postMessage(mono, [mono.buffer]);
    }
    return true;
  }
}

registerProcessor("recorder", Recorder);
