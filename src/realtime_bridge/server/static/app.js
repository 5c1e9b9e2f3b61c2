// Realtime Bridge demo page: one session in the GA Realtime protocol, over WebRTC or a WebSocket.
//
// WebRTC first (as the API recommends for browsers): the page offers an Opus track and the
// `oai-events` data channel, POSTs the offer to its own bridge's `/v1/realtime/calls`, and gets
// the browser's echo cancellation, jitter buffer and loss handling with it. The events on the data
// channel are the WebSocket's, so the same code below shows them. When the bridge offers no
// WebRTC (an older bridge, WEBRTC_ENABLED=false, no UDP path), the page falls back to the
// WebSocket: there audio goes both ways as 24 kHz PCM16 (the API's native and only PCM rate):
// the capture worklet resamples the microphone, the playback worklet resamples for the speakers.
//
// For tests and the curious, everything the page counts is in `window.bridgeDemo.stats`.

const WIRE_RATE = 24000;
const BYTES_PER_MS = (WIRE_RATE * 2) / 1000; // PCM16 mono at 24 kHz
const LOG_LIMIT = 400;
const AUDIO_CHUNK_TYPES = new Set(["input_audio_buffer.append", "response.output_audio.delta"]);
/** What a sent event's first answer is, for the round-trip figure. */
const ANSWERED_BY = {
  "session.update": "session.updated",
  "conversation.item.create": "conversation.item.added",
  "conversation.item.truncate": "conversation.item.truncated",
  "input_audio_buffer.commit": "input_audio_buffer.committed",
  "input_audio_buffer.clear": "input_audio_buffer.cleared",
  "response.create": "response.created",
  "response.cancel": "response.done",
};

/** Error codes (SPEC §4) in words a person understands. */
const ERROR_WORDS = {
  unauthorized:
    "The bridge refused the token. Enter a valid bridge token (the bridge has BRIDGE_API_KEYS set).",
  forbidden_origin: "The bridge does not accept connections from this page's address (ALLOWED_ORIGINS).",
  session_limit_reached: "The bridge is busy: it already has as many sessions as it allows. Try again in a moment.",
  upstream_unavailable:
    "The bridge could not reach the AI service (upstream unavailable). Try again later; if it persists, check the bridge's key and network.",
  upstream_closed: "The AI service ended the session.",
  session_idle_timeout: "The session was closed after being idle for too long. Connect again to continue.",
  session_expired: "The session reached its maximum duration or was ended by an operator. Connect again to continue.",
  server_shutting_down: "The bridge is shutting down. Connect again in a moment.",
  message_too_large: "A message was too large for the bridge.",
  invalid_audio: "The bridge could not read the audio the page sent.",
  unsupported_audio_format: "The bridge does not support the audio format the page asked for.",
};
/** Close codes (SPEC §9) in words. */
const CLOSE_WORDS = {
  1001: ERROR_WORDS.server_shutting_down,
  1006: "The connection to the bridge was lost.",
  1007: "The bridge received text it could not decode.",
  1008: "The bridge refused the connection (the token or this page's origin was not accepted).",
  1009: ERROR_WORDS.message_too_large,
  1011: "The bridge hit an internal error and ended the session.",
  1013: ERROR_WORDS.session_limit_reached,
  1014: ERROR_WORDS.upstream_unavailable,
  3000: "The AI service refused the bridge's credentials (check the bridge's API key).",
};
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** How long ICE and DTLS get to open the data channel before the page falls back. */
const WEBRTC_OPEN_TIMEOUT_MS = 8000;
/** After push-to-talk is released, the microphone stays on the track this long, so the last
 *  words (still in the browser's pipeline) reach the bridge before the commit. */
const PTT_TAIL_MS = 120;
/** RMS (full scale 1) above which the assistant's track counts as audible. */
const AUDIBLE_LEVEL = 0.003;
/** HTTP answers to the offer that mean "no WebRTC here", so the WebSocket is tried. */
const NO_WEBRTC_STATUSES = new Set([400, 404, 405, 501, 503]);
/** ... except these refusals, which the WebSocket would get too. */
const FINAL_REFUSAL_CODES = new Set(["session_limit_reached", "server_shutting_down", "upstream_unavailable"]);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  alert: $("alert"),
  form: $("connect-form"),
  wsUrl: $("ws-url"),
  token: $("token"),
  transport: $("transport"),
  transportState: $("transport-state"),
  remoteAudio: $("remote-audio"),
  mode: $("mode"),
  connect: $("connect"),
  disconnect: $("disconnect"),
  ptt: $("ptt"),
  pttHelp: $("ptt-help"),
  vadHelp: $("vad-help"),
  micState: $("mic-state"),
  micStateText: $("mic-state-text"),
  meter: $("meter"),
  level: $("level"),
  transcript: $("transcript"),
  textForm: $("text-form"),
  text: $("text"),
  send: $("send"),
  logFilter: $("log-filter"),
  logAudio: $("log-audio"),
  logClear: $("log-clear"),
  log: $("log"),
  fig: {
    rtt: $("fig-rtt"),
    answer: $("fig-answer"),
    buffered: $("fig-buffered"),
    received: $("fig-received"),
    played: $("fig-played"),
    sent: $("fig-sent"),
    turns: $("fig-turns"),
    truncates: $("fig-truncates"),
  },
};

function freshStats() {
  return {
    state: "idle",
    sessionId: null,
    eventsSent: 0,
    eventsReceived: 0,
    audioSentMs: 0,
    audioReceivedBytes: 0,
    audioReceivedMs: 0,
    audioPlayedMs: 0,
    audioBufferedMs: 0,
    jitterTargetMs: 0,
    underruns: 0,
    speechStarted: 0,
    turns: 0,
    responses: 0,
    answers: 0,
    truncates: [],
    rttMs: null,
    rttSamples: 0,
    answerLatencyMs: null,
    errors: [],
    closeCode: null,
    closeMessage: null,
    /** "webrtc" or "websocket" once connected; why WebRTC was not used, when it was not. */
    transport: null,
    fallbackReason: null,
    callId: null,
    /** Over WebRTC: ms of the answer's track that were not silent at this page. */
    audioAudibleMs: 0,
  };
}

