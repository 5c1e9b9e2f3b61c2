"""Transcription sessions through the bridge (PROTOCOL §9): ``?intent=transcription`` reaches the
upstream with no model forced on it, and the local upstream serves them as the API does."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import numpy as np
import orjson

from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import running_bridge, ws_url
from tests.fakes import FakeUpstream
from tests.recordings import read_wav


def first_turn() -> bytes:
    """The first utterance of the three-turn recording, then enough silence to end it."""
    audio = np.frombuffer(read_wav("speech-three-turns-24k.wav").data, "<i2")
    return audio[: 24000 * 7].tobytes()  # 1.2 s silence, ~4.6 s of speech, silence


async def events_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = orjson.loads((await asyncio.wait_for(ws.receive(), 15)).data)
        assert event["type"] != "error", event
        seen.append(event)
        if event["type"] == kind:
            return seen


async def test_a_transcription_client_gets_transcripts_on_the_local_upstream(
    http: aiohttp.ClientSession,
) -> None:
    async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local") as bridge:
        async with http.ws_connect(ws_url(bridge, query="?intent=transcription")) as ws:
            (created,) = await events_until(ws, "session.created")
            assert created["session"]["type"] == "transcription"
            update = {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
                },
            }
            await ws.send_str(orjson.dumps(update).decode())
            updated = (await events_until(ws, "session.updated"))[-1]["session"]
            assert updated["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
            audio = first_turn()
            for i in range(0, len(audio), 9600):
                append = {"type": "input_audio_buffer.append"}
                append["audio"] = base64.b64encode(audio[i : i + 9600]).decode()
                await ws.send_str(orjson.dumps(append).decode())
            seen = await events_until(ws, "conversation.item.input_audio_transcription.completed")
            kinds = [e["type"] for e in seen]
            assert "input_audio_buffer.committed" in kinds
            assert "conversation.item.input_audio_transcription.delta" in kinds
            assert seen[-1]["transcript"]
            assert seen[-1]["usage"]
            # A response is no part of a transcription session: none came, and asking fails.
            assert not any(k.startswith("response.") for k in kinds)
            await ws.send_str('{"type":"response.create"}')
            error = orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert error["type"] == "error"


async def test_the_intent_reaches_the_upstream_without_a_model(
    http: aiohttp.ClientSession, fake_upstream: FakeUpstream, openai_env: dict[str, str]
) -> None:
    async with running_bridge(**openai_env) as bridge:
        async with http.ws_connect(ws_url(bridge, query="?intent=transcription&foo=bar")):
            upstream = await fake_upstream.next_session()
    assert upstream.handshake.query == {"intent": "transcription"}


async def test_a_beta_transcription_client_through_the_bridge(
    http: aiohttp.ClientSession,
) -> None:
    async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local") as bridge:
        async with http.ws_connect(ws_url(bridge, query="?intent=transcription")) as ws:
            await events_until(ws, "session.created")
            update = {
                "type": "transcription_session.update",
                "session": {"input_audio_transcription": {"model": "whisper-1"}},
            }
            await ws.send_str(orjson.dumps(update).decode())
            updated = (await events_until(ws, "transcription_session.updated"))[-1]
            assert updated["session"]["input_audio_transcription"]["model"] == "whisper-1"
