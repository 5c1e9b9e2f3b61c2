"""Bounded memory (SPEC §8): a client that stops reading, or an upstream that stops reading,
cannot grow the bridge's memory; past the send timeout the session ends by itself.

The client case runs a real bridge process (its RSS is read from ``/proc``) with a shortened
send timeout, in front of a fake upstream in this process that tries to stream 64 MB of audio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from realtime_bridge.server import lifetime as lifetime_module
from realtime_bridge.server.app import BridgeServer
from tests.conftest import (
    TEST_KEY,
    bridge_settings,
    running_bridge,
    upstream_env,
    wait_for_sessions,
)
from tests.fakes import (
    UpstreamSession,
    http_upstream,
    receive_json,
    running_fake_upstream,
)
from tests.test_websocket_edges import open_ws

STREAM_BYTES = 128 * 1024 * 1024  # more than all the loopback socket buffers on the way hold
RSS_GROWTH_LIMIT_MB = 64.0
SEND_TIMEOUT_S = 2.0
#: One ~256 KB audio delta (192 000 bytes of PCM16 = 4 s at 24 kHz).
AUDIO = base64.b64encode(os.urandom(192_000)).decode()
DELTA = (
    '{"type":"response.output_audio.delta","event_id":"event_x","response_id":"resp_1",'
    '"item_id":"item_1","output_index":0,"content_index":0,"delta":"' + AUDIO + '"}'
)

_BRIDGE_MAIN = (
    "import sys\n"
    "import realtime_bridge.server.lifetime as b\n"
    "b.CLIENT_SEND_TIMEOUT_S = float(sys.argv[1])\n"
    "from realtime_bridge.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def bridge_process(env: dict[str, str], cwd: Path) -> AsyncIterator[tuple[int, int, Path]]:
    """A real bridge process; yields (pid, port, stderr log path)."""
    log_path = cwd / "bridge.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BRIDGE_MAIN,
            str(SEND_TIMEOUT_S),
            env={
                "PATH": os.environ.get("PATH", ""),
                "WS_PORT": "0",
                "HTTP_PORT": "0",
                "LOG_LEVEL": "info",
                **env,
            },
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
            assert match, line
            yield proc.pid, int(match.group(1)), log_path
        finally:
            if proc.returncode is None:
                proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_stalled_client_memory_is_bounded_and_session_ends(tmp_path: Path) -> None:
    sent = 0
    blocked = asyncio.Event()

    async def stream_audio(session: UpstreamSession) -> None:
        nonlocal sent
        await session.ws.send_str('{"type":"session.created","event_id":"event_0"}')
        while sent < STREAM_BYTES:
            try:
                await asyncio.wait_for(session.ws.send_str(DELTA), 1.0)
            except TimeoutError:
                blocked.set()  # backpressure reached the upstream: the bridge stopped reading
                await session.closed.wait()
                return
            sent += len(DELTA)

    async with running_fake_upstream(stream_audio) as fake:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": fake.url,
        }
        async with (
            bridge_process(env, tmp_path) as (pid, port, log_path),
            aiohttp.ClientSession() as http,
        ):
            baseline = rss_mb(pid)
            # A client that really reads nothing: a hand-made WebSocket whose socket is never
            # read after session.created (aiohttp's client reads ahead into its own buffers,
            # more or less depending on scheduling, so the bridge did not always see it stall).
            ws = await open_ws(port)
            assert b"session.created" in (await ws.recv()).payload
            started = time.monotonic()
            # From here on the client reads nothing while the upstream streams.
            upstream = await fake.next_session()
            peak = baseline
            while not upstream.closed.is_set():
                assert time.monotonic() - started < 30, "the stalled session never ended"
                peak = max(peak, rss_mb(pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(upstream.closed.wait(), 0.05)
            ended_after = time.monotonic() - started
            peak = max(peak, rss_mb(pid))
            growth = peak - baseline
            print(
                f"\nslow reader: upstream tried {STREAM_BYTES / 2**20:.0f} MB, got "
                f"{sent / 2**20:.1f} MB through before backpressure; bridge RSS "
                f"{baseline:.1f} MB -> peak {peak:.1f} MB (growth {growth:.1f} MB); "
                f"session ended {ended_after:.1f} s after the client stopped reading"
            )
            # Held back: the upstream never got its stream through. (How much passed first is
            # the kernel's socket buffers, which autotune up to tcp_rmem's maximum, 32 MB here;
            # whether a send then waited a whole second depends on scheduling. Neither is asked.)
            assert sent < STREAM_BYTES, "the upstream was never slowed down"
            assert growth < RSS_GROWTH_LIMIT_MB
            assert ended_after < SEND_TIMEOUT_S + 10
            # The client's connection was ended too: draining it ends in EOF (it was aborted).
            async with asyncio.timeout(10):
                while await ws.reader.read(1 << 20):
                    pass
            health = await (await http.get(f"http://127.0.0.1:{port}/health")).json()
            assert health["sessions"] == 0
            await ws.close()
        logs = log_path.read_text()
        assert "client too slow" in logs
        # Ended one of two ways, both 1013: usually the send timeout, once the client took no
        # frame for SEND_TIMEOUT_S; or at once, when what the upstream had already sent before it
        # was held back passed CLIENT_MAX_UNSENT_BYTES (the kernel's buffers, which autotune,
        # took 37 MB in 41 ms once in CI, and the rest piled up in the bridge).
        (why,) = re.findall(r"reason=(\w+) close_code=1013", logs)
        if why == "client_stalled":
            assert ended_after >= SEND_TIMEOUT_S
        else:
            assert why == "client_too_slow", why
        assert TEST_KEY not in logs
        assert "Traceback" not in logs


async def test_a_client_past_the_unsent_cap_is_dropped_without_waiting(tmp_path: Path) -> None:
    """Memory is bounded in bytes too: with CLIENT_MAX_UNSENT_BYTES below one audio delta, the
    first delta that cannot reach a client that stopped reading drops it (1013,
    ``client_too_slow``), without waiting for the send timeout."""

    async def stream_audio(session: UpstreamSession) -> None:
        await session.ws.send_str('{"type":"session.created","event_id":"event_0"}')
        for _ in range(STREAM_BYTES // len(DELTA)):
            if session.closed.is_set():
                return
            await session.ws.send_str(DELTA)

    async with running_fake_upstream(stream_audio) as fake:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": fake.url,
            "CLIENT_MAX_UNSENT_BYTES": str(64 * 1024),
            "SESSION_IDLE_TIMEOUT_S": "60",
        }
        async with bridge_process(env, tmp_path) as (_pid, port, log_path):
            ws = await open_ws(port)
            assert b"session.created" in (await ws.recv()).payload
            upstream = await fake.next_session()
            await asyncio.wait_for(upstream.closed.wait(), 30)
            async with asyncio.timeout(10):  # aborted: draining what got through ends in EOF
                while await ws.reader.read(1 << 20):
                    pass
            await ws.close()
        logs = log_path.read_text()
        assert "reason=client_too_slow close_code=1013" in logs
        assert "client_stalled" not in logs


async def test_slow_but_steady_reader_keeps_its_session(
    monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    """A client that reads slowly, with pauses shorter than the timeout, is not cut off."""
    monkeypatch.setattr(lifetime_module, "CLIENT_SEND_TIMEOUT_S", 1.0)
    total = 120

    async def stream(session: UpstreamSession) -> None:
        for _ in range(total):
            await session.ws.send_str(DELTA)
        await session.ws.send_str('{"type":"response.done"}')

    async with running_fake_upstream(stream) as fake:
        env = {"UPSTREAM": "openai", "OPENAI_API_KEY": TEST_KEY, "OPENAI_REALTIME_URL": fake.url}
        async with running_bridge(**env) as server:
            async with http.ws_connect(
                f"ws://127.0.0.1:{server.ws_port}/v1/realtime", max_msg_size=0
            ) as ws:
                upstream = await fake.next_session()
                got = 0
                while True:
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    assert msg.type is aiohttp.WSMsgType.TEXT, msg
                    if msg.data == '{"type":"response.done"}':
                        break
                    got += 1
                    if got % 40 == 0:
                        # a pause well under the timeout while the upstream keeps streaming
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(upstream.closed.wait(), 0.3)
                assert got == total
                assert not upstream.closed.is_set()


async def test_stalled_upstream_ends_session_with_upstream_unavailable(
    monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    """An upstream that stops reading: the client's frames back up to the client (bounded),
    and after the send timeout the client gets ``upstream_unavailable`` and close 1014."""
    monkeypatch.setattr(lifetime_module, "UPSTREAM_SEND_TIMEOUT_S", 1.0)
    accepted = asyncio.Event()
    release = asyncio.Event()

    async def never_reads(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        accepted.set()
        await release.wait()
        return ws

    async with http_upstream(never_reads, shutdown_timeout=0.5) as url:
        try:
            async with (
                running_bridge(**upstream_env(url)) as server,
                http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/v1/realtime") as ws,
            ):
                await asyncio.wait_for(accepted.wait(), 5)
                frame = '{"type":"input_audio_buffer.append","audio":"' + AUDIO + '"}'

                async def flood() -> None:
                    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                        while not ws.closed:
                            await ws.send_str(frame)

                flooding = asyncio.create_task(flood())
                started = time.monotonic()
                event = await receive_json(ws, timeout=15)
                assert event["error"]["code"] == "upstream_unavailable"
                closing = await asyncio.wait_for(ws.receive(), 5)
                assert closing.type is aiohttp.WSMsgType.CLOSE
                assert closing.data == 1014
                print(f"\nstalled upstream: session ended after {time.monotonic() - started:.1f} s")
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
        finally:
            release.set()


async def test_a_non_reading_client_can_still_be_ended_by_admin_and_by_shutdown(
    http: aiohttp.ClientSession, captured_logs: list[str]
) -> None:
    """With the client's socket full, ending the session (admin delete, drain) must still close
    the upstream and free the session, not hang or leak in the blocked send."""

    blocked: list[asyncio.Event] = []

    async def stream(session: UpstreamSession) -> None:
        event = asyncio.Event()
        blocked.append(event)
        while True:
            try:
                await asyncio.wait_for(session.ws.send_str(DELTA), 0.5)
            except TimeoutError:
                event.set()  # backpressure reached this upstream
                await session.closed.wait()
                return

    async with running_fake_upstream(stream) as fake:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": fake.url,
            "BRIDGE_ADMIN_TOKEN": "adm-slow-123456",
            "SHUTDOWN_GRACE_S": "0.3",
        }
        server = BridgeServer(bridge_settings(**env))
        await server.start()
        try:
            url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime"
            first = await http.ws_connect(url, max_msg_size=0)
            second = await http.ws_connect(url, max_msg_size=0)
            upstreams = [await fake.next_session(), await fake.next_session()]
            # Wait until the bridge is blocked sending to both clients (their sockets are full).
            for event in blocked:
                await asyncio.wait_for(event.wait(), 10)
            session_id = first._response.headers["X-Bridge-Session-Id"]
            async with http.delete(
                f"http://127.0.0.1:{server.http_port}/sessions/{session_id}",
                headers={"Authorization": "Bearer adm-slow-123456"},
            ) as response:
                assert response.status == 200
            await asyncio.wait_for(upstreams[0].closed.wait(), 3)
            await wait_for_sessions(server, 1, within_s=3)
            started = time.monotonic()
            took = await asyncio.wait_for(server.shutdown(), 10)
            await asyncio.wait_for(upstreams[1].closed.wait(), 3)
            print(f"\nnon-reading client: drain took {took:.2f} s (grace 0.3 s)")
            assert time.monotonic() - started < 5
            assert len(server.registry) == 0
        finally:
            await server.shutdown()
        await first.close()
        await second.close()
    logs = "".join(captured_logs)
    assert logs.count("session end") == 2
    assert "unexpected error" not in logs
