'use strict';
// Loopback echo upstream for bench/relay.py: every text (or binary) frame received is sent
// straight back on the same connection, unchanged. Accepts any path, headers and subprotocol
// (picks the first offered), like a permissive Realtime API stand-in. No compression.
//
// usage: node echo-server.js [--port 0] [--host 127.0.0.1]
// prints one line `echo listening <port>` when ready.
const { WebSocketServer } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const wss = new WebSocketServer({
  host: arg('host', '127.0.0.1'),
  port: Number(arg('port', '0')),
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  process.stdout.write(`echo listening ${wss.address().port}\n`);
});

function stop() {
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
