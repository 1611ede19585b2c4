// The page of `liser export --web`: a LiSER student's waveform graph (model.onnx: 16 kHz samples in, the
// utterance's and each window's emotion probabilities out) run by ONNX Runtime Web, with nothing fetched from
// anywhere but this folder.  Audio is decoded by the browser at 16 kHz: a 16 kHz file is not resampled.
import * as ort from "./ort/ort.wasm.min.mjs";

const MIN_SECONDS = 0.5; // as `liser predict`: below this a window would be mostly padding
const HOP_SECONDS = 0.5; // microphone: one point every half second, as `liser stream`
const COLOURS = ["#2f6fde", "#e07b24", "#2e9e5b", "#c9363a", "#8a55c9", "#8c6239", "#d45fa7", "#6b7280"];

const $ = (id) => document.getElementById(id);
const state = { session: null, card: null, queue: Promise.resolve() };
// for whoever drives the page (the browser test): every result by name, and the last one
window.liser = { results: {}, last: null };

function setState(name, message) {
  document.body.dataset.state = name;
  $("status").textContent = message;
}

ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static server does not give
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;

async function load() {
  state.card = await (await fetch("model.json")).json();
  state.session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
  const { card } = state;
  const training = card.training;
  $("model").textContent =
    `LiSER student (${card.precision}), trained on ${training.corpus} fold ${training.fold}: ` +
    `${card.classes.length} emotions, ${card.parameters.exported.toLocaleString("en")} parameters, ` +
    `windows of ${card.front_end.crop_s} s every ${card.file_level.stride_s} s.`;
  $("microphone").disabled = false;
  setState("ready", "Ready: drop a file or start the microphone.");
}

// One run at a time: ONNX Runtime Web's session does not take overlapping runs.
function run(samples) {
  const job = state.queue.then(async () => {
    const input = new ort.Tensor("float32", samples, [samples.length]);
    return state.session.run({ [state.card.input.name]: input });
  });
  state.queue = job.catch(() => {});
  return job;
}

function checkUsable(samples) {
  const seconds = samples.length / state.card.input.sample_rate;
  if (!samples.some((value) => value !== 0)) throw new Error("digital silence: every sample is 0");
  if (seconds < MIN_SECONDS)
    throw new Error(`too short: ${seconds.toFixed(2)} s of audio, at least ${MIN_SECONDS} s needed`);
}

async function score(samples) {
  const outputs = await run(samples);
  const k = state.card.classes.length;
  const perWindow = outputs.window_probabilities.data;
  const rows = [];
  for (let i = 0; i < perWindow.length / k; i += 1) rows.push(Array.from(perWindow.slice(i * k, (i + 1) * k)));
  return {
    probabilities: Array.from(outputs.probabilities.data),
    windowProbabilities: rows,
    windowStartS: Array.from(outputs.window_start_s.data),
  };
}

function mono(buffer) {
  const out = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c += 1) {
    const channel = buffer.getChannelData(c);
    for (let i = 0; i < out.length; i += 1) out[i] += channel[i] / buffer.numberOfChannels;
  }
  return out;
}

// The browser's resampler, for a microphone that cannot record at 16 kHz directly.
async function resampled(samples, rate) {
  const target = state.card.input.sample_rate;
  if (rate === target) return samples;
  const context = new OfflineAudioContext(1, Math.round((samples.length * target) / rate), target);
  const buffer = context.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  source.start();
  return (await context.startRendering()).getChannelData(0);
}

async function analyseFile(file) {
  setState("busy", `Decoding ${file.name}…`);
  try {
    let buffer;
    try {
      // decodeAudioData resamples to the context's rate: 16 kHz, the model's
      buffer = await new OfflineAudioContext(1, 1, state.card.input.sample_rate).decodeAudioData(
        await file.arrayBuffer(),
      );
    } catch (problem) {
      throw new Error(`unreadable audio (${problem.message || problem})`);
    }
    const samples = mono(buffer);
    checkUsable(samples);
    setState("busy", `Scoring ${file.name}…`);
    const result = await score(samples);
    show(file.name, samples.length / state.card.input.sample_rate, result);
  } catch (problem) {
    setState("error", `${file.name}: ${problem.message || problem}`);
  }
}

function show(name, seconds, result) {
  const record = { name, seconds, classes: state.card.classes, ...result };
  window.liser.results[name] = record;
  window.liser.last = record;
  $("results").hidden = false;
  $("title").textContent = `${name}: ${seconds.toFixed(2)} s`;
  drawPlot(record);
  drawDistribution(record.probabilities);
  const top = record.classes[argmax(record.probabilities)];
  setState("done", `${name}: ${top} (${(100 * Math.max(...record.probabilities)).toFixed(1)} %)`);
}

function argmax(values) {
  return values.reduce((best, value, i) => (value > values[best] ? i : best), 0);
}

