"""Minimal aiohttp relay for bench/relay.py: two pumps, no parsing.

For each client WebSocket it opens one upstream WebSocket and forwards every frame both ways;
when either side ends, both are closed. Prints ``relay listening <port>`` when ready.

usage: python aiohttp_relay.py --upstream ws://127.0.0.1:P/v1/realtime [--port 0] [--uvloop]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
from aiohttp import web
from peer_cli import run_peer, until_stopped


async def _pump(
    src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Forward frames from ``src`` to ``dst`` until ``src`` closes."""
    async for msg in src:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        else:
            break


def make_app(upstream: str) -> web.Application:
    """Build the relay application."""
    app = web.Application()

    async def on_startup(app: web.Application) -> None:
        app["client"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
        )

    async def on_cleanup(app: web.Application) -> None:
        await app["client"].close()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        model = request.query.get("model", "gpt-realtime")
        client: aiohttp.ClientSession = app["client"]
        try:
            async with client.ws_connect(
                upstream,
                params={"model": model},
                headers={"Authorization": "Bearer sk-bench"},
                compress=0,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
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
        except aiohttp.ClientError:
            pass
        await ws.close()
        return ws

    app.router.add_get("/{tail:.*}", handle)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    runner = web.AppRunner(make_app(upstream), access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print(f"relay listening {sock.getsockname()[1]}", flush=True)
    await until_stopped()
    await asyncio.wait_for(runner.cleanup(), timeout=5)


if __name__ == "__main__":
    run_peer(serve, __doc__)
