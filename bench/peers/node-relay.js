'use strict';
// Minimal Node relay in the style of openai-realtime-console's relay-server (lib/relay.js):
// a `ws` WebSocketServer; for each browser connection a new upstream WebSocket to the Realtime
// API; browser messages queued until the upstream is open; close on either side closes the other.
// Differences from the console relay, on purpose: frames are passed through as-is (no
// JSON.parse/stringify through RealtimeClient) unless --parse is given, and any path is accepted.
//
// usage: node node-relay.js --port 0 --upstream ws://127.0.0.1:PORT/v1/realtime [--parse]
// prints `relay listening <port>` when ready.
const { WebSocketServer, WebSocket } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const upstreamUrl = arg('upstream', 'ws://127.0.0.1:9000/v1/realtime');
const parse = process.argv.includes('--parse');
const apiKey = process.env.OPENAI_API_KEY || 'sk-bench';

const wss = new WebSocketServer({
  host: arg('host', '127.0.0.1'),
  port: Number(arg('port', '0')),
  perMessageDeflate: false,
});

wss.on('connection', (ws, req) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const model = url.searchParams.get('model') || 'gpt-4o-realtime-preview';
  const upstream = new WebSocket(`${upstreamUrl}?model=${encodeURIComponent(model)}`, {
    headers: { Authorization: `Bearer ${apiKey}` },
    perMessageDeflate: false,
  });
  const queue = [];

  // Relay: upstream event -> browser
  upstream.on('message', (data, isBinary) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (parse && !isBinary) {
      ws.send(JSON.stringify(JSON.parse(data)));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  upstream.on('close', () => ws.close());
  upstream.on('error', () => ws.close());

  // Relay: browser event -> upstream (queued until the upstream is open)
  const forward = (data, isBinary) => {
    if (parse && !isBinary) {
      upstream.send(JSON.stringify(JSON.parse(data)));
    } else {
      upstream.send(data, { binary: isBinary });
    }
  };
  ws.on('message', (data, isBinary) => {
    if (upstream.readyState !== WebSocket.OPEN) {
      queue.push([data, isBinary]);
    } else {
      forward(data, isBinary);
    }
  });
  ws.on('close', () => upstream.close());
  ws.on('error', () => upstream.terminate());

  upstream.on('open', () => {
    while (queue.length) forward(...queue.shift());
  });
});

wss.on('listening', () => {
  process.stdout.write(`relay listening ${wss.address().port}\n`);
});

function stop() {
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