const demo = {
  stats: freshStats(),
  info: null,
  wsUrl: null,
  /** Every event type seen, in order: {dir: "in"|"out", type}. Capped. */
  events: [],
  connect: () => connect(),
  disconnect: () => disconnect(),
  sendText: (text) => sendText(text),
  transcript: () =>
    [...ui.transcript.children].map((li) => ({
      role: li.dataset.role,
      text: li.querySelector(".text").textContent,
      interrupted: li.dataset.interrupted === "true",
    })),
};
window.bridgeDemo = demo;

// -- session state ----------------------------------------------------------------------------

let ws = null; // the WebSocket, when that is the transport
/** The WebRTC call being set up or running: {pc, dc, callId, secret, sender, sending, tap}. */
let rtc = null;
/** "webrtc" or "websocket" while a connection is open. */
let transport = null;
/** Over WebRTC: the assistant's audio on the track now ({start, audibleMs}), and the last one. */
let rtcRun = null;
let lastRun = null;
let closedRunsMs = 0;
let userClosed = false;
let opened = false;
let lastErrorCode = null;
let eventCounter = 0;
let mode = ui.mode.value;
let activeResponseId = null;
let turnEndedAt = null;
const pending = []; // {id, expect, sentAt}
const audioItems = new Map(); // assistant audio item id → {id, contentIndex, receivedBytes, done, interrupted}
let currentAudioItem = null;
const entries = new Map(); // transcript key → <li>

const audio = {
  ctx: null,
  playback: null,
  capture: null,
  source: null,
  stream: null,
  clearWaiters: [],
  flushWaiters: [],
};
let pttHeld = false;
/** The address of the last connection attempt, for explaining a refusal. */
let lastUrl = null;
let pttFlushing = false;
let pttSentMs = 0;
let lastLevelUpdate = 0;

// -- small helpers ----------------------------------------------------------------------------

function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** PCM16 on the wire is little-endian; swap on the (rare) big-endian platform. */
function swapIfBigEndian(bytes) {
  if (LITTLE_ENDIAN) return bytes;
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const b = bytes[i];
    bytes[i] = bytes[i + 1];
    bytes[i + 1] = b;
  }
  return bytes;
}

function formatMs(ms) {
  return ms === null || ms === undefined ? "–" : `${Math.round(ms)} ms`;
}

function setStatus(state, text) {
  demo.stats.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  setControls();
}

function showAlert(message) {
  ui.alert.textContent = message;
  ui.alert.hidden = false;
}

function clearAlert() {
  ui.alert.hidden = true;
  ui.alert.textContent = "";
}

class HumanError extends Error {}

// -- the WebSocket address --------------------------------------------------------------------

const WILDCARD_HOSTS = new Set(["0.0.0.0", "[::]", ""]);

/** The client WebSocket address from /info: same origin when one listener serves both. */
function wsUrlFromInfo(info) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const listeners = (info && info.listeners) || {};
  let wsListener;
  try {
    wsListener = new URL(listeners.ws);
  } catch {
    return `${scheme}//${location.host}/v1/realtime`;
  }
  let httpListener = null;
  try {
    httpListener = new URL(listeners.http);
  } catch {
    // no http listener reported: fall through
  }
  if (httpListener && httpListener.port === wsListener.port) {
    return `${scheme}//${location.host}/v1/realtime`;
  }
  const host = WILDCARD_HOSTS.has(wsListener.hostname) ? location.hostname : wsListener.hostname;
  const port = wsListener.port ? `:${wsListener.port}` : "";
  return `${wsListener.protocol}//${host}${port}/v1/realtime`;
}

