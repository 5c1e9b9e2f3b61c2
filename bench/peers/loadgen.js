'use strict';
// Cheap load generator for bench/relay.py (Node `ws` client, pre-built frames, no JSON parsing).
//
// Each session sends realistic `input_audio_buffer.append` events (~1.37 KB: 20 ms of 24 kHz
// PCM16 as base64) carrying its session index, a sequence number and the send time (µs) in the
// event_id, and reads them back from an echo upstream (directly or through a relay), so the
// round-trip time, losses, reordering and cross-talk can be counted without parsing JSON.
//
// Control protocol (one word per line on stdin): `go` starts sending, `mark` starts the
// measurement window, `stop` ends it, stops sending, drains and reports. stdout lines:
//   ready {"connected":N,"failed":F,"error":...}   after every session's probe came back
//   marked                                           after `mark`
//   result {...}                                     after `stop` + drain; RTTs (ms, float64)
//                                                    of frames sent inside the window are written
//                                                    to --samples-file
//
// usage: node loadgen.js --url ws://127.0.0.1:P/v1/realtime?model=x --sessions N
//          [--first 0] [--rate 50] [--mode paced|flat] [--window 64] [--samples-file F]
//          [--connect-timeout 15] [--drain-timeout 3] [--max-seconds 900]
const fs = require('fs');
const readline = require('readline');
const { performance } = require('perf_hooks');
const { WebSocket } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

// --url may list several URLs, comma-separated: session i connects to the (i mod n)-th, as a
// load balancer that spreads one client's connections would.
const urls = arg('url', 'ws://127.0.0.1:9000/v1/realtime?model=x').split(',');
const nSessions = Number(arg('sessions', '1'));
const first = Number(arg('first', '0'));
const rate = Number(arg('rate', '50'));
const mode = arg('mode', 'paced');
const window_ = Number(arg('window', '64'));
const samplesFile = arg('samples-file', '');
const connectTimeoutMs = Number(arg('connect-timeout', '15')) * 1000;
const drainTimeoutMs = Number(arg('drain-timeout', '3')) * 1000;
const maxSeconds = Number(arg('max-seconds', '900'));

// Hard stop, whatever happens (the orchestrator also kills us).
setTimeout(() => process.exit(3), maxSeconds * 1000).unref();

// ---- frames -------------------------------------------------------------------------------
// 20 ms of 24 kHz mono PCM16 = 480 samples = 960 bytes -> 1280 base64 chars.
function makeAudio(seed) {
  const pcm = Buffer.alloc(960);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < 480; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const noise = ((x >>> 16) & 0x7ff) - 1024;
    const v = Math.round(6000 * Math.sin((2 * Math.PI * 220 * i) / 24000)) + noise;
    pcm.writeInt16LE(Math.max(-32768, Math.min(32767, v)), i * 2);
  }
  return pcm.toString('base64');
}

const ID_MARK = '"event_id":"evt_';
const ID_MARK_BUF = Buffer.from(ID_MARK, 'latin1');
const S_W = 5; // session index digits
const Q_W = 10; // sequence digits
const T_W = 13; // send time digits (µs since process start)
const ID_W = S_W + 1 + Q_W + 1 + T_W;
const PREFIX = `{"type":"input_audio_buffer.append",${ID_MARK}`;
const PREFIX_LEN = Buffer.byteLength(PREFIX);

function pad(n, w) {
  const s = String(n);
  return s.length >= w ? s.slice(-w) : '0'.repeat(w - s.length) + s;
}

class Session {
  constructor(index) {
    this.index = index; // global index
    this.ws = null;
    this.seq = 0;
    this.sent = 0; // frames sent after `go` (excluding the probe)
    this.recv = 0; // own frames received back after `go`
    this.inflight = 0;
    this.maxSeq = 0;
    this.reordered = 0;
    this.probeDone = null;
    const tail = `","audio":"${makeAudio(index + 1)}"}`;
    this.template = Buffer.from(PREFIX + '0'.repeat(ID_W) + tail, 'latin1');
    this.template.write(pad(index, S_W) + '_', PREFIX_LEN, 'latin1');
  }

  frame(seq, tUs) {
    const buf = Buffer.allocUnsafe(this.template.length);
    this.template.copy(buf);
    buf.write(`${pad(seq, Q_W)}_${pad(tUs, T_W)}`, PREFIX_LEN + S_W + 1, 'latin1');
    return buf;
  }

  send() {
    this.seq += 1;
    const now = performance.now();
    this.ws.send(this.frame(this.seq, Math.round(now * 1000)), { binary: false });
    this.sent += 1;
    this.inflight += 1;
    stats.sentTotal += 1;
    if (marking) stats.windowSent += 1;
  }
}

// ---- state --------------------------------------------------------------------------------
const stats = {
  sentTotal: 0,
  recvTotal: 0,
  windowSent: 0,
  windowRecv: 0,
  foreign: 0,
  misrouted: 0,
  closedEarly: 0,
};
let sending = false;
let marking = false;
let markAt = Infinity; // ms (performance.now) when the window started
let stopAt = Infinity;
let samples = new Float64Array(1 << 16);
let nSamples = 0;
let drainResolve = null;

