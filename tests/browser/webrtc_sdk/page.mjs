// The page the WebRTC SDK test serves from its own origin: `OpenAIRealtimeWebRTC` from
// `@openai/agents-realtime`, bundled by esbuild, pointed at the bridge with `baseUrl` and given
// the client secret the test minted. It gets the microphone itself (getUserMedia: Chromium's fake
// microphone) and plays the remote track through an <audio> element, as in any app; the page only
// watches: every event of the transport, and the loudness of the stream that element plays.
//
// The test sets `window.sdkCallConfig = {baseUrl, apiKey}` and clicks #start (a user gesture,
// so the audio element and the AudioContext may play); results are in `window.sdkCall`.

import { OpenAIRealtimeWebRTC } from "@openai/agents-realtime";

const call = {
  status: "idle",
  connected: false,
  callId: null,
  error: null,
  errors: [],
  events: [],
  connectionChanges: [],
  remoteTracks: 0,
  /** Whether the SDK's own audio element got the remote stream to play. */
  audioElementHasStream: false,
  audioElementPlaying: false,
  peakRms: 0,
  loudMs: 0,
};
window.sdkCall = call;

const statusLine = document.getElementById("status");
function setStatus(text) {
  call.status = text;
  statusLine.textContent = text;
}

function describe(error) {
  if (error && typeof error === "object" && "error" in error && error.error) {
    const inner = error.error;
    return inner instanceof Error ? inner.message : JSON.stringify(inner);
  }
  return error instanceof Error ? error.message : String(error);
}

/** Loudness of what the audio element plays, measured by a WebAudio analyser (every 20 ms). */
function measure(ctx, stream) {
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const periodMs = 20;
  setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const x of samples) sum += x * x;
    const rms = Math.sqrt(sum / samples.length);
    call.peakRms = Math.max(call.peakRms, rms);
    if (rms > 0.01) call.loudMs += periodMs;
  }, periodMs);
}

async function start() {
  const config = window.sdkCallConfig;
  setStatus("connecting");
  const ctx = new AudioContext();
  await ctx.resume();
  const audioElement = document.createElement("audio");
  document.body.append(audioElement);
  audioElement.addEventListener("playing", () => {
    call.audioElementPlaying = true;
  });
  const transport = new OpenAIRealtimeWebRTC({
    baseUrl: config.baseUrl,
    audioElement,
    // Only to watch the remote track arrive; the SDK's own `ontrack` (set before this runs) is
    // what hands the stream to the audio element.
    changePeerConnection: async (peerConnection) => {
      peerConnection.addEventListener("track", () => {
        call.remoteTracks += 1;
        const stream = audioElement.srcObject;
        call.audioElementHasStream = stream instanceof MediaStream;
        if (call.audioElementHasStream && call.remoteTracks === 1) measure(ctx, stream);
      });
      return peerConnection;
    },
  });
  window.sdkTransport = transport;
  transport.on("*", (event) => {
    const kept = { type: event.type };
    for (const key of ["item_id", "transcript", "event_id"]) if (key in event) kept[key] = event[key];
    if (event.type === "error") kept.error = event.error;
    if (event.type === "conversation.item.retrieved") kept.size = JSON.stringify(event).length;
    call.events.push(kept);
  });
  transport.on("error", (error) => call.errors.push(describe(error)));
  transport.on("connection_change", (status) => call.connectionChanges.push(status));
  try {
    await transport.connect({ apiKey: config.apiKey });
    call.connected = true;
    call.callId = transport.callId ?? null;
    setStatus("connected");
  } catch (error) {
    call.error = describe(error);
    setStatus("failed");
  }
}

document.getElementById("start").addEventListener("click", () => {
  start().catch((error) => {
    call.error = describe(error);
    setStatus("failed");
  });
});