async function loadInfo() {
  try {
    const response = await fetch("/info", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    demo.info = await response.json();
    demo.wsUrl = wsUrlFromInfo(demo.info);
  } catch {
    demo.wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/realtime`;
    showAlert("Could not read the bridge's /info; check the WebSocket address below before connecting.");
  }
  if (!ui.wsUrl.value) ui.wsUrl.value = demo.wsUrl;
  const upstream = demo.info && demo.info.upstream;
  if (upstream) ui.status.title = `Upstream: ${upstream.kind}, model ${upstream.model}`;
}

// -- sending ----------------------------------------------------------------------------------

function isOpen() {
  if (transport === "webrtc") return rtc !== null && rtc.dc.readyState === "open";
  return ws !== null && ws.readyState === WebSocket.OPEN;
}

function busy() {
  return ws !== null || rtc !== null || demo.stats.state === "connecting";
}

function sendEvent(event) {
  if (!isOpen()) return false;
  if (transport === "webrtc" && event.type === "input_audio_buffer.append") return false; // the track carries it
  if (!AUDIO_CHUNK_TYPES.has(event.type)) {
    event.event_id = `page_${++eventCounter}`;
    const expect = ANSWERED_BY[event.type];
    if (expect) pending.push({ id: event.event_id, expect, sentAt: performance.now() });
    if (pending.length > 64) pending.shift();
  }
  (transport === "webrtc" ? rtc.dc : ws).send(JSON.stringify(event));
  demo.stats.eventsSent += 1;
  logEvent("out", event.type);
  return true;
}

function sessionConfig() {
  const turnDetection = mode === "vad" ? { type: "server_vad" } : null;
  if (transport === "webrtc") {
    // the audio is Opus on the tracks; the bridge decides what the upstream gets
    return {
      type: "session.update",
      session: {
        type: "realtime",
        output_modalities: ["audio"],
        audio: { input: { transcription: { model: "whisper-1" }, turn_detection: turnDetection } },
      },
    };
  }
  return {
    type: "session.update",
    session: {
      type: "realtime",
      output_modalities: ["audio"],
      audio: {
        input: {
          format: { type: "audio/pcm", rate: WIRE_RATE },
          transcription: { model: "whisper-1" },
          turn_detection: turnDetection,
        },
        output: { format: { type: "audio/pcm", rate: WIRE_RATE } },
      },
    },
  };
}

function sendAudioFrame(buffer) {
  const bytes = swapIfBigEndian(new Uint8Array(buffer));
  if (sendEvent({ type: "input_audio_buffer.append", audio: bytesToBase64(bytes) })) {
    const ms = bytes.length / BYTES_PER_MS;
    demo.stats.audioSentMs += ms;
    pttSentMs += ms;
  }
}

async function sendText(text) {
  const message = (text || "").trim();
  if (!message || !isOpen()) return false;
  if (activeResponseId !== null || hasUnheardAudio()) await bargeIn({ cancel: true });
  addEntry("user", `text_${eventCounter + 1}`, message);
  sendEvent({
    type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text: message }] },
  });
  sendEvent({ type: "response.create" });
  demo.stats.turns += 1;
  turnEndedAt = performance.now();
  return true;
}

// -- connecting -------------------------------------------------------------------------------

function subprotocols(token) {
  const protocols = ["realtime"];
  if (token) {
    if (!SUBPROTOCOL_TOKEN.test(token)) {
      throw new HumanError(
        "That token contains characters a WebSocket subprotocol cannot carry (spaces, quotes, commas…). Check it was pasted whole.",
      );
    }
    protocols.push(`openai-insecure-api-key.${token}`);
  }
  return protocols;
}

function checkedUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new HumanError("The WebSocket address is not a valid URL (it looks like ws://host:port/v1/realtime).");
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new HumanError("The WebSocket address must start with ws:// or wss://.");
  }
  return url.href;
}

/** With the operator's permission (DEMO_SECRETS=true), the page gets a one-minute client
 *  secret from its own bridge, as a real app's page gets one from its backend; the token
 *  field then stays empty. Otherwise null. */
async function demoSecret() {
  const auth = (demo.info && demo.info.auth) || {};
  if (!auth.demo_secrets) return null;
  const response = await fetch("/demo/secret", { method: "POST", cache: "no-store" });
  if (!response.ok) throw new HumanError(`The bridge gave this page no secret (HTTP ${response.status}).`);
  const body = await response.json();
  demo.usedDemoSecret = true;
  return body.value;
}

/** Why this connection will not try WebRTC, or null when it will. */
function webRtcSkipped(url) {
  if (ui.transport.value === "websocket") return "WebSocket chosen";
  if (typeof RTCPeerConnection === "undefined") return "this browser has no WebRTC";
  if (demo.info && demo.info.webrtc && demo.info.webrtc.enabled === false) {
    return "WebRTC is off on this bridge";
  }
  // The WebRTC endpoint is this page's own bridge; another WebSocket address is another bridge.
  if (demo.wsUrl && url !== new URL(demo.wsUrl).href) return "another bridge's address was given";
  return null;
}

async function connect() {
  if (busy()) return;
  clearAlert();
  const token = ui.token.value.trim();
  let url;
  let secret;
  try {
    url = checkedUrl(ui.wsUrl.value.trim());
    if (token) subprotocols(token); // the WebSocket fallback must be able to carry it
    secret = token || (await demoSecret());
  } catch (error) {
    showAlert(error.message);
    return;
  }
  mode = ui.mode.value;
  demo.stats = freshStats();
  closedRunsMs = 0;
  rtcRun = null;
  lastRun = null;
  setStatus("connecting", "Connecting…");
  showTransport();
  setControls();
  const skipped = webRtcSkipped(url);
  try {
    if (skipped === null) await ensureContext(); // the microphone's and the answer's meters
    else await startAudioOutput();
  } catch (error) {
    showAlert(`Audio output is unavailable (${error.message}); you can still type.`);
  }
  if (mode !== "text") {
    try {
      await startMicrophone();
    } catch (error) {
      showAlert(micProblem(error));
    }
  }
  if (skipped === null) {
    const outcome = await openWebRtc(secret, token !== "");
    if (!outcome.fallback) return; // connected, refused for good, or disconnected meanwhile
    demo.stats.fallbackReason = outcome.fallback;
    if (!token && demo.usedDemoSecret) {
      try {
        secret = await demoSecret(); // a fresh one: the first may have been used
      } catch (error) {
        teardown();
        setStatus("error", "Not connected");
        showAlert(error.message);
        return;
      }
    }
    try {
      await startAudioOutput();
    } catch (error) {
      showAlert(`Audio output is unavailable (${error.message}); you can still type.`);
    }
    if (demo.stats.state !== "connecting") return; // disconnected meanwhile
  } else if (skipped !== "WebSocket chosen") {
    demo.stats.fallbackReason = skipped;
  }
  openSocket(url, subprotocols(secret));
}

function openSocket(url, protocols) {
  lastUrl = url;
  userClosed = false;
  opened = false;
  lastErrorCode = null;
  let socket;
  try {
    socket = new WebSocket(url, protocols);
  } catch (error) {
    showAlert(`Could not open the connection: ${error.message}`);
    teardown();
    setStatus("error", "Not connected");
    return;
  }
  ws = socket;
  socket.onopen = () => {
    opened = true;
    transport = "websocket";
    showTransport();
    setStatus("connected", "Connected");
    setControls();
    sendEvent(sessionConfig());
  };
  socket.onmessage = (message) => {
    if (typeof message.data !== "string") return; // binary frames: not requested
    onRawMessage(message.data);
  };
  socket.onclose = (close) => onClose(socket, close);
}

function onRawMessage(text) {
  let event;
  try {
    event = JSON.parse(text);
  } catch {
    logEvent("in", "(not JSON)", "error");
    return;
  }
  onServerEvent(event);
}

async function onClose(socket, close) {
  if (socket !== ws) return;
  const wasOpened = opened;
  teardown();
  demo.stats.closeCode = close.code;
  if (userClosed) {
    setStatus("idle", "Disconnected");
    return;
  }
  let message;
  if (!wasOpened) {
    message = await explainRefusal();
  } else if (lastErrorCode && ERROR_WORDS[lastErrorCode]) {
    message = ERROR_WORDS[lastErrorCode];
  } else if (CLOSE_WORDS[close.code]) {
    message = CLOSE_WORDS[close.code];
  } else if (close.code === 1000) {
    message = "The bridge ended the session.";
  } else {
    message = `The connection closed (code ${close.code}${close.reason ? `: ${close.reason}` : ""}).`;
  }
  demo.stats.closeMessage = message;
  setStatus("error", "Not connected");
  showAlert(message);
}

/** Whether anything answers HTTP at a WebSocket address (an opaque no-cors request: it only
 *  fails when nothing listens there). */
async function reachable(wsUrl) {
  try {
    await fetch(wsUrl.replace(/^ws/, "http"), { mode: "no-cors", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}

/** A browser never sees the HTTP status of a refused upgrade: work out the likely reason.
 *  First whether anything listens at the address at all, so an unreachable bridge is never
 *  blamed on the token. */
async function explainRefusal() {
  if (lastUrl && !(await reachable(lastUrl))) {
    return `Cannot reach the bridge at ${lastUrl}. Is it running, and is the address right?`;
  }
  let info = null;
  try {
    const response = await fetch("/info", { cache: "no-store" });
    if (response.ok) info = await response.json();
  } catch {
    // the HTTP side is down as well
  }
  if (info === null) return "The bridge is not reachable. Is it running, and is the address right?";
  const sessions = info.sessions || {};
  if (sessions.max && sessions.active >= sessions.max) return ERROR_WORDS.session_limit_reached;
  const tokenGiven = ui.token.value.trim() !== "";
  return tokenGiven
    ? "The bridge refused the connection: the token was not accepted (HTTP 401), or this page's origin is not allowed (HTTP 403). Check the token."
    : "The bridge refused the connection. It probably requires a token (BRIDGE_API_KEYS): enter it in the “Bridge token” field. Otherwise check the address.";
}

// -- WebRTC ----------------------------------------------------------------------------------

/**
 * One WebRTC call to this page's own bridge. Resolves with {connected: true}, {fallback: reason}
 * (no WebRTC there: the caller tries the WebSocket), or {done: true} (refused in a way the
 * WebSocket would be refused too, already explained; or disconnected meanwhile).
 */
async function openWebRtc(secret, tokenTyped) {
  userClosed = false;
  opened = false;
  lastErrorCode = null;
  let pc;
  try {
    pc = new RTCPeerConnection();
  } catch (error) {
    return { fallback: `WebRTC could not start (${error.message})` };
  }
  const call = { pc, dc: null, callId: null, secret, sender: null, sending: null, tap: null };
  rtc = call;
  const current = () => rtc === call;
  call.sender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
  applyMicState();
  // created before the offer, so the offer has the SCTP section the events need
  const dc = pc.createDataChannel("oai-events");
  call.dc = dc;
  pc.ontrack = (event) => {
    if (current()) onRemoteTrack(call, event);
  };
  dc.onmessage = (message) => {
    if (current() && typeof message.data === "string") onRawMessage(message.data);
  };
  const opening = new Promise((resolve) => {
    const timer = setTimeout(() => resolve("timeout"), WEBRTC_OPEN_TIMEOUT_MS);
    const settle = (how) => {
      clearTimeout(timer);
      resolve(how);
    };
    dc.onopen = () => {
      if (!current()) return settle("gone");
      transport = "webrtc";
      opened = true;
      settle("open");
    };
    dc.onclose = () => {
      if (!opened) settle("closed");
      else onRtcClose(call);
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (state !== "failed" && state !== "closed") return;
      if (!opened) settle(state);
      else onRtcClose(call);
    };
  });
  let response;
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (!current()) return { done: true };
    const headers = { "Content-Type": "application/sdp" };
    if (secret) headers.Authorization = `Bearer ${secret}`;
    response = await fetch("/v1/realtime/calls", {
      method: "POST",
      body: offer.sdp,
      headers,
      cache: "no-store",
    });
  } catch (error) {
    if (!current()) return { done: true };
    closeRtc(call);
    return { fallback: `the offer could not be sent (${error.message})` };
  }
  if (!current()) return { done: true };
  if (!response.ok) {
    closeRtc(call);
    return offerRefused(response, tokenTyped);
  }
  const location = response.headers.get("Location") || "";
  call.callId = location.split("/").pop() || null;
  demo.stats.callId = call.callId;
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (error) {
    if (!current()) return { done: true };
    hangUp(call);
    return { fallback: `the bridge's answer could not be used (${error.message})` };
  }
  const how = await opening;
  if (!current()) return { done: true };
  if (how !== "open") {
    hangUp(call);
    const why = how === "timeout" ? `no connection within ${WEBRTC_OPEN_TIMEOUT_MS / 1000} s` : `the connection ${how}`;
    return { fallback: `${why} (UDP blocked on the way?)` };
  }
  showTransport();
  setStatus("connected", "Connected");
  sendEvent(sessionConfig());
  return { connected: true };
}

/** A refused offer: explained (and final), or "no WebRTC here" (the WebSocket is tried). */
async function offerRefused(response, tokenTyped) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not the bridge's JSON: an older bridge or something else at this address
  }
  const code = error.code || error.type || null;
  if (NO_WEBRTC_STATUSES.has(response.status) && !FINAL_REFUSAL_CODES.has(code)) {
    return { fallback: `the bridge answered the offer with HTTP ${response.status}${code ? ` (${code})` : ""}` };
  }
  let message;
  if (response.status === 401) {
    message = tokenTyped
      ? ERROR_WORDS.unauthorized
      : demo.usedDemoSecret
        ? "The bridge refused the client secret it gave this page. Reload the page and connect again."
        : "The bridge refused the connection. It probably requires a token (BRIDGE_API_KEYS): enter it in the “Bridge token” field.";
  } else if (code && ERROR_WORDS[code]) {
    message = ERROR_WORDS[code];
  } else if (response.status === 403) {
    message = ERROR_WORDS.forbidden_origin;
  } else {
    message = `The bridge refused the call (HTTP ${response.status}${error.message ? `: ${error.message}` : ""}).`;
  }
  demo.stats.closeMessage = message;
  teardown();
  setStatus("error", "Not connected");
  showAlert(message);
  return { done: true };
}

