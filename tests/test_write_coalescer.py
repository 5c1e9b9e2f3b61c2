"""WriteCoalescer on real sockets: corks for one round of event-loop callbacks, never longer,
and does nothing where it cannot (closed sockets, non-TCP sockets)."""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from realtime_bridge.wsframes import WriteCoalescer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_CORK is Linux's")


def coalescer_for(writer: asyncio.StreamWriter) -> WriteCoalescer:
    # A picows transport stand-in: the coalescer only uses its underlying transport.
    return WriteCoalescer(SimpleNamespace(underlying_transport=writer.transport))  # type: ignore[arg-type]


def corked(writer: asyncio.StreamWriter) -> bool:
    sock: Any = writer.get_extra_info("socket")
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))


async def after_this_round() -> None:
    """Resolve once the callbacks scheduled before this call have run (call_soon is FIFO)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await asyncio.wait_for(done, 1.0)


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A client writer and the server side's reader, over loopback TCP."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    reader, server_writer = await asyncio.wait_for(accepted.get(), 5.0)
    try:
        yield reader, writer
    finally:
        writer.close()
        server_writer.close()
        server.close()
        await server.wait_closed()


async def hold_corks_for_one_round() -> None:
    async with tcp_pair() as (reader, writer):
        coalescer = coalescer_for(writer)
        assert not corked(writer)
        coalescer.hold()
        coalescer.hold()  # a second hold in the same round changes nothing
        assert corked(writer)
        writer.write(b"one ")
        writer.write(b"two")
        await after_this_round()
        assert not corked(writer)
        assert await asyncio.wait_for(reader.readexactly(7), 5.0) == b"one two"
        # And it can hold again for the next burst.
        coalescer.hold()
        assert corked(writer)
        await after_this_round()
        assert not corked(writer)


async def test_hold_corks_until_the_current_round_of_callbacks_is_done() -> None:
    await hold_corks_for_one_round()


def test_hold_corks_for_one_round_on_uvloop_too() -> None:
    """The server runs on uvloop, whose transports hand out a socket of their own."""
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(hold_corks_for_one_round())
    finally:
        loop.close()


async def test_hold_on_a_closing_connection_does_nothing() -> None:
    async with tcp_pair() as (_, writer):
        coalescer = coalescer_for(writer)
        writer.close()
        coalescer.hold()  # no error, and nothing scheduled on a socket that is going away
        await after_this_round()


async def test_a_socket_that_cannot_cork_is_left_alone() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s")
        peers: list[asyncio.StreamWriter] = []
        server = await asyncio.start_unix_server(lambda r, w: peers.append(w), path)
        _, writer = await asyncio.open_unix_connection(path)
        try:
            coalescer = coalescer_for(writer)
            coalescer.hold()  # TCP_CORK on a Unix socket fails: no error, and no retries
            coalescer.hold()
            await after_this_round()
            writer.write(b"still works")
            await writer.drain()
        finally:
            writer.close()
            for peer in peers:
                peer.close()
            server.close()
            await server.wait_closed()