function addSample(v) {
  if (nSamples === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[nSamples++] = v;
}

function onMessage(session, data, isBinary) {
  const now = performance.now();
  if (isBinary) {
    stats.foreign += 1;
    return;
  }
  const at = data.indexOf(ID_MARK_BUF);
  if (at < 0) {
    stats.foreign += 1;
    return;
  }
  const p = at + ID_MARK_BUF.length;
  const idx = parseInt(data.toString('latin1', p, p + S_W), 10);
  const seq = parseInt(data.toString('latin1', p + S_W + 1, p + S_W + 1 + Q_W), 10);
  const tUs = parseInt(data.toString('latin1', p + S_W + Q_W + 2, p + ID_W), 10);
  if (idx !== session.index) {
    stats.misrouted += 1;
    return;
  }
  if (seq === 0) {
    if (session.probeDone) session.probeDone();
    return;
  }
  session.recv += 1;
  session.inflight -= 1;
  stats.recvTotal += 1;
  if (seq < session.maxSeq) session.reordered += 1;
  else session.maxSeq = seq;
  if (marking) stats.windowRecv += 1;
  const sentMs = tUs / 1000;
  if (sentMs >= markAt && sentMs < stopAt) addSample(now - sentMs);
  if (mode === 'flat' && sending && session.inflight < window_) session.send();
  if (drainResolve && stats.recvTotal >= stats.sentTotal) drainResolve();
}

// ---- connect + probe ----------------------------------------------------------------------
function connect(session) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (err) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(err);
      }
    };
    const timer = setTimeout(() => {
      done('timeout');
      try {
        session.ws.terminate();
      } catch (_) {
        /* ignore */
      }
    }, connectTimeoutMs);
    const ws = new WebSocket(urls[session.index % urls.length], {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      handshakeTimeout: connectTimeoutMs,
    });
    session.ws = ws;
    ws.on('message', (data, isBinary) => onMessage(session, data, isBinary));
    ws.on('unexpected-response', (_req, res) => done(`http ${res.statusCode}`));
    ws.on('error', (e) => done(String(e && e.message ? e.message : e)));
    ws.on('close', () => {
      if (sending || marking) stats.closedEarly += 1;
      done('closed');
    });
    ws.on('open', () => {
      session.probeDone = () => {
        session.probeDone = null;
        done(null);
      };
      ws.send(session.frame(0, Math.round(performance.now() * 1000)), { binary: false });
    });
  });
}

async function connectAll(sessions, concurrency) {
  const errors = [];
  let next = 0;
  async function worker() {
    while (next < sessions.length) {
      const s = sessions[next++];
      const err = await connect(s);
      if (err) errors.push(err);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions.length) }, worker));
  return errors;
}

// ---- sending ------------------------------------------------------------------------------
let tickTimer = null;

function startPaced(sessions) {
  const periodMs = 1000 / rate;
  const nBuckets = Math.max(1, Math.round(periodMs)); // 1 ms ticks
  const tickMs = periodMs / nBuckets;
  const buckets = Array.from({ length: nBuckets }, () => []);
  for (const s of sessions) buckets[s.index % nBuckets].push(s);
  const t0 = performance.now();
  let done = 0;
  const tick = () => {
    if (!sending) return;
    const due = Math.floor((performance.now() - t0) / tickMs) + 1;
    while (done < due) {
      for (const s of buckets[done % nBuckets]) {
        if (s.ws.readyState === WebSocket.OPEN) s.send();
      }
      done += 1;
    }
  };
  tickTimer = setInterval(tick, 1);
  tick();
}

function startFlat(sessions) {
  for (const s of sessions) {
    for (let i = 0; i < window_; i++) s.send();
  }
}

// ---- main ---------------------------------------------------------------------------------
async function main() {
  const sessions = Array.from({ length: nSessions }, (_, i) => new Session(first + i));
  const errors = await connectAll(sessions, 32);
  const live = sessions.filter((s) => s.ws && s.ws.readyState === WebSocket.OPEN);
  process.stdout.write(
    `ready ${JSON.stringify({ connected: nSessions - errors.length, failed: errors.length, error: errors[0] || null })}\n`,
  );

  const rl = readline.createInterface({ input: process.stdin });
  process.stdin.on('end', () => process.exit(4));
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'go') {
      sending = true;
      if (mode === 'flat') startFlat(live);
      else startPaced(live);
    } else if (cmd === 'mark') {
      markAt = performance.now();
      stats.windowSent = 0;
      stats.windowRecv = 0;
      marking = true;
      process.stdout.write('marked\n');
    } else if (cmd === 'stop') {
      stopAt = performance.now();
      marking = false;
      sending = false;
      if (tickTimer) clearInterval(tickTimer);
      const windowS = (stopAt - markAt) / 1000;
      const windowSent = stats.windowSent;
      const windowRecv = stats.windowRecv;
      if (stats.recvTotal < stats.sentTotal) {
        await new Promise((resolve) => {
          drainResolve = resolve;
          setTimeout(resolve, drainTimeoutMs);
        });
      }
      if (samplesFile) {
        fs.writeFileSync(samplesFile, Buffer.from(samples.buffer, 0, nSamples * 8));
      }
      const reordered = sessions.reduce((a, s) => a + s.reordered, 0);
      const result = {
        connected: live.length,
        failed: errors.length,
        sent: stats.sentTotal,
        received: stats.recvTotal,
        lost: Math.max(0, stats.sentTotal - stats.recvTotal),
        reordered,
        foreign: stats.foreign,
        misrouted: stats.misrouted,
        closed_early: stats.closedEarly,
        window_s: windowS,
        window_sent: windowSent,
        window_received: windowRecv,
        samples: nSamples,
      };
      process.stdout.write(`result ${JSON.stringify(result)}\n`);
      for (const s of sessions) {
        try {
          s.ws.terminate();
        } catch (_) {
          /* ignore */
        }
      }
      setTimeout(() => process.exit(0), 50);
      return;
    }
  }
}

main().catch((e) => {
  process.stderr.write(`loadgen error: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