/** Ends the call on the bridge at once, then closes this side (closing alone would end it too,
 *  but only once the bridge notices). */
function hangUp(call) {
  if (rtc === call) rtc = null;
  if (!call.callId) {
    closeRtc(call);
    return;
  }
  const headers = call.secret ? { Authorization: `Bearer ${call.secret}` } : {};
  fetch(`/v1/realtime/calls/${encodeURIComponent(call.callId)}/hangup`, {
    method: "POST",
    headers,
    keepalive: true,
    cache: "no-store",
  })
    .catch(() => {})
    .finally(() => closeRtc(call));
}

function closeRtc(call) {
  if (rtc === call) rtc = null;
  if (call.closed) return;
  call.closed = true;
  for (const handler of ["onopen", "onclose", "onmessage"]) call.dc[handler] = null;
  call.pc.ontrack = null;
  call.pc.onconnectionstatechange = null;
  if (call.tap) {
    call.tap.source.disconnect();
    call.tap.node.port.onmessage = null;
  }
  try {
    call.dc.close();
    call.pc.close();
  } catch {
    // already closed
  }
}

function onRemoteTrack(call, event) {
  const stream = event.streams[0] || new MediaStream([event.track]);
  ui.remoteAudio.srcObject = stream;
  ui.remoteAudio.play().catch(() => {}); // autoplay covers it; a refusal shows as no audio
  if (!audio.ctx || call.tap) return;
  // What the page hears of the answer: the capture worklet's frames of the remote stream.
  const source = audio.ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(audio.ctx, "bridge-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    processorOptions: { frameMs: 20 },
  });
  node.port.onmessage = (message) => {
    const msg = message.data;
    if (msg.type !== "frame" || rtc !== call) return;
    if (msg.level > AUDIBLE_LEVEL) {
      const ms = msg.pcm.byteLength / BYTES_PER_MS;
      demo.stats.audioAudibleMs += ms;
      if (rtcRun) rtcRun.audibleMs += ms;
    }
    updatePlayed();
  };
  source.connect(node);
  call.tap = { source, node };
}

