"""Attacks on a real bridge process over loopback (a hostile client's view): the server's memory
is read from /proc and judged against the bytes the attacker sent; every flood is bounded in
count and time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.test_slow_reader import rss_mb
from tests.test_websocket_edges import (
    OP_PING,
    OP_TEXT,
    encode_frame,
    http_request,
    open_ws,
    read_head,
    upgrade_headers,
)

_MAIN = (
    "import os, resource, sys\n"
    "limit = int(os.environ.pop('NOFILE_LIMIT', '0'))\n"
    "if limit:\n"
    "    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))\n"
    "import realtime_bridge.server.listeners as listeners\n"
    "listeners.HANDSHAKE_TIMEOUT_S = float(sys.argv[1])\n"
    "from realtime_bridge.cli import main\n"
    "sys.exit(main([]))\n"
)


@dataclass
class Served:
    pid: int
    ws_port: int
    http_port: int
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def bridge(tmp_path: Path, handshake_s: float = 10.0, **env: str) -> AsyncIterator[Served]:
    log = tmp_path / "bridge.log"
    base = {
        "PATH": os.environ.get("PATH", ""),
        "UPSTREAM": "local",
        "WS_PORT": "0",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "info",
    }
    with log.open("wb") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MAIN,
            str(handshake_s),
            env={**base, **env},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"ws://[\d.]+:(\d+) http://[\d.]+:(\d+)", line)
        assert match, line + log.read_text()
        yield Served(proc.pid, int(match.group(1)), int(match.group(2)), log)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def flood_without_reading(port: int, frame: bytes, total: int, within_s: float) -> int:
    """Send ``frame`` repeatedly and never read: how many bytes went out before the server
    stopped taking them (or the time ran out)."""
    client = await open_ws(port)
    sent = 0
    batch = frame * max(1, 65536 // len(frame))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    with contextlib.suppress(TimeoutError, ConnectionError):
        while sent < total and loop.time() < deadline:
            client.writer.write(batch)
            await asyncio.wait_for(client.writer.drain(), max(0.01, deadline - loop.time()))
            sent += len(batch)
    client.writer.transport.abort()
    return sent


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("pings", encode_frame(OP_PING, b"")),  # each one wants a pong
        ("invalid frames", encode_frame(OP_TEXT, b"x")),  # each one gets an error event
    ],
)
async def test_a_client_that_sends_without_reading_cannot_grow_the_server(
    tmp_path: Path, name: str, frame: bytes
) -> None:
    async with bridge(tmp_path) as served:
        baseline = peak = rss_mb(served.pid)

        async def watch() -> None:  # the peak while the flood runs, not what is left after
            nonlocal peak
            while True:
                peak = max(peak, rss_mb(served.pid))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            sent = await flood_without_reading(served.ws_port, frame, 40 * 1024 * 1024, 8.0)
        finally:
            watcher.cancel()
        growth = max(peak, rss_mb(served.pid)) - baseline
        print(f"\n{name}: sent {sent / 2**20:.1f} MB without reading; server peak +{growth:.1f} MB")
        # Before, 40 MB of pings grew the server by 240-430 MB: now it stops reading the client
        # once its replies pile up. (How much the client still gets to send is the kernel's
        # socket buffers, which autotune up to 32 MB on loopback: not asked.)
        assert growth < 24
        assert growth < sent / 2**20


async def test_model_names_are_checked_and_logs_escape_control_characters(
    tmp_path: Path,
) -> None:
    async with bridge(tmp_path, LOG_LEVEL="debug") as served, aiohttp.ClientSession() as http:
        forged = "gpt\r\n2026-01-01 00:00:00,000 INFO    forged line\x1b[2J"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                f"ws://127.0.0.1:{served.ws_port}/v1/realtime?model="
                + forged.replace("\n", "%0A")
                .replace("\r", "%0D")
                .replace("\x1b", "%1B")
                .replace(" ", "%20")
            )
        assert refused.value.status == 400
        # An event type with control characters, logged at debug, is escaped too.
        async with http.ws_connect(f"ws://127.0.0.1:{served.ws_port}/v1/realtime") as ws:
            await ws.receive()
            await ws.send_str('{"type":"evil\\r\\nINFO forged\\u001b[31m"}')
            await ws.receive()
    logs = served.logs()
    assert "forged line" not in logs
    assert "\x1b" not in logs
    assert not any(line.startswith(("INFO forged", "2026-01-01")) for line in logs.splitlines())


async def test_failed_authentication_is_throttled_per_address(tmp_path: Path) -> None:
    async with bridge(tmp_path, BRIDGE_API_KEYS="the-right-token") as served:
        async with aiohttp.ClientSession() as http:
            statuses = []
            for attempt in range(12):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(
                        f"ws://127.0.0.1:{served.ws_port}/v1/realtime",
                        headers={"Authorization": f"Bearer guess-{attempt}"},
                    )
                statuses.append(refused.value.status)
            assert statuses[:10] == [401] * 10
            assert statuses[10:] == [429, 429]
            assert refused.value.headers is not None
            assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
            # Even the right token waits now: nothing is checked while throttled.
            with pytest.raises(aiohttp.WSServerHandshakeError) as still:
                await http.ws_connect(
                    f"ws://127.0.0.1:{served.ws_port}/v1/realtime",
                    headers={"Authorization": "Bearer the-right-token"},
                )
            assert still.value.status == 429
            async with http.get(f"http://127.0.0.1:{served.http_port}/health") as response:
                assert response.headers["Server"] == "realtime-bridge"
    logs = served.logs()
    refusals = [line for line in logs.splitlines() if "client refused" in line]
    assert len(refusals) == 2  # the first failure and the one that got it throttled
    assert "guess-" not in logs


async def test_unfinished_http_request_heads_are_closed(tmp_path: Path) -> None:
    """A separate HTTP port closes a connection that never finishes its request head after the
    handshake timeout (1 s here), as the WebSocket port does."""
    async with bridge(tmp_path, handshake_s=1.0, HTTP_PORT=str(free_port())) as served:
        assert served.http_port != served.ws_port
        reader, writer = await asyncio.open_connection("127.0.0.1", served.http_port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
        # The port still serves complete requests.
        reader, writer = await asyncio.open_connection("127.0.0.1", served.http_port)
        writer.write(http_request("GET", "/health", {"Host": "x"}))
        await writer.drain()
        _, status, _ = await read_head(reader)
        assert status == 200
        writer.close()
        # And the WebSocket port too (its head reader is the same).
        reader, writer = await asyncio.open_connection("127.0.0.1", served.ws_port)
        head = http_request("GET", "/v1/realtime", upgrade_headers())
        writer.write(head[: len(head) // 2])
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_credentials_in_the_upstream_url_stop_start_up(tmp_path: Path) -> None:
    for url in (
        "wss://user:secret-pass@api.example/v1/realtime",
        "wss://api.example/v1/realtime?api-key=secret-pass",
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "realtime_bridge",
            env={
                "PATH": os.environ.get("PATH", ""),
                "OPENAI_REALTIME_URL": url,
                "UPSTREAM": "local",
            },
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2
        assert "OPENAI_REALTIME_URL" in stderr.decode()
        assert "secret-pass" not in stderr.decode()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _json_append(data: bytes) -> str:
    return orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}
    ).decode()


def _item_with_audio(data: bytes) -> str:
    content = [{"type": "input_audio", "audio": base64.b64encode(data).decode()}]
    item = {"type": "message", "role": "user", "content": content}
    return orjson.dumps({"type": "conversation.item.create", "item": item}).decode()


_COMMIT = '{"type":"input_audio_buffer.commit","event_id":"after"}'

#: What one large frame may hold: the audio to send, the frame, what answers it at the end.
_LARGE_FRAMES = {
    # 8 MB of 8 kHz PCM16 in one binary frame: over 8 minutes of audio to resample.
    "binary-8khz": ("pcm16@8000", bytes(8 * 1024 * 1024), None, "input_audio_buffer.committed"),
    # 9 MB of base64 to parse and decode, 6.7 MB of audio to resample.
    "json-8khz": (
        "pcm16@8000",
        bytes(7 * 1000 * 1000),
        _json_append,
        "input_audio_buffer.committed",
    ),
    # 12 MB of base64 that goes upstream unconverted: checked in steps, not decoded.
    "json-24khz": ("pcm16", bytes(9 * 1000 * 1000), _json_append, "input_audio_buffer.committed"),
    # An item with 3.6 MB of 8 kHz audio, converted whole (one item) but in steps.
    "item-8khz": ("pcm16@8000", bytes(3600 * 1000), _item_with_audio, "conversation.item.added"),
}


@pytest.mark.parametrize("case", list(_LARGE_FRAMES))
async def test_a_huge_event_does_not_stall_other_sessions(tmp_path: Path, case: str) -> None:
    """One frame of many MB to parse, check, decode or resample: before, the loop stopped
    for the whole of it (over a second for the binary frame, about 0.2 s for the item); now
    the work is done a step per loop turn, and another session's round trips go on. The
    session that sent it gets its answer after it, in order."""
    fmt, audio, frame_of, answer = _LARGE_FRAMES[case]
    async with bridge(tmp_path) as served, aiohttp.ClientSession() as http:
        base = f"ws://127.0.0.1:{served.ws_port}/v1/realtime"
        query = f"?input_audio_format={fmt}&silence_fill=off"
        async with http.ws_connect(base + query) as big, http.ws_connect(base) as other:
            await big.receive()
            await other.receive()
            loop = asyncio.get_running_loop()

            async def round_trip() -> float:
                started = loop.time()
                await other.send_str('{"type":"conversation.item.retrieve","item_id":"none"}')
                reply = await asyncio.wait_for(other.receive_json(), 10)
                assert reply["type"] == "error"
                return (loop.time() - started) * 1000

            await round_trip()
            if frame_of is None:
                await big.send_bytes(audio)
            else:
                await big.send_str(frame_of(audio))
            trips = [await round_trip() for _ in range(15)]
            await big.send_str(_COMMIT)
            while True:  # answered after the large frame, not before it
                event = await asyncio.wait_for(big.receive_json(), 30)
                if event["type"] in (answer, "error"):
                    break
            assert event["type"] == answer, event
    print(f"\n{case}: round trips during the work: max {max(trips):.1f} ms")
    # Here 6-13 ms on an idle machine; before, up to 164 ms (the item) and 1 260 ms (binary).
    # The bound leaves room for a busy machine; tests/protocol/test_large_events.py shows the
    # work is split into steps by counting them, not by timing.
    assert max(trips) < 250


async def test_connections_past_the_limit_are_closed_and_said_once(tmp_path: Path) -> None:
    async with bridge(tmp_path, MAX_CONNECTIONS="5") as served:
        held = [await asyncio.open_connection("127.0.0.1", served.ws_port) for _ in range(5)]
        extra = [await asyncio.open_connection("127.0.0.1", served.ws_port) for _ in range(3)]
        for reader, _ in extra:  # closed at once, without reading anything
            assert await asyncio.wait_for(reader.read(), 5) == b""
        for _, writer in held + extra:
            writer.close()
        async with aiohttp.ClientSession() as http:  # room again once they are gone
            for _ in range(50):
                try:
                    async with http.get(f"http://127.0.0.1:{served.http_port}/metrics") as r:
                        text = await r.text()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
    refused = re.search(r'realtime_bridge_refused_total\{reason="connection_limit"\} (\d+)', text)
    assert refused is not None
    assert int(refused.group(1)) >= 3
    warnings = [line for line in served.logs().splitlines() if "refusing connections" in line]
    assert len(warnings) == 1


async def test_running_out_of_descriptors_is_said_and_survived(tmp_path: Path) -> None:
    """The bridge under a lowered RLIMIT_NOFILE: descriptors run out, the log says so (once
    per interval), and once they are back a session opens as usual."""
    async with bridge(tmp_path, NOFILE_LIMIT="40", MAX_CONNECTIONS="1000") as served:
        held = []
        for _ in range(60):
            with contextlib.suppress(OSError):
                held.append(await asyncio.open_connection("127.0.0.1", served.ws_port))
        for _ in range(100):  # the bridge looks once a second: wait for its line
            if "out of file descriptors" in served.logs():
                break
            await asyncio.sleep(0.05)
        for _, writer in held:
            writer.close()
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.ws_connect(
                        f"ws://127.0.0.1:{served.ws_port}/v1/realtime"
                    ) as ws:
                        assert (await ws.receive_json())["type"] == "session.created"
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no session after the descriptors came back")
    logs = served.logs()
    assert "out of file descriptors" in logs
    assert logs.count("out of file descriptors") <= 2


async def test_fragment_floods_cost_no_memory(tmp_path: Path) -> None:
    """64 MB of two-byte fragments grew the server by 436 MB: now a message has at most 1 024
    fragments, each charged 64 bytes, so the flood is cut off at once."""
    async with bridge(tmp_path) as served:
        baseline = rss_mb(served.pid)
        client = await open_ws(served.ws_port)
        client.writer.write(encode_frame(OP_TEXT, b"{", fin=False))
        fragment = encode_frame(0x0, b"ab", fin=False)
        sent = 0
        with contextlib.suppress(ConnectionError, TimeoutError):
            for _ in range(64 * 1024 * 1024 // (2 * 4096)):
                client.writer.write(fragment * 4096)
                await asyncio.wait_for(client.writer.drain(), 5)
                sent += len(fragment) * 4096
        growth = rss_mb(served.pid) - baseline
        client.writer.transport.abort()
    print(f"\nfragments: sent {sent / 2**20:.1f} MB before the close; server grew {growth:.1f} MB")
    assert sent < 8 * 1024 * 1024
    assert growth < 16


async def test_the_local_upstream_bounds_what_a_client_makes_it_keep(tmp_path: Path) -> None:
    """25 × 8 MB appends with turn detection off grew the local upstream by 210 MB: its input
    buffer now holds 32 MB until committed, and the rest is refused in the API's shape."""
    async with bridge(tmp_path) as served, aiohttp.ClientSession() as http:
        baseline = rss_mb(served.pid)
        url = f"ws://127.0.0.1:{served.ws_port}/v1/realtime"
        async with http.ws_connect(url, max_msg_size=0) as ws:
            await ws.receive()
            off = {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
            await ws.send_json(off)
            await ws.receive()
            chunk = base64.b64encode(bytes(8 * 1024 * 1024)).decode()
            codes = []
            for _ in range(12):
                await ws.send_str('{"type":"input_audio_buffer.append","audio":"' + chunk + '"}')
            await ws.send_str('{"type":"conversation.item.retrieve","item_id":"marker"}')
            while True:
                event = await asyncio.wait_for(ws.receive_json(), 30)
                if event["type"] == "error":
                    codes.append(event["error"]["code"])
                    if event["error"].get("param") == "item_id":
                        break
            growth = rss_mb(served.pid) - baseline
    assert codes.count("input_audio_buffer_full") == 12 - 4  # 4 × 8 MB fit in 32 MB
    assert growth < 200  # 96 MB of appends sent; 32 MB kept, plus decoding's transients


async def test_info_shows_the_upstream_without_query_or_credentials(tmp_path: Path) -> None:
    env = {
        "UPSTREAM": "openai",
        "OPENAI_API_KEY": "sk-info-test-000",
        "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime?deployment=x&region=eu",
    }
    async with bridge(tmp_path, **env) as served, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{served.http_port}/info") as response:
            info = await response.json()
    assert info["upstream"]["url"] == "ws://127.0.0.1:9/v1/realtime"
    assert "sk-info-test" not in str(info)
