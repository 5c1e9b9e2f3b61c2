"""Clients that cannot end their own turns, through a real bridge over real sockets, on the local
upstream and on the GA-only simulator (which refuses the beta shape like the API):

- the seed's web client: a beta ``session.update`` with server VAD, only loud 4 096-sample
  chunks, a commit on Stop and never a ``response.create``; it gets a spoken answer whether the
  bridge's silence fill lets the VAD end the turn first or its commit comes first;
- a client that asks for its own response gets exactly one;
- a client that streams continuously gets no silence added.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.server import running_simulator
from tests.conftest import running_bridge, wait_for_sessions, ws_url
from tests.protocol._corpus import SEED_SESSION_UPDATE
from tests.recordings import read_wav

TIMEOUT = 15.0
CHUNK = 4096  # the seed's ScriptProcessor buffer, at 24 kHz


def loud_chunks(name: str = "speech-hello-24k.wav", seconds: float = 1.75) -> list[bytes]:
    """What the seed's page sends of a recording: 4 096-sample chunks, only those with a
    sample louder than 0.1 of full scale."""
    samples = np.frombuffer(read_wav(name).data, "<i2")[: int(24000 * seconds)]
    chunks = [samples[i : i + CHUNK] for i in range(0, len(samples), CHUNK)]
    return [c.tobytes() for c in chunks if np.abs(c).max() > 0.1 * 32768]


@dataclass
class Bridge:
    server: BridgeServer

    def record(self) -> SessionRecord:
        (record,) = list(self.server.registry)
        return record


@contextlib.asynccontextmanager
async def bridge_on(kind: str, **env: Any) -> AsyncIterator[Bridge]:
    if kind == "local":
        async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **env) as server:
            yield Bridge(server)
        return
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        upstream = {"UPSTREAM": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_REALTIME_URL": url}
        async with running_bridge(**upstream, **env) as server:
            yield Bridge(server)


@pytest.fixture(params=["local", "ga-only-simulator"])
async def bridge(request: pytest.FixtureRequest) -> AsyncIterator[Bridge]:
    async with bridge_on(request.param) as b:
        yield b


class Client:
    """A raw WebSocket client that keeps every event it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._next_id = 0

    async def send(self, event: dict[str, Any]) -> None:
        self._next_id += 1
        await self.ws.send_str(orjson.dumps({"event_id": f"evt_{self._next_id}", **event}).decode())

    async def until(self, event_type: str) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                event = orjson.loads(msg.data)
                assert event["type"] != "error", event
                self.seen.append(event)
                if event["type"] == event_type:
                    return event

        return await asyncio.wait_for(loop(), TIMEOUT)

    def count(self, event_type: str) -> int:
        return sum(1 for e in self.seen if e["type"] == event_type)


async def seed_start(ws: aiohttp.ClientWebSocketResponse) -> Client:
    """Connect, configure and start recording as the seed's page does."""
    client = Client(ws)
    await client.until("session.created")
    await client.send(SEED_SESSION_UPDATE)
    await client.until("session.updated")
    await client.send({"type": "input_audio_buffer.clear"})
    await client.until("input_audio_buffer.cleared")
    for chunk in loud_chunks():
        await client.send(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
        )
    return client


async def test_seed_client_answered_when_fill_lets_the_vad_end_the_turn(bridge: Bridge) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(bridge.server, path="/")) as ws,
    ):
        client = await seed_start(ws)
        # The user stops talking; the page sends nothing. The fill lets the VAD end the turn.
        await client.until("input_audio_buffer.speech_stopped")
        committed = await client.until("input_audio_buffer.committed")
        await client.until("response.audio.delta")
        await client.until("response.done")
        # Stop: a commit of what the VAD already took. Answered by the bridge, not an error.
        await client.send({"type": "input_audio_buffer.commit"})
        answer = await client.until("input_audio_buffer.committed")
        assert answer["item_id"] == committed["item_id"]
        turns = bridge.record().turns
        assert turns["silence_fill_ms"] >= 700
        assert turns["commits_answered"] == 1
        assert turns["responses_created"] == 0  # the VAD's own response answered the turn
        assert client.count("response.created") == 1
        assert bridge.record().rules is not None
        assert bridge.record().rules.next_deadline() is None  # nothing more is coming


async def test_seed_client_answered_when_it_commits_first(bridge: Bridge) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(bridge.server, path="/")) as ws,
    ):
        client = await seed_start(ws)
        await client.until("input_audio_buffer.speech_started")
        await client.send({"type": "input_audio_buffer.commit"})  # Stop, right away
        await client.until("input_audio_buffer.committed")
        await client.until("response.created")  # created by the bridge after the window
        await client.until("response.audio.delta")
        await client.until("response.done")
        turns = bridge.record().turns
        assert turns["responses_created"] == 1
        assert client.count("response.created") == 1
        assert client.count("input_audio_buffer.speech_stopped") == 0


async def test_a_client_that_asks_for_its_response_gets_exactly_one(bridge: Bridge) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(bridge.server, path="/")) as ws,
    ):
        client = await seed_start(ws)
        await client.until("input_audio_buffer.speech_started")
        await client.send({"type": "input_audio_buffer.commit"})
        await client.send({"type": "response.create"})
        await client.until("response.done")
        record = bridge.record()
        assert record.rules is not None
        assert record.rules.next_deadline() is None  # no answer of the bridge's is pending
        assert record.turns["responses_created"] == 0
        assert client.count("response.created") == 1


async def test_a_continuously_streaming_client_gets_no_silence_added() -> None:
    """Speech then real silence, streamed in 20 ms frames without a gap: the VAD ends the turn
    on the client's own silence; the bridge adds nothing (checked byte for byte upstream)."""
    received = 0
    speech = np.frombuffer(read_wav("speech-hello-24k.wav").data, "<i2")[: 24000 * 2]
    stream = np.concatenate([speech, np.zeros(24000 * 2, "<i2")]).tobytes()
    async with (
        bridge_on("ga-only-simulator") as bridge,
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(bridge.server)) as ws,
    ):
        client = Client(ws)
        await client.until("session.created")
        loop = asyncio.get_running_loop()
        start = loop.time()
        frame = 960  # 20 ms
        for index, offset in enumerate(range(0, len(stream), frame)):
            # Paced ahead of real time (1.25×) on an absolute schedule: never a gap.
            delay = start + index * 0.016 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = stream[offset : offset + frame]
            received += len(chunk)
            await client.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
            )
        await client.until("response.done")
        record = bridge.record()
        assert record.turns["silence_fill_bytes"] == 0
        assert record.turns["responses_created"] == 0
        assert round(record.audio_seconds["client_to_upstream"] * 48000) == received
        await ws.close()
        await wait_for_sessions(bridge.server, 0)


async def test_silence_fill_off_in_the_query() -> None:
    async with (
        bridge_on("local") as bridge,
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(bridge.server, path="/", query="?silence_fill=off")) as ws,
    ):
        client = await seed_start(ws)
        await client.until("input_audio_buffer.speech_started")
        # Without fill the VAD never ends the turn: the commit is the client's, then answered.
        await client.send({"type": "input_audio_buffer.commit"})
        await client.until("response.done")
        assert bridge.record().turns["silence_fill_bytes"] == 0
        assert client.count("input_audio_buffer.speech_stopped") == 0


async def test_unknown_silence_fill_value_is_refused_at_the_upgrade() -> None:
    async with bridge_on("local") as bridge, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(bridge.server, query="?silence_fill=sometimes"))
        assert refused.value.status == 400