/**
 * Over WebRTC the bridge paces the answer on the track in real time, between
 * `output_audio_buffer.started` and `.stopped`/`.cleared`: "received" is how long that has run,
 * "played" the same less what still waits in the browser's jitter buffer (a cut run was played
 * whole: the bridge stopped sending, nothing here was thrown away). "Audible" counts the frames
 * of the track that were not silent, measured after the browser decoded them.
 */
function updatePlayed() {
  const running = rtcRun ? performance.now() - rtcRun.start : 0;
  demo.stats.audioReceivedMs = closedRunsMs + running;
  demo.stats.audioPlayedMs = closedRunsMs + Math.max(0, running - demo.stats.audioBufferedMs);
}

function runStarted() {
  noteAnswer();
  if (rtcRun) return;
  rtcRun = { start: performance.now(), audibleMs: 0 };
  updatePlayed();
}

function runEnded() {
  if (!rtcRun) return;
  const ms = performance.now() - rtcRun.start;
  closedRunsMs += ms;
  lastRun = { ms, audibleMs: rtcRun.audibleMs };
  rtcRun = null;
  updatePlayed();
}

/** The microphone is on the track only while the mode says the user is talking. */
function applyMicState() {
  if (rtc === null || rtc.sender === null) return;
  const track = audio.stream ? audio.stream.getAudioTracks()[0] || null : null;
  const talking = mode === "vad" || (mode === "ptt" && (pttHeld || pttFlushing));
  const wanted = talking ? track : null;
  if (rtc.sending === wanted) return;
  rtc.sending = wanted;
  rtc.sender.replaceTrack(wanted).catch(() => {});
}

function onRtcClose(call) {
  if (rtc !== call) return;
  teardown();
  if (userClosed) {
    setStatus("idle", "Disconnected");
    return;
  }
  const message =
    lastErrorCode && ERROR_WORDS[lastErrorCode] ? ERROR_WORDS[lastErrorCode] : "The WebRTC connection to the bridge ended.";
  demo.stats.closeMessage = message;
  setStatus("error", "Not connected");
  showAlert(message);
}

function showTransport() {
  const el = ui.transportState;
  const reason = demo.stats.fallbackReason;
  if (transport === "webrtc") {
    el.textContent = "Transport: WebRTC";
    el.title = "Opus over WebRTC, events on the oai-events data channel";
  } else if (transport === "websocket") {
    el.textContent = reason ? `Transport: WebSocket (no WebRTC: ${reason})` : "Transport: WebSocket";
    el.title = "24 kHz PCM16 and events over the WebSocket";
  } else {
    el.textContent = "Transport: –";
    el.title = "";
  }
  el.dataset.transport = transport || "none";
  demo.stats.transport = transport;
}

function disconnect() {
  if (ws === null && rtc === null) return;
  userClosed = true;
  const socket = ws;
  const call = rtc;
  rtc = null; // hung up below, then closed
  if (call) hangUp(call);
  teardown();
  setStatus("idle", "Disconnected");
  if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) {
    socket.close(1000, "client disconnected");
  }
}

function teardown() {
  ws = null;
  if (rtc) closeRtc(rtc);
  rtc = null;
  transport = null;
  runEnded();
  ui.remoteAudio.srcObject = null;
  showTransport();
  opened = false;
  activeResponseId = null;
  currentAudioItem = null;
  audioItems.clear();
  pending.length = 0;
  pttHeld = false;
  pttFlushing = false;
  stopMicrophone();
  if (audio.ctx) {
    audio.ctx.close().catch(() => {});
    audio.ctx = null;
    audio.playback = null;
  }
  for (const resolve of audio.clearWaiters.splice(0)) resolve(null);
  for (const resolve of audio.flushWaiters.splice(0)) resolve();
  ui.level.value = 0;
  setControls();
  updateFigures();
}

// -- audio ------------------------------------------------------------------------------------

async function ensureContext() {
  if (audio.ctx === null) {
    const ctx = new AudioContext({ latencyHint: "interactive" });
    audio.ctx = ctx;
    await ctx.audioWorklet.addModule("/static/audio-worklet.js");
  }
  if (audio.ctx.state !== "running") await audio.ctx.resume();
  return audio.ctx;
}

async function startAudioOutput() {
  const ctx = await ensureContext();
  if (audio.playback) return;
  const node = new AudioWorkletNode(ctx, "bridge-playback", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    processorOptions: { targetMs: 80, maxTargetMs: 300 },
  });
  node.port.onmessage = (event) => onPlaybackMessage(event.data);
  node.connect(ctx.destination);
  audio.playback = node;
}

function micProblem(error) {
  if (error instanceof HumanError) return error.message;
  if (error && error.name === "NotAllowedError") {
    return "Microphone access was refused. Allow it for this page and connect again, or type instead.";
  }
  if (error && error.name === "NotFoundError") return "No microphone was found. You can still type.";
  return `The microphone could not be started (${error && error.message}). You can still type.`;
}

async function startMicrophone() {
  if (audio.capture) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new HumanError(
      "Browsers allow the microphone only on https:// pages or on localhost. You can still type.",
    );
  }
  const ctx = await ensureContext();
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  if (audio.ctx !== ctx) {
    // disconnected while the permission prompt was open
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  const source = ctx.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(ctx, "bridge-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    processorOptions: { frameMs: 20 },
  });
  capture.port.onmessage = (event) => onCaptureMessage(event.data);
  source.connect(capture);
  Object.assign(audio, { stream, source, capture });
  applyMicState();
}

