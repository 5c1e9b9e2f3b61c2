"""Minimal ``websockets`` relay for bench/relay.py: two pumps, no parsing.

Uses the library's asyncio implementation (``websockets.asyncio``), compression off on both
legs. Prints ``relay listening <port>`` when ready.

usage: python websockets_relay.py --upstream ws://127.0.0.1:P/v1/realtime [--port 0] [--uvloop]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from peer_cli import run_peer, until_stopped
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException


async def _pump(
    src: ServerConnection | ClientConnection, dst: ServerConnection | ClientConnection
) -> None:
    """Forward messages from ``src`` to ``dst`` until ``src`` closes."""
    with contextlib.suppress(ConnectionClosed):
        async for msg in src:
            await dst.send(msg)


def make_handler(upstream: str) -> Callable[[ServerConnection], Awaitable[None]]:
    """Return the per-connection handler."""

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        model = parse_qs(urlsplit(path).query).get("model", ["gpt-realtime"])[0]
        try:
            async with connect(
                f"{upstream}?model={model}",
                additional_headers={"Authorization": "Bearer sk-bench"},
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=10,
            ) as up:
                tasks = [
                    asyncio.create_task(_pump(ws, up)),
                    asyncio.create_task(_pump(up, ws)),
                ]
                _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        except (OSError, WebSocketException, TimeoutError):
            pass

    return handler


async def run(host: str, port: int, upstream: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    async with serve(
        make_handler(upstream),
        host,
        port,
        compression=None,
        max_size=None,
        ping_interval=None,
        backlog=1024,
    ) as server:
        sock_port = next(iter(server.sockets)).getsockname()[1]
        print(f"relay listening {sock_port}", flush=True)
        await until_stopped()
        server.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)


if __name__ == "__main__":
    run_peer(run, __doc__)
