"""Formats declared in the query are told to the upstream (SPEC §5): a client that never sends
``session.update`` (a phone, a simple page) declares G.711 at the upgrade; the bridge tells the
upstream ``audio/pcmu`` / ``audio/pcma`` before any client audio, holds what the client sends
meanwhile, and hides the upstream's answer to its own update.

The fake upstream here is strict the way the API is: it reads appends, and writes its answer, in
the formats it was *told* (PCM16 24 kHz until told otherwise). So a bridge that forgot to tell
it would fail these tests on the audio itself, not on an event list."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from realtime_bridge.audio import g711
from realtime_bridge.server.app import BridgeServer
from tests.audio._helpers import correlation
from tests.conftest import TEST_KEY, running_bridge, ws_url
from tests.fakes import Behaviour, FakeUpstream, UpstreamSession, running_fake_upstream
from tests.recordings import read_wav

PCM24 = {"type": "audio/pcm", "rate": 24000}
SECONDS = 2.0


def _decode(fmt: dict[str, Any], data: bytes) -> np.ndarray:
    """Audio as an upstream told ``fmt`` reads it."""
    if fmt["type"] == "audio/pcmu":
        data = g711.ulaw_to_pcm16(data)
    elif fmt["type"] == "audio/pcma":
        data = g711.alaw_to_pcm16(data)
    return np.frombuffer(data, "<i2").astype(np.float64)


def _encode(fmt: dict[str, Any], pcm8k: bytes) -> bytes:
    """8 kHz PCM16 as an upstream told ``fmt`` writes it (PCM stays at 8 kHz samples: the test
    only needs it to be what a G.711 client cannot read)."""
    if fmt["type"] == "audio/pcmu":
        return g711.pcm16_to_ulaw(pcm8k)
    if fmt["type"] == "audio/pcma":
        return g711.pcm16_to_alaw(pcm8k)
    return pcm8k


@dataclass
class StrictUpstream:
    """Records what it was told and received; answers in the formats it was told."""

    answer_pcm8k: bytes
    release: asyncio.Event = field(default_factory=asyncio.Event)
    told: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    formats: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"input": dict(PCM24), "output": dict(PCM24)}
    )
    heard: bytes = b""
    heard_format: dict[str, Any] | None = None
    #: How many events the upstream had received when it confirmed the bridge's update.
    received_at_confirm: int | None = None

    def session(self) -> dict[str, Any]:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_fake",
            "audio": {
                "input": {
                    "format": self.formats["input"],
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                },
                "output": {"format": self.formats["output"], "voice": "alloy"},
            },
        }

    async def __call__(self, up: UpstreamSession) -> None:
        send = up.ws.send_str
        await send(orjson.dumps({"type": "session.created", "session": self.session()}).decode())
        buffer = b""
        while True:
            event = orjson.loads(await up.received.get())
            self.events.append(event)
            kind = event["type"]
            if kind == "session.update":
                await self.release.wait()  # the test decides when the update is confirmed
                self.told.append(event["session"])
                for direction in ("input", "output"):
                    part = event["session"].get("audio", {}).get(direction, {})
                    if "format" in part:
                        self.formats[direction] = part["format"]
                if self.received_at_confirm is None:
                    self.received_at_confirm = len(self.events)
                updated = {"type": "session.updated", "session": self.session()}
                await send(orjson.dumps(updated).decode())
            elif kind == "input_audio_buffer.append":
                buffer += base64.b64decode(event["audio"])
            elif kind == "input_audio_buffer.commit":
                self.heard, self.heard_format, buffer = buffer, dict(self.formats["input"]), b""
                await send(orjson.dumps({"type": "input_audio_buffer.committed"}).decode())
            elif kind == "response.create":
                audio = _encode(self.formats["output"], self.answer_pcm8k)
                for i in range(0, len(audio), 1600):
                    delta = {
                        "type": "response.output_audio.delta",
                        "response_id": "resp_1",
                        "item_id": "item_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": base64.b64encode(audio[i : i + 1600]).decode(),
                    }
                    await send(orjson.dumps(delta).decode())
                done = {"type": "response.output_audio.done", "response_id": "resp_1"}
                await send(orjson.dumps(done).decode())
                await send(orjson.dumps({"type": "response.done", "response": {}}).decode())


@contextlib.asynccontextmanager
async def bridge_before(behaviour: Behaviour) -> AsyncIterator[tuple[FakeUpstream, BridgeServer]]:
    """A bridge whose ``openai`` upstream is a fake with ``behaviour``."""
    async with (
        running_fake_upstream(behaviour) as fake,
        running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY=TEST_KEY, OPENAI_REALTIME_URL=fake.url
        ) as bridge,
    ):
        yield fake, bridge


def _recording(name: str) -> bytes:
    """Two seconds of real speech, raw G.711 bytes at 8 kHz."""
    wav = read_wav(name)
    loud = next(i for i, b in enumerate(g711.ulaw_to_pcm16(wav.data)[::2]) if b)  # skip zeros
    return wav.data[loud : loud + int(8000 * SECONDS)]


CODECS = {
    "g711_ulaw": ("speech-three-turns-8k-ulaw.wav", {"type": "audio/pcmu"}),
    "g711_alaw": ("speech-three-turns-8k-alaw.wav", {"type": "audio/pcma"}),
}


async def _receive_answer(ws: aiohttp.ClientWebSocketResponse, binary: bool) -> tuple[bytes, list]:
    audio = b""
    seen: list[str] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type is aiohttp.WSMsgType.BINARY:
            audio += msg.data
            continue
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        event = msg.json()
        seen.append(event["type"])
        if event["type"] == "response.output_audio.delta":
            assert not binary
            audio += base64.b64decode(event["delta"])
        elif event["type"] == "response.done":
            return audio, seen


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("codec", sorted(CODECS))
async def test_g711_declared_in_the_query_is_told_upstream_both_ways(
    http: aiohttp.ClientSession, codec: str, binary: bool
) -> None:
    name, ga_format = CODECS[codec]
    sent = _recording(name)
    reference = _decode(ga_format, sent)
    upstream = StrictUpstream(answer_pcm8k=g711.ulaw_to_pcm16(_recording(CODECS["g711_ulaw"][0])))
    async with bridge_before(upstream) as (_fake, bridge):
        query = f"?input_audio_format={codec}&output_audio_format={codec}"
        query += "&audio=binary" if binary else ""
        async with http.ws_connect(ws_url(bridge, query=query)) as ws:
            # Everything is sent at once, before the upstream confirmed anything: held, in order.
            for i in range(0, len(sent), 160):
                chunk = sent[i : i + 160]
                if binary:
                    await ws.send_bytes(chunk)
                else:
                    append = {"type": "input_audio_buffer.append", "audio": b64(chunk)}
                    await ws.send_str(orjson.dumps(append).decode())
            await ws.send_str('{"type":"input_audio_buffer.commit"}')
            await ws.send_str('{"type":"response.create"}')
            created = orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert created["type"] == "session.created"
            assert created["session"]["audio"]["input"]["format"] == ga_format
            assert created["session"]["audio"]["output"]["format"] == ga_format
            upstream.release.set()
            answer, seen = await _receive_answer(ws, binary)

    # Told before anything of the client's, which arrived complete and in order after it.
    assert upstream.events[0]["type"] == "session.update"
    assert upstream.told[0]["audio"] == {
        "input": {"format": ga_format},
        "output": {"format": ga_format},
    }
    assert upstream.received_at_confirm == 1
    assert [e["type"] for e in upstream.events[-2:]] == [
        "input_audio_buffer.commit",
        "response.create",
    ]
    assert "session.updated" not in seen  # the bridge's own update is not shown
    heard = _decode(upstream.heard_format or PCM24, upstream.heard)
    assert abs(len(heard) / 8000 - SECONDS) <= 0.02
    assert correlation(heard, reference) >= 0.99
    played = _decode(ga_format, answer)
    expected = np.frombuffer(upstream.answer_pcm8k, "<i2").astype(np.float64)
    assert abs(len(played) - len(expected)) / 8000 <= 0.02
    assert correlation(played, expected) >= 0.99


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_later_client_session_update_overrides_and_is_answered(
    http: aiohttp.ClientSession,
) -> None:
    upstream = StrictUpstream(answer_pcm8k=b"")
    upstream.release.set()
    async with bridge_before(upstream) as (_fake, bridge):
        query = "?input_audio_format=g711_ulaw&output_audio_format=g711_ulaw"
        async with http.ws_connect(ws_url(bridge, query=query)) as ws:
            update = {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"format": PCM24}}},
            }
            await ws.send_str(orjson.dumps(update).decode())
            kinds = []
            while "session.updated" not in kinds:
                event = orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                kinds.append(event["type"])
            assert kinds == ["session.created", "session.updated"]  # only the client's own
            assert event["session"]["audio"]["input"]["format"] == PCM24
            assert event["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert [s["audio"]["input"]["format"] for s in upstream.told] == [
        {"type": "audio/pcmu"},
        PCM24,
    ]


async def test_pcm16_at_another_rate_needs_no_update_and_still_resamples(
    http: aiohttp.ClientSession,
) -> None:
    upstream = StrictUpstream(answer_pcm8k=b"")
    upstream.release.set()
    async with bridge_before(upstream) as (_fake, bridge):
        async with http.ws_connect(ws_url(bridge, query="?input_audio_format=pcm16@16000")) as ws:
            created = orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert created["session"]["audio"]["input"]["format"] == {
                "type": "audio/pcm",
                "rate": 16000,
            }
            chunk = np.zeros(1600, "<i2").tobytes()  # 100 ms at 16 kHz
            await ws.send_str(
                orjson.dumps({"type": "input_audio_buffer.append", "audio": b64(chunk)}).decode()
            )
            await ws.send_str('{"type":"input_audio_buffer.commit"}')
            await asyncio.wait_for(ws.receive(), 5)  # committed
    assert upstream.told == []
    assert upstream.heard_format == PCM24
    assert abs(len(upstream.heard) / 2 / 24000 - 0.1) <= 0.02


async def test_an_upstream_that_never_confirms_still_gets_the_audio(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hold is bounded in time: frames go on after the confirmation timeout."""
    monkeypatch.setattr("realtime_bridge.protocol.startup.CONFIRM_TIMEOUT_S", 0.3)

    async def created_only(up: UpstreamSession) -> None:
        session = StrictUpstream(answer_pcm8k=b"").session()
        await up.ws.send_str(orjson.dumps({"type": "session.created", "session": session}).decode())
        await up.closed.wait()

    async with bridge_before(created_only) as (fake, bridge):
        query = "?input_audio_format=g711_ulaw"
        async with http.ws_connect(ws_url(bridge, query=query)) as ws:
            await ws.send_str('{"type":"conversation.item.retrieve","item_id":"x"}')
            session = await fake.next_session()
            first = orjson.loads(await session.next_text())
            assert first["type"] == "session.update"
            held = orjson.loads(await session.next_text(timeout=5))
            assert held["type"] == "conversation.item.retrieve"
