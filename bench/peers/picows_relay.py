"""Minimal picows relay for bench/relay.py: callbacks, no parsing.

For each client WebSocket it opens one upstream WebSocket and forwards every frame both ways
from picows' frame callbacks (no queue, no task per message); when either side ends, both are
closed. Prints ``relay listening <port>`` when ready.

usage: python picows_relay.py --upstream ws://127.0.0.1:P/v1/realtime [--port 0] [--uvloop]
"""

from __future__ import annotations

import asyncio

from peer_cli import run_peer, until_stopped
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_connect,
    ws_create_server,
)

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)


class _Side(WSListener):
    """One end of a relayed pair: frames go to ``peer``; backpressure pauses the peer."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.peer: _Side | None = None
        self.pending: list[tuple[WSMsgType, bytes]] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type in _DATA:
            peer = self.peer
            if peer is not None and peer.transport is not None:
                peer.transport.send(msg_type, frame.get_payload_as_memoryview())
            else:
                self.pending.append((msg_type, frame.get_payload_as_bytes()))
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_disconnected:
            peer.transport.send_close()
            peer.transport.disconnect()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.underlying_transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.underlying_transport.resume_reading()


async def serve(host: str, port: int, upstream: str) -> None:
    """Serve until SIGTERM/SIGINT."""

    async def attach(client: _Side, url: str) -> None:
        try:
            _, up = await ws_connect(
                _Side,
                url,
                extra_headers={"Authorization": "Bearer sk-bench"},
                use_aiofastnet=False,
            )
        except Exception:
            if client.transport is not None:
                client.transport.disconnect()
            return
        assert isinstance(up, _Side)
        up.peer, client.peer = client, up
        assert up.transport is not None
        for msg_type, payload in client.pending:
            up.transport.send(msg_type, payload)
        client.pending.clear()

    tasks: set[asyncio.Task[None]] = set()

    def factory(request: WSUpgradeRequest) -> _Side:
        client = _Side()
        query = request.path.decode().partition("?")[2]
        task = asyncio.get_running_loop().create_task(attach(client, f"{upstream}?{query}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return client

    server = await ws_create_server(
        factory, host, port, max_frame_size=64 * 1024 * 1024, use_aiofastnet=False
    )
    print(f"relay listening {server.sockets[0].getsockname()[1]}", flush=True)
    await until_stopped()
    server.close()


if __name__ == "__main__":
    run_peer(serve, __doc__)