function stopMicrophone() {
  if (audio.source) audio.source.disconnect();
  if (audio.capture) audio.capture.port.onmessage = null;
  if (audio.stream) for (const track of audio.stream.getTracks()) track.stop();
  Object.assign(audio, { stream: null, source: null, capture: null });
  applyMicState();
}

function onCaptureMessage(msg) {
  if (msg.type === "frame") {
    const now = performance.now();
    if (now - lastLevelUpdate > 80) {
      ui.level.value = Math.min(1, msg.level * 4);
      lastLevelUpdate = now;
    }
    const talking = mode === "vad" || (mode === "ptt" && (pttHeld || pttFlushing));
    if (!talking) return;
    if (transport === "webrtc") {
      // the same audio is on the track (Opus); count what this frame put there
      if (isOpen() && rtc.sending !== null) {
        const ms = msg.pcm.byteLength / BYTES_PER_MS;
        demo.stats.audioSentMs += ms;
        pttSentMs += ms;
      }
    } else {
      sendAudioFrame(msg.pcm);
    }
  } else if (msg.type === "flushed") {
    for (const resolve of audio.flushWaiters.splice(0)) resolve();
  }
}

function onPlaybackMessage(msg) {
  if (msg.type === "stats") {
    demo.stats.audioPlayedMs = (msg.totalPlayedFrames / msg.sampleRate) * 1000;
    demo.stats.audioBufferedMs = (msg.bufferedFrames / msg.sampleRate) * 1000;
    demo.stats.jitterTargetMs = (msg.targetFrames / msg.sampleRate) * 1000;
    demo.stats.underruns = msg.underruns;
  } else if (msg.type === "cleared") {
    for (const resolve of audio.clearWaiters.splice(0)) resolve(msg);
  }
}

/** Stop playback now; resolves with what had been played of `itemId` at that moment. */
function clearPlayback(itemId) {
  if (!audio.playback) return Promise.resolve(null);
  return new Promise((resolve) => {
    audio.clearWaiters.push(resolve);
    audio.playback.port.postMessage({ type: "clear", item: itemId });
    setTimeout(() => resolve(null), 500);
  });
}

function hasUnheardAudio() {
  if (transport === "webrtc") return rtcRun !== null;
  const item = currentAudioItem;
  return item !== null && !item.interrupted && (!item.done || demo.stats.audioBufferedMs > 0);
}

/**
 * Barge-in: stop playback and tell the server how much of the assistant's audio was heard
 * (`conversation.item.truncate`), never more than was received. With server VAD the server has
 * already cancelled the response itself; otherwise `cancel` asks it to.
 */
async function bargeIn({ cancel }) {
  if (cancel && activeResponseId !== null) sendEvent({ type: "response.cancel" });
  if (transport === "webrtc") {
    // the bridge plays the track, so it stops it and truncates at what it played
    if (rtcRun !== null) sendEvent({ type: "output_audio_buffer.clear" });
    return;
  }
  const item = currentAudioItem;
  if (item === null || item.interrupted) {
    await clearPlayback(null);
    return;
  }
  item.interrupted = true; // later deltas of this item are dropped
  const receivedMs = item.receivedBytes / BYTES_PER_MS;
  const cleared = await clearPlayback(item.id);
  let playedMs = cleared ? (cleared.playedFrames / cleared.sampleRate) * 1000 : 0;
  if (cleared && cleared.wasPlaying && audio.ctx) {
    // what left the worklet but is still in the output device was not heard
    playedMs = Math.max(0, playedMs - (audio.ctx.outputLatency || 0) * 1000);
  }
  if (item.done && playedMs >= receivedMs - 1) return; // heard it all: nothing to truncate
  const audioEndMs = Math.max(0, Math.min(Math.floor(playedMs), Math.floor(receivedMs)));
  demo.stats.truncates.push({ itemId: item.id, audioEndMs, receivedMs, playedMs });
  sendEvent({
    type: "conversation.item.truncate",
    item_id: item.id,
    content_index: item.contentIndex,
    audio_end_ms: audioEndMs,
  });
  markInterrupted(item.id);
  updateFigures();
}

// -- push-to-talk -----------------------------------------------------------------------------

function pttStart() {
  if (pttHeld || mode !== "ptt" || !isOpen() || !audio.capture) return;
  pttHeld = true;
  pttSentMs = 0;
  ui.ptt.setAttribute("aria-pressed", "true");
  ui.ptt.textContent = "Talking… release to send";
  setControls();
  bargeIn({ cancel: true });
  if (transport === "webrtc") {
    sendEvent({ type: "input_audio_buffer.clear" }); // nothing but this turn's words
    applyMicState();
  }
}

async function pttEnd() {
  if (!pttHeld) return;
  pttHeld = false;
  pttFlushing = true;
  ui.ptt.setAttribute("aria-pressed", "false");
  ui.ptt.textContent = "Hold to talk";
  setControls();
  if (transport === "webrtc") {
    await new Promise((resolve) => setTimeout(resolve, PTT_TAIL_MS));
  } else if (audio.capture) {
    await new Promise((resolve) => {
      audio.flushWaiters.push(resolve);
      audio.capture.port.postMessage({ type: "flush" });
      setTimeout(resolve, 300);
    });
  }
  pttFlushing = false;
  applyMicState();
  if (pttSentMs >= 100) {
    sendEvent({ type: "input_audio_buffer.commit" });
    sendEvent({ type: "response.create" });
    demo.stats.turns += 1;
    turnEndedAt = performance.now();
  } else {
    sendEvent({ type: "input_audio_buffer.clear" });
  }
}

// -- server events ----------------------------------------------------------------------------

