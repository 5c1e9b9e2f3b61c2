"""CPU of the bridge's whole relay chain per frame, without sockets.

Drives the real objects a relayed frame passes through, from picows' frame callback to the
other side's ``send``: ``ClientConnection`` → ``BridgeSession`` → ``SessionProtocol`` →
``WebSocketConnection`` for a client append, and back for an upstream audio delta. Only the
picows transports are stand-ins (their ``send`` records nothing). With ``--sessions`` above 1
the frames rotate over that many sessions, the way a loaded server's caches see them.
This isolates the Python work per frame that the loopback benchmark (``bench/relay.py``) can
only show inside a few µs of run-to-run noise. Runs with metrics on and off, so the metrics'
own cost per frame shows too.

    .venv/bin/python bench/relay_chain.py [--sessions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from picows import WSMsgType
from picows.picows import _make_test_ws_frame

from realtime_bridge.observability import SessionLogger
from realtime_bridge.server.bridge import BridgeSession
from realtime_bridge.server.channel import ClientConnection
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.upstream.websocket import WebSocketConnection

AUDIO = base64.b64encode(os.urandom(960)).decode()  # 20 ms of PCM16 at 24 kHz
APPEND = f'{{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"{AUDIO}"}}'.encode()
DELTA = (
    '{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1",'
    f'"item_id":"item_1","output_index":0,"content_index":0,"delta":"{AUDIO}"}}'
).encode()


class _Socket:
    """What the relay asks of the socket under a picows transport."""

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> None:
        return None  # no socket: nothing to cork

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class _Transport:
    """A picows ``WSTransport`` stand-in whose ``send`` goes nowhere."""

    is_disconnected = False
    is_close_frame_sent = False

    def __init__(self) -> None:
        self.underlying_transport = _Socket()
        self.sent = 0

    def send(self, msg_type: WSMsgType, payload: Any) -> None:
        self.sent += 1


class _NoUpstream:
    async def connect(self, request: Any) -> Any:
        raise AssertionError("not used")


def _session(metrics: bool) -> tuple[ClientConnection, WebSocketConnection, _Transport]:
    client = ClientConnection(max_message_bytes=1 << 20)
    client_transport = _Transport()
    client.transport = client_transport  # type: ignore[assignment]
    upstream = WebSocketConnection()
    upstream_transport = _Transport()
    upstream.on_ws_connected(upstream_transport)  # type: ignore[arg-type]
    record = SessionRecord(id="sess", client="127.0.0.1", model="m", upstream="openai")
    bridge = BridgeSession(
        record=record,
        client=client,
        upstream=_NoUpstream(),  # type: ignore[arg-type]
        idle_timeout_s=60.0,
        max_duration_s=3600.0,
        log=SessionLogger(logging.getLogger("bench"), {"session_id": "sess"}),
        time_frames=metrics,
    )
    bridge._start_relay(upstream)  # what run() does once the upstream connected
    return client, upstream, upstream_transport


def per_frame_us(func: Callable[[], object], frames: int, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / frames * 1e6


def measure(sessions: int, metrics: bool, rounds: int) -> tuple[float, float]:
    """µs per client append and per upstream audio delta, through ``sessions`` sessions."""
    pairs = [_session(metrics) for _ in range(sessions)]
    append = _make_test_ws_frame(WSMsgType.TEXT, APPEND, True, False)
    delta = _make_test_ws_frame(WSMsgType.TEXT, DELTA, True, False)
    client_calls = [(c.on_ws_frame, c.transport) for c, _, _ in pairs]
    upstream_calls = [(u.on_ws_frame, u._transport) for _, u, _ in pairs]

    def appends() -> None:
        for _ in range(rounds):
            for on_frame, transport in client_calls:
                on_frame(transport, append)

    def deltas() -> None:
        for _ in range(rounds):
            for on_frame, transport in upstream_calls:
                on_frame(transport, delta)

    frames = rounds * sessions
    client_us = per_frame_us(appends, frames)
    upstream_us = per_frame_us(deltas, frames)
    assert all(t.sent for _, _, t in pairs), "appends did not reach the upstream"
    return client_us, upstream_us


async def main(sessions: int, rounds: int) -> None:
    results = {metrics: measure(sessions, metrics, rounds) for metrics in (True, False)}
    print(f"Whole relay chain per frame, {sessions} sessions, no sockets (µs)")
    print(f"{'':<36} {'metrics on':>10} {'metrics off':>11} {'metrics cost':>12}")
    rows = ("client append → upstream send", "upstream audio delta → client send")
    for i, name in enumerate(rows):
        on, off = results[True][i], results[False][i]
        print(f"{name:<36} {on:10.2f} {off:11.2f} {on - off:12.2f}")
    on, off = (sum(results[m]) / 2 for m in (True, False))
    print(f"{'mean per relayed frame':<36} {on:10.2f} {off:11.2f} {on - off:12.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=0, help="frames per session")
    args = ap.parse_args()
    rounds = args.rounds or max(1, 200_000 // args.sessions)
    asyncio.run(main(args.sessions, rounds))