// Emotion over time: each window's probabilities at its centre.
function drawPlot({ classes, windowProbabilities, windowStartS, seconds }) {
  const canvas = $("plot");
  const g = canvas.getContext("2d");
  const margin = { left: 48, right: 16, top: 12, bottom: 36 };
  const width = canvas.width - margin.left - margin.right;
  const height = canvas.height - margin.top - margin.bottom;
  const half = state.card.front_end.crop_s / 2;
  const end = Math.max(seconds, 2 * half);
  const x = (t) => margin.left + (width * t) / end;
  const y = (p) => margin.top + height * (1 - p);
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.font = "13px system-ui, sans-serif";
  g.fillStyle = "#5a6272";
  g.strokeStyle = "#e3e6ec";
  g.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath();
    g.moveTo(margin.left, y(p));
    g.lineTo(margin.left + width, y(p));
    g.stroke();
    g.fillText(p.toFixed(2), 8, y(p) + 4);
  }
  const step = end > 30 ? 10 : end > 10 ? 2 : 1;
  for (let t = 0; t <= end + 1e-9; t += step) g.fillText(`${t} s`, x(t) - 8, canvas.height - 12);
  classes.forEach((_, c) => {
    g.strokeStyle = g.fillStyle = COLOURS[c % COLOURS.length];
    g.lineWidth = 2;
    g.beginPath();
    windowProbabilities.forEach((row, i) => {
      const px = x(windowStartS[i] + half);
      if (i === 0) g.moveTo(px, y(row[c]));
      else g.lineTo(px, y(row[c]));
    });
    g.stroke();
    if (windowProbabilities.length === 1) {
      g.beginPath();
      g.arc(x(windowStartS[0] + half), y(windowProbabilities[0][c]), 4, 0, 2 * Math.PI);
      g.fill();
    }
  });
  $("legend").replaceChildren(
    ...classes.map((name, c) => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = COLOURS[c % COLOURS.length];
      item.append(swatch, name);
      return item;
    }),
  );
}

function drawDistribution(probabilities) {
  const top = argmax(probabilities);
  $("distribution").replaceChildren(
    ...state.card.classes.map((name, c) => {
      const row = document.createElement("div");
      row.className = c === top ? "bar top" : "bar";
      const label = document.createElement("span");
      label.textContent = name;
      const track = document.createElement("div");
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${(100 * probabilities[c]).toFixed(1)}%`;
      fill.style.background = COLOURS[c % COLOURS.length];
      track.append(fill);
      const value = document.createElement("span");
      value.textContent = `${(100 * probabilities[c]).toFixed(1)} %`;
      row.append(label, track, value);
      return row;
    }),
  );
}

// The microphone: a live point every hop from the last window of audio, then the whole recording when stopped.
const microphone = { context: null, stream: null, chunks: [], length: 0, nextLive: 0, live: null };

async function startMicrophone() {
  const rate = state.card.input.sample_rate;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  let context;
  let source;
  try {
    context = new AudioContext({ sampleRate: rate });
    source = context.createMediaStreamSource(stream);
  } catch {
    // some browsers cannot connect a microphone to a context at another rate: record at theirs, resample
    context?.close();
    context = new AudioContext();
    source = context.createMediaStreamSource(stream);
  }
  await context.audioWorklet.addModule("recorder.js");
  const recorder = new AudioWorkletNode(context, "recorder");
  const windowSamples = (state.card.front_end.crop_frames - 1) * state.card.front_end.hop_length;
  Object.assign(microphone, { context, stream, chunks: [], length: 0, live: { windowProbabilities: [], windowStartS: [] } });
  microphone.nextLive = Math.round((windowSamples * context.sampleRate) / rate);
  recorder.port.onmessage = ({ data }) => {
    microphone.chunks.push(data);
    microphone.length += data.length;
    if (microphone.length >= microphone.nextLive) {
      microphone.nextLive = microphone.length + Math.round(HOP_SECONDS * context.sampleRate);
      liveUpdate(Math.round((windowSamples * context.sampleRate) / rate));
    }
  };
  source.connect(recorder).connect(context.destination);
  $("microphone").textContent = "Stop and score the recording";
  $("microphone").classList.add("recording");
  setState("recording", "Listening… each point is the last 3 s.");
}

function recorded(count = microphone.length) {
  const out = new Float32Array(count);
  let filled = 0;
  for (let i = microphone.chunks.length - 1; i >= 0 && filled < count; i -= 1) {
    const chunk = microphone.chunks[i];
    const take = Math.min(chunk.length, count - filled);
    out.set(chunk.subarray(chunk.length - take), count - filled - take);
    filled += take;
  }
  return out;
}

async function liveUpdate(windowSamples) {
  const { context, live } = microphone;
  const seconds = microphone.length / context.sampleRate;
  const samples = await resampled(recorded(windowSamples), context.sampleRate);
  if (!samples.some((value) => value !== 0)) return;
  const result = await score(samples);
  live.windowProbabilities.push(result.probabilities);
  live.windowStartS.push(seconds - state.card.front_end.crop_s);
  const record = { name: "microphone", seconds, classes: state.card.classes, probabilities: result.probabilities, ...live };
  $("results").hidden = false;
  $("title").textContent = `microphone: ${seconds.toFixed(1)} s (live)`;
  drawPlot(record);
  drawDistribution(result.probabilities);
}

async function stopMicrophone() {
  const { context, stream } = microphone;
  stream.getTracks().forEach((track) => track.stop());
  await context.close();
  $("microphone").textContent = "Start the microphone";
  $("microphone").classList.remove("recording");
  try {
    const samples = await resampled(recorded(), context.sampleRate);
    checkUsable(samples);
    setState("busy", "Scoring the recording…");
    show("microphone", samples.length / state.card.input.sample_rate, await score(samples));
  } catch (problem) {
    setState("error", `microphone: ${problem.message || problem}`);
  }
  microphone.context = null;
}

function wire() {
  $("file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) analyseFile(file);
    event.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const [file] = event.dataTransfer.files;
    if (file) analyseFile(file);
  });
  $("microphone").addEventListener("click", async () => {
    try {
      await (microphone.context ? stopMicrophone() : startMicrophone());
    } catch (problem) {
      setState("error", `microphone: ${problem.message || problem}`);
    }
  });
}

wire();
load().catch((problem) => setState("error", `The model could not be loaded: ${problem.message || problem}`));
