"""Beta clients through the bridge: the official SDK's beta client (which sends the beta header)
and a hand-written beta client (no header, recognised by what it sends), on the in-process local
upstream and on a GA-only upstream over a socket that refuses the beta shape like the API does.
Every event a beta client receives validates against the SDK's beta server-event types."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from openai import AsyncOpenAI

from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.server import running_simulator
from tests.conftest import running_bridge
from tests.local.conftest import read_wav, read_wav_g711
from tests.protocol.test_translate_schema import validate_beta_server_event

MODEL = "gpt-4o-realtime-preview"
TIMEOUT = 10.0
GA_ONLY_NAMES = (
    "response.output_text",
    "response.output_audio",
    "conversation.item.added",
    "conversation.item.done",
)


@contextlib.asynccontextmanager
async def bridge_port(kind: str) -> AsyncIterator[int]:
    if kind == "local":
        async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local") as bridge:
            yield bridge.ws_port
        return
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        env = {"UPSTREAM": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_REALTIME_URL": url}
        async with running_bridge(**env) as bridge:
            yield bridge.ws_port


@pytest.fixture(params=["local", "ga-only-simulator"])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    async with bridge_port(request.param) as p:
        yield p


class BetaEvents:
    """Receives raw frames, validates each against the beta types, and keeps them."""

    def __init__(self, recv: Any, *, ga_session_created: bool = False) -> None:
        self._recv = recv
        self.seen: list[dict[str, Any]] = []
        # SPEC §5: a client recognised as beta only by what it sends got session.created in GA.
        self._skip_first_session_created = ga_session_created

    async def until(self, event_type: str) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                event = orjson.loads(await self._recv())
                assert not event["type"].startswith(GA_ONLY_NAMES), event["type"]
                assert event["type"] != "error", event
                if self._skip_first_session_created and event["type"] == "session.created":
                    self._skip_first_session_created = False
                else:
                    validate_beta_server_event(event)
                self.seen.append(event)
                if event["type"] == event_type:
                    return event

        return await asyncio.wait_for(loop(), TIMEOUT)

    def types(self) -> list[str]:
        return [e["type"] for e in self.seen]


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_sdk_beta_client_text_turn(port: int) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.beta.realtime.connect(model=MODEL) as conn:
        events = BetaEvents(conn.recv_bytes)
        created = await events.until("session.created")
        assert created["session"]["modalities"]
        await conn.session.update(session={"modalities": ["text"], "temperature": 0.7})
        updated = await events.until("session.updated")
        assert updated["session"]["modalities"] == ["text"]
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What is a bridge for?"}],
            }
        )
        await events.until("conversation.item.created")
        await conn.response.create()
        done = await events.until("response.done")
        assert done["response"]["status"] == "completed"
        text = "".join(e["delta"] for e in events.seen if e["type"] == "response.text.delta")
        assert "bridge" in text.lower()
        assert "response.text.done" in events.types()
    await client.close()


async def test_sdk_beta_client_audio_turn(port: int) -> None:
    speech, rate = read_wav("speech-hello-24k.wav")
    assert rate == 24000
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.beta.realtime.connect(model=MODEL) as conn:
        events = BetaEvents(conn.recv_bytes)
        await events.until("session.created")
        await conn.session.update(
            session={
                "modalities": ["audio", "text"],
                "voice": "alloy",
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        )
        await events.until("session.updated")
        silence = bytes(24000 * 2)
        for chunk in chunks(speech + silence, 960):
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await events.until("input_audio_buffer.speech_started")
        await events.until("input_audio_buffer.committed")
        done = await events.until("response.done")
        assert done["response"]["status"] == "completed"
        types = events.types()
        assert "response.audio.delta" in types
        assert "response.audio_transcript.delta" in types
        assert "conversation.item.created" in types
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in events.seen if e["type"] == "response.audio.delta"
        )
        assert len(audio) > 24000  # more than half a second of assistant audio
    await client.close()


async def test_hand_written_beta_client_ulaw_in_pcm16_out(port: int) -> None:
    """Like the seed's web client: no header, beta session.update, but G.711 µ-law input."""
    ulaw = read_wav_g711("speech-three-turns-8k-ulaw.wav")[
        : 8000 * 7
    ]  # silence, first turn, silence
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/") as ws:

        async def recv() -> str:
            msg = await ws.receive()
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            return str(msg.data)

        events = BetaEvents(recv, ga_session_created=True)
        await events.until("session.created")
        await ws.send_str(
            orjson.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "modalities": ["audio", "text"],
                        "voice": "alloy",
                        "input_audio_format": "g711_ulaw",
                        "output_audio_format": "pcm16",
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 700,
                        },
                    },
                }
            ).decode()
        )
        updated = await events.until("session.updated")
        assert updated["session"]["input_audio_format"] == "g711_ulaw"
        assert updated["session"]["output_audio_format"] == "pcm16"
        for chunk in chunks(ulaw, 160):
            event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
            await ws.send_str(orjson.dumps(event).decode())
        started = await events.until("input_audio_buffer.speech_started")
        # The first utterance starts after 1.2 s of silence (minus the prefix padding).
        assert 700 <= started["audio_start_ms"] <= 1300
        await events.until("response.done")
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in events.seen if e["type"] == "response.audio.delta"
        )
        assert len(audio) % 2 == 0
        assert len(audio) > 24000
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
        assert np.sqrt(np.mean(samples**2)) > 300  # speech-like signal, not silence


async def test_dropped_beta_fields_are_debug_logged(captured_logs: list[str]) -> None:
    async with bridge_port("local") as p, aiohttp.ClientSession() as http:
        async with http.ws_connect(
            f"ws://127.0.0.1:{p}/v1/realtime", headers={"OpenAI-Beta": "realtime=v1"}
        ) as ws:
            events = BetaEvents(ws.receive_str)
            await events.until("session.created")
            await ws.send_str('{"type":"session.update","session":{"temperature":0.6}}')
            await events.until("session.updated")
    dropped = [line for line in captured_logs if "were dropped" in line]
    assert len(dropped) == 1
    assert "fields=session.temperature" in dropped[0]