function onServerEvent(event) {
  const type = typeof event.type === "string" ? event.type : "(no type)";
  demo.stats.eventsReceived += 1;
  logEvent("in", type, type === "error" ? "error" : undefined);
  measureRoundTrip(event, type);
  switch (type) {
    case "session.created":
      demo.stats.sessionId = event.session && event.session.id;
      setStatus("connected", "Connected");
      break;
    case "error":
      onErrorEvent(event.error || {});
      break;
    case "input_audio_buffer.speech_started":
      demo.stats.speechStarted += 1;
      addEntry("user", event.item_id, "(speaking…)", { pending: true });
      // over WebRTC the bridge stops its track and truncates by itself
      if (transport !== "webrtc" && hasUnheardAudio()) bargeIn({ cancel: false });
      break;
    case "input_audio_buffer.speech_stopped":
      demo.stats.turns += 1;
      turnEndedAt = performance.now();
      setEntryText(event.item_id, "(voice message, transcribing…)", { pending: true });
      break;
    case "conversation.item.input_audio_transcription.delta":
      appendEntryText("user", event.item_id, event.delta || "", { replacePending: true });
      break;
    case "conversation.item.input_audio_transcription.completed":
      addEntry("user", event.item_id, "");
      setEntryText(event.item_id, event.transcript || "(no words recognised)");
      break;
    case "response.created":
      activeResponseId = event.response && event.response.id;
      break;
    case "response.done":
      activeResponseId = null;
      demo.stats.responses += 1;
      break;
    case "response.output_audio.delta":
      onAudioDelta(event);
      break;
    case "response.output_audio.done":
      onAudioDone(event);
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      noteAnswer();
      if (!(audioItems.get(event.item_id) || {}).interrupted) {
        appendEntryText("assistant", event.item_id, event.delta || "");
      }
      break;
    case "response.output_audio_transcript.done":
      if (!(audioItems.get(event.item_id) || {}).interrupted) {
        setEntryText(event.item_id, event.transcript || "");
      }
      break;
    case "response.output_text.done":
      setEntryText(event.item_id, event.text || "");
      break;
    case "conversation.item.truncated":
      markInterrupted(event.item_id);
      if (transport === "webrtc") {
        // cut by the bridge at what it had put on the track; beside it, what this page saw of
        // that answer: how long it played here, and how much of that was audible
        const run = lastRun || { ms: 0, audibleMs: 0 };
        demo.stats.truncates.push({
          itemId: event.item_id,
          audioEndMs: event.audio_end_ms,
          receivedMs: run.ms,
          playedMs: run.ms,
          audibleMs: run.audibleMs,
          byBridge: true,
        });
      }
      break;
    case "output_audio_buffer.started":
      runStarted();
      break;
    case "output_audio_buffer.stopped":
    case "output_audio_buffer.cleared":
      runEnded();
      break;
    default:
      break;
  }
}

function onErrorEvent(error) {
  const code = error.code || error.type || "error";
  demo.stats.errors.push({ code, message: error.message || "" });
  lastErrorCode = code;
  const words = ERROR_WORDS[code];
  if (words) showAlert(words);
  else showAlert(`The service reported a problem: ${error.message || code}`);
}

function measureRoundTrip(event, type) {
  const errorOf = type === "error" && event.error ? event.error.event_id : null;
  const index = pending.findIndex((p) => (errorOf ? p.id === errorOf : p.expect === type));
  if (index < 0) return;
  const [entry] = pending.splice(index, 1);
  demo.stats.rttMs = performance.now() - entry.sentAt;
  demo.stats.rttSamples += 1;
}

function noteAnswer() {
  if (turnEndedAt !== null) {
    demo.stats.answerLatencyMs = performance.now() - turnEndedAt;
    demo.stats.answers += 1;
    turnEndedAt = null;
  }
}

function onAudioDelta(event) {
  noteAnswer();
  let item = audioItems.get(event.item_id);
  if (!item) {
    item = {
      id: event.item_id,
      contentIndex: event.content_index || 0,
      receivedBytes: 0,
      done: false,
      interrupted: false,
    };
    audioItems.set(item.id, item);
    if (audioItems.size > 32) audioItems.delete(audioItems.keys().next().value);
    currentAudioItem = item;
  }
  if (item.interrupted || typeof event.delta !== "string") return;
  let bytes;
  try {
    bytes = base64ToBytes(event.delta);
  } catch {
    return;
  }
  if (bytes.length % 2) bytes = bytes.subarray(0, bytes.length - 1);
  swapIfBigEndian(bytes);
  item.receivedBytes += bytes.length;
  demo.stats.audioReceivedBytes += bytes.length;
  demo.stats.audioReceivedMs = demo.stats.audioReceivedBytes / BYTES_PER_MS;
  if (audio.playback) {
    const pcm = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    audio.playback.port.postMessage({ type: "push", item: item.id, pcm }, [pcm]);
  }
}

function onAudioDone(event) {
  const item = audioItems.get(event.item_id);
  if (!item) return;
  item.done = true;
  if (audio.playback && !item.interrupted) {
    audio.playback.port.postMessage({ type: "end", item: item.id });
  }
}

// -- transcript -------------------------------------------------------------------------------

function addEntry(role, key, text, { pending: isPending = false } = {}) {
  if (!key) key = `anon_${entries.size}`;
  let li = entries.get(key);
  if (li) return li;
  li = document.createElement("li");
  li.dataset.role = role;
  li.dataset.key = key;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  if (isPending) li.dataset.pending = "true";
  entries.set(key, li);
  ui.transcript.append(li);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return li;
}

function setEntryText(key, text, { pending: isPending = false } = {}) {
  const li = entries.get(key);
  if (!li) return;
  li.querySelector(".text").textContent = text;
  if (isPending) li.dataset.pending = "true";
  else delete li.dataset.pending;
}

function appendEntryText(role, key, delta, { replacePending = false } = {}) {
  const li = addEntry(role, key, "");
  const body = li.querySelector(".text");
  if (replacePending && li.dataset.pending === "true") {
    body.textContent = "";
    delete li.dataset.pending;
  }
  body.textContent += delta;
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function markInterrupted(key) {
  const li = entries.get(key);
  if (li) li.dataset.interrupted = "true";
}

// -- event log --------------------------------------------------------------------------------

function logEvent(dir, type, kind) {
  demo.events.push({ dir, type });
  if (demo.events.length > 5000) demo.events.splice(0, 1000);
  const last = ui.log.lastElementChild;
  if (last && last.dataset.type === type && last.dataset.dir === dir) {
    const count = Number(last.dataset.count) + 1;
    last.dataset.count = String(count);
    last.querySelector(".count").textContent = `×${count}`;
    return;
  }
  const li = document.createElement("li");
  li.dataset.type = type;
  li.dataset.dir = dir;
  li.dataset.count = "1";
  if (kind) li.dataset.kind = kind;
  const arrow = document.createElement("span");
  arrow.className = "dir";
  arrow.textContent = dir === "out" ? "↑" : "↓";
  arrow.title = dir === "out" ? "sent" : "received";
  const name = document.createElement("span");
  name.className = "type";
  name.textContent = type;
  const count = document.createElement("span");
  count.className = "count";
  li.append(arrow, name, count);
  li.hidden = !logVisible(li);
  ui.log.append(li);
  while (ui.log.childElementCount > LOG_LIMIT) ui.log.firstElementChild.remove();
  if (!li.hidden) ui.log.scrollTop = ui.log.scrollHeight;
}

/** Filter: space-separated words, all must appear in the type; `-word` excludes. */
function logVisible(li) {
  const type = li.dataset.type;
  if (!ui.logAudio.checked && AUDIO_CHUNK_TYPES.has(type)) return false;
  const words = ui.logFilter.value.toLowerCase().split(/\s+/).filter(Boolean);
  return words.every((w) => (w.startsWith("-") ? !type.includes(w.slice(1)) : type.includes(w)));
}

function refilterLog() {
  for (const li of ui.log.children) li.hidden = !logVisible(li);
}

// -- figures and controls ---------------------------------------------------------------------

/** Over WebRTC, "buffered" is the browser's jitter buffer for the answer's track. */
async function readJitterBuffer() {
  if (transport !== "webrtc" || rtc === null) return;
  const call = rtc;
  const report = await call.pc.getStats();
  if (rtc !== call) return;
  report.forEach((stat) => {
    if (stat.type === "inbound-rtp" && stat.kind === "audio" && stat.jitterBufferEmittedCount) {
      demo.stats.audioBufferedMs = (stat.jitterBufferDelay / stat.jitterBufferEmittedCount) * 1000;
    }
  });
}

function updateFigures() {
  if (transport === "webrtc") {
    updatePlayed();
    readJitterBuffer().catch(() => {});
  }
  const s = demo.stats;
  ui.fig.rtt.textContent = formatMs(s.rttMs);
  ui.fig.answer.textContent = formatMs(s.answerLatencyMs);
  ui.fig.buffered.textContent = formatMs(s.audioBufferedMs);
  ui.fig.received.textContent = `${(s.audioReceivedMs / 1000).toFixed(1)} s`;
  ui.fig.played.textContent = `${(s.audioPlayedMs / 1000).toFixed(1)} s`;
  ui.fig.sent.textContent = `${(s.audioSentMs / 1000).toFixed(1)} s`;
  ui.fig.turns.textContent = String(s.turns);
  ui.fig.truncates.textContent = String(s.truncates.length);
}

function setControls() {
  const connected = isOpen();
  const inUse = busy();
  ui.connect.disabled = inUse;
  ui.disconnect.disabled = !inUse;
  ui.wsUrl.disabled = inUse;
  ui.token.disabled = inUse;
  ui.transport.disabled = inUse;
  ui.text.disabled = !connected;
  ui.send.disabled = !connected;
  // Only the controls of the active mode are shown: a disabled microphone button reads as
  // "the microphone does not work".
  const micOn = connected && mode !== "text" && audio.capture !== null;
  ui.ptt.hidden = !(connected && mode === "ptt");
  ui.ptt.disabled = !micOn;
  ui.pttHelp.hidden = ui.ptt.hidden;
  ui.vadHelp.hidden = !(connected && mode === "vad");
  ui.meter.hidden = !micOn;
  showMicState(connected, micOn);
}

/** The microphone's state in words and colour: listening, push-to-talk (idle or talking), or off. */
function showMicState(connected, micOn) {
  let state = "off";
  let text = "Microphone off";
  if (connected && mode === "text") text = "Microphone off (text only)";
  else if (connected && !micOn) {
    state = "error";
    text = "Microphone unavailable: you can still type";
  } else if (micOn && mode === "vad") {
    state = "listening";
    text = "Listening: just talk";
  } else if (micOn && pttHeld) {
    state = "talking";
    text = "Talking: release to send";
  } else if (micOn) {
    state = "muted";
    text = "Muted: hold the button to talk";
  }
  ui.micState.dataset.state = state;
  ui.micStateText.textContent = text;
}

async function changeMode() {
  const next = ui.mode.value;
  if (next === mode) return;
  if (pttHeld) await pttEnd();
  mode = next;
  if (isOpen()) {
    if (mode === "text") stopMicrophone();
    else {
      try {
        await startMicrophone();
      } catch (error) {
        showAlert(micProblem(error));
      }
    }
    applyMicState();
    sendEvent({
      type: "session.update",
      session: {
        type: "realtime",
        audio: { input: { turn_detection: mode === "vad" ? { type: "server_vad" } : null } },
      },
    });
  }
  setControls();
}

// -- wiring -----------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
ui.disconnect.addEventListener("click", () => {
  disconnect();
  ui.connect.focus();
});
ui.mode.addEventListener("change", () => changeMode());
ui.textForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (await sendText(text)) ui.text.value = "";
});
ui.ptt.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  ui.ptt.setPointerCapture(event.pointerId);
  pttStart();
});
ui.ptt.addEventListener("pointerup", () => pttEnd());
ui.ptt.addEventListener("pointercancel", () => pttEnd());
ui.ptt.addEventListener("keydown", (event) => {
  if (event.key === " " || event.key === "Enter") {
    event.preventDefault();
    if (!event.repeat) pttStart();
  }
});
ui.ptt.addEventListener("keyup", (event) => {
  if (event.key === " " || event.key === "Enter") {
    event.preventDefault();
    pttEnd();
  }
});
ui.ptt.addEventListener("blur", () => pttEnd());
ui.ptt.addEventListener("contextmenu", (event) => event.preventDefault());
ui.logFilter.addEventListener("input", refilterLog);
ui.logAudio.addEventListener("change", refilterLog);
ui.logClear.addEventListener("click", () => ui.log.replaceChildren());
window.addEventListener("pagehide", () => disconnect());

// `?transport=websocket` picks the WebSocket from the start (a link can say which to use).
if (new URLSearchParams(location.search).get("transport") === "websocket") ui.transport.value = "websocket";
setInterval(updateFigures, 250);
setControls();
showTransport();
loadInfo();
