"""Phone calls: a scripted Twilio Media Streams client (a phone that plays what it gets at real
time and acknowledges marks when played) against a real bridge, on the local upstream and on a
recording fake upstream that the test drives."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from realtime_bridge.audio import g711
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.server import running_simulator
from tests.conftest import TEST_KEY, running_bridge
from tests.fakes import UpstreamSession, running_fake_upstream
from tests.recordings import read_wav

STREAM_SID = "MZ00000000000000000000000000000000"
CALL_SID = "CA00000000000000000000000000000000"


@dataclass
class Phone:
    """A Twilio media stream as a phone uses it: it plays audio at real time and echoes each
    mark once the audio before it was played; ``clear`` drops what is still queued."""

    ws: aiohttp.ClientWebSocketResponse
    audio: bytearray = field(default_factory=bytearray)
    queue: deque[tuple[str, Any]] = field(default_factory=deque)  # ("audio", ms) or ("mark", n)
    acked_ms: float = 0.0
    played_ms: float = 0.0  # of the current answer
    clears: list[float] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    realtime: bool = True
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the bridge closed the stream
    _position_start: float = 0.0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    async def start(self, **custom: str) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": STREAM_SID,
                "start": {
                    "streamSid": STREAM_SID,
                    "accountSid": "AC0",
                    "callSid": CALL_SID,
                    "tracks": ["inbound"],
                    "customParameters": custom,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def say(self, ulaw: bytes, speed: float = 1.0) -> None:
        """Send µ-law in 20 ms media messages, at ``speed`` times real time."""
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for index, offset in enumerate(range(0, len(ulaw), 160)):
            wait = begin + index * 0.02 / speed - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            payload = base64.b64encode(ulaw[offset : offset + 160]).decode()
            await self.send(
                {
                    "event": "media",
                    "streamSid": STREAM_SID,
                    "media": {"track": "inbound", "payload": payload},
                }
            )

    async def run(self) -> None:
        """Read what the bridge sends; play it (acknowledge marks) at real time."""
        loop = asyncio.get_running_loop()
        while True:
            msg = await self.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self.ended.set()
                return
            message = orjson.loads(msg.data)
            event = message.get("event")
            if event == "media":
                data = base64.b64decode(message["media"]["payload"])
                self.audio += data
                if not self.queue:
                    self._position_start = loop.time()
                self.queue.append(("audio", len(data) / 8))
            elif event == "mark":
                self.queue.append(("mark", message["mark"]["name"]))
            elif event == "clear":
                self.clears.append(time.monotonic())
                self.queue.clear()
                self.played_ms = 0.0
            else:
                self.other.append(message)
            await self._play(loop.time())

    async def _play(self, now: float) -> None:
        """Acknowledge every mark whose audio has been played by ``now``."""
        while self.queue:
            kind, value = self.queue[0]
            if kind == "mark":
                self.queue.popleft()
                self.acked_ms = self.played_ms
                await self.send({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": value}})
                self.acked.set()
                continue
            if self.realtime and now - self._position_start < value / 1000:
                return
            self.queue.popleft()
            self._position_start += value / 1000
            self.played_ms += value

    async def player(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.005)
            await self._play(loop.time())


@contextlib.asynccontextmanager
async def phone(
    server: BridgeServer, *, realtime: bool = True, **custom: str
) -> AsyncIterator[Phone]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/twilio") as ws,
    ):
        p = Phone(ws, realtime=realtime)
        await p.start(**custom)
        tasks = [asyncio.create_task(p.run()), asyncio.create_task(p.player())]
        try:
            yield p
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await p.send({"event": "stop", "streamSid": STREAM_SID})


def speech_ulaw(seconds: float) -> bytes:
    data = read_wav("speech-three-turns-8k-ulaw.wav").data
    return data[int(8000 * 1.2) : int(8000 * (1.2 + seconds))]


def responses_done(bridge: BridgeServer) -> int:
    """How many response.done events the session's upstream sent (its per-type counters)."""
    total = 0
    for record in bridge.registry:
        counts = record.counters.upstream_to_client._by_type.get("response.done")
        total += counts[0] if counts else 0
    return total


@contextlib.asynccontextmanager
async def bridge_on(kind: str, **env: str) -> AsyncIterator[BridgeServer]:
    """A bridge on the in-process local upstream, or on the simulator over a socket (GA only,
    as the API)."""
    if kind == "local":
        async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **env) as bridge:
            yield bridge
        return
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        async with running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY="sk-test", OPENAI_REALTIME_URL=url, **env
        ) as bridge:
            yield bridge


@pytest.mark.parametrize("kind", ["local", "simulator-as-upstream"])
async def test_three_turns_answered(kind: str) -> None:
    recording = read_wav("speech-three-turns-8k-ulaw.wav").data
    async with (
        bridge_on(kind) as bridge,
        phone(bridge, realtime=False) as p,
    ):
        await p.say(recording, speed=4.0)
        for _ in range(200):  # until the third answer is done (bounded)
            if responses_done(bridge) >= 3:
                break
            await asyncio.sleep(0.05)
        (session,) = await sessions(bridge)
        done = responses_done(bridge)
    assert done == 3
    assert session["client_kind"] == "twilio"
    assert session["call"]["call_sid"] == CALL_SID
    assert session["call"]["stream_sid"] == STREAM_SID
    assert session["audio_seconds"]["client_to_upstream"] == pytest.approx(
        len(recording) / 8000, abs=0.05
    )
    heard = np.frombuffer(g711.ulaw_to_pcm16(bytes(p.audio)), "<i2").astype(np.float64)
    assert abs(len(heard) / 8000 - session["audio_seconds"]["upstream_to_client"]) < 0.05
    assert len(heard) / 8000 > 1.0  # seconds of answer
    assert np.sqrt(np.mean(heard**2)) > 300  # speech-like, not silence


async def sessions(bridge: BridgeServer) -> list[dict[str, Any]]:
    return [record.summary() for record in bridge.registry]


@dataclass
class Scripted:
    """A fake upstream the test drives: it confirms session updates and records the rest."""

    received: list[dict[str, Any]] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    ws: Any = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, up: UpstreamSession) -> None:
        self.ws = up.ws
        created = {
            "type": "realtime",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {"type": "server_vad"},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}},
            },
        }
        await up.ws.send_str(orjson.dumps({"type": "session.created", "session": created}).decode())
        while True:
            event = orjson.loads(await up.received.get())
            self.received.append(event)
            self.got.set()
            if event["type"] == "session.update":
                await up.ws.send_str(
                    orjson.dumps({"type": "session.updated", "session": created}).decode()
                )
                self.ready.set()

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(event).decode())

    async def wait_for(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async def look() -> dict[str, Any]:
            while True:
                for event in self.received:
                    if event["type"] == kind:
                        return event
                self.got.clear()
                await self.got.wait()

        return await asyncio.wait_for(look(), timeout)


@contextlib.asynccontextmanager
async def scripted_bridge(**env: str) -> AsyncIterator[tuple[BridgeServer, Scripted]]:
    scripted = Scripted()
    async with (
        running_fake_upstream(scripted) as fake,
        running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY=TEST_KEY, OPENAI_REALTIME_URL=fake.url, **env
        ) as bridge,
    ):
        yield bridge, scripted


async def test_barge_in_clears_and_truncates_at_what_was_heard() -> None:
    async with scripted_bridge() as (bridge, up), phone(bridge) as p:
        await asyncio.wait_for(up.ready.wait(), 5)
        update = await up.wait_for("session.update")
        assert update["session"]["audio"] == {
            "input": {"format": {"type": "audio/pcmu"}},
            "output": {"format": {"type": "audio/pcmu"}},
        }
        # An answer of 3 s, sent at once (the API sends faster than real time).
        answer = g711.pcm16_to_ulaw((np.sin(np.arange(24000) / 5) * 8000).astype("<i2").tobytes())
        await up.send({"type": "response.created", "response": {"id": "resp_1"}})
        for offset in range(0, len(answer), 800):  # 100 ms chunks
            chunk = base64.b64encode(answer[offset : offset + 800]).decode()
            await up.send(
                {
                    "type": "response.output_audio.delta",
                    "response_id": "resp_1",
                    "item_id": "item_a",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": chunk,
                }
            )
        while p.acked_ms < 1000:  # the caller has heard a second of it
            p.acked.clear()
            await asyncio.wait_for(p.acked.wait(), 5)
        heard = p.acked_ms
        speech_at = time.monotonic()
        await up.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": 1000,
                "item_id": "item_user",
            }
        )
        truncate = await up.wait_for("conversation.item.truncate")
        cancel = await up.wait_for("response.cancel")
    assert p.clears, "no clear reached the phone"
    assert p.clears[0] - speech_at < 0.05
    assert truncate["item_id"] == "item_a"
    assert truncate["content_index"] == 0
    assert abs(truncate["audio_end_ms"] - heard) <= 20
    assert truncate["audio_end_ms"] <= 3000
    assert cancel["type"] == "response.cancel"


async def test_dtmf_is_told_to_the_model_when_enabled_and_hang_up_ends_the_upstream() -> None:
    async with scripted_bridge(TWILIO_DTMF="item") as (bridge, up):
        async with phone(bridge) as p:
            await asyncio.wait_for(up.ready.wait(), 5)
            await p.send({"event": "dtmf", "streamSid": STREAM_SID, "dtmf": {"digit": "5"}})
            created = await up.wait_for("conversation.item.create")
            assert created["item"]["content"][0]["text"] == "[DTMF 5]"
            await p.send({"event": "garbage"})  # unknown: ignored
            await p.ws.send_str("not json at all")  # malformed: logged, the call goes on
            await p.say(speech_ulaw(0.2))
            await up.wait_for("input_audio_buffer.append")
            await p.send({"event": "stop", "streamSid": STREAM_SID})
            started = time.monotonic()
            await asyncio.wait_for(bridge.registry.wait_for_count(0, 5), 5)
        assert time.monotonic() - started < 1.0


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's published algorithm: HMAC-SHA1 over the URL and the sorted POST parameters."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


async def test_signatures_are_required_when_the_auth_token_is_set() -> None:
    token = "twilio-auth-token-0123"
    env = {"TWILIO_AUTH_TOKEN": token, "PUBLIC_BASE_URL": "https://bridge.example"}
    async with scripted_bridge(**env) as (bridge, up), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{bridge.http_port}"
        form = {"CallSid": CALL_SID, "From": "+15550001"}
        url = "https://bridge.example/twilio/voice?instructions=hi"
        good = twilio_signature(token, url, form)
        async with http.post(
            base + "/twilio/voice?instructions=hi", data=form, headers={"X-Twilio-Signature": good}
        ) as response:
            assert response.status == 200
            twiml = await response.text()
        assert '<Stream url="wss://bridge.example/twilio">' in twiml
        assert '<Parameter name="instructions" value="hi"/>' in twiml
        async with http.post(
            base + "/twilio/voice?instructions=hi", data=form, headers={"X-Twilio-Signature": "x"}
        ) as response:
            assert response.status == 403
        ws_url = f"ws://127.0.0.1:{bridge.ws_port}/twilio"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url)
        assert refused.value.status == 403
        assert up.ws is None  # no upstream connection for it
        signed = twilio_signature(token, "wss://bridge.example/twilio", {})
        async with http.ws_connect(ws_url, headers={"X-Twilio-Signature": signed}) as ws:
            p = Phone(ws)
            await p.start()
            await asyncio.wait_for(up.ready.wait(), 5)


async def test_the_call_is_configured_from_settings_and_allowed_parameters() -> None:
    env = {
        "TWILIO_INSTRUCTIONS": "You answer the phone for ACME.",
        "TWILIO_VOICE": "marin",
        "TWILIO_GREETING": "ACME, how can I help?",
        "TWILIO_PARAMETERS": "instructions",
    }
    async with scripted_bridge(**env) as (bridge, up):
        async with phone(bridge, instructions="You answer for the night shift.", voice="x") as p:
            update = await up.wait_for("session.update")
            greeting = await up.wait_for("response.create")
            assert p is not None
    session = update["session"]
    assert session["instructions"] == "You answer for the night shift."  # an allowed parameter
    assert session["audio"]["output"]["voice"] == "marin"  # "voice" is not allowed: the setting
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert "ACME, how can I help?" in greeting["response"]["instructions"]


async def test_hang_up_mid_answer_and_the_upstream_ending_the_call() -> None:
    async with running_bridge(LocalUpstream(pace=1.0), UPSTREAM="local") as bridge:
        async with phone(bridge) as p:
            await p.say(speech_ulaw(3.0) + b"\xff" * 8000, speed=4.0)
            while not p.audio:  # the answer is playing
                p.acked.clear()
                await asyncio.wait_for(p.acked.wait(), 10)
            await p.send({"event": "stop", "streamSid": STREAM_SID})
            hung_up = time.monotonic()
            await asyncio.wait_for(bridge.registry.wait_for_count(0, 5), 5)
            assert time.monotonic() - hung_up < 1.0
    async with scripted_bridge() as (bridge, up), phone(bridge) as p:
        await asyncio.wait_for(up.ready.wait(), 5)
        await up.ws.close(code=1000)
        await asyncio.wait_for(p.ended.wait(), 5)  # the upstream's end ended the stream


async def test_malformed_and_out_of_order_messages_are_logged_and_survived(
    captured_logs: list[str],
) -> None:
    async with scripted_bridge() as (bridge, up), aiohttp.ClientSession() as http:
        async with http.ws_connect(f"ws://127.0.0.1:{bridge.ws_port}/twilio") as ws:
            p = Phone(ws)
            payload = base64.b64encode(b"\xff" * 160).decode()
            await p.send({"event": "media", "streamSid": STREAM_SID, "media": {"payload": payload}})
            await p.start()  # after media: that media is dropped, the call starts
            await asyncio.wait_for(up.ready.wait(), 5)
            await ws.send_str('{"event":"media","media":{}}')  # no payload
            await ws.send_str("[1,2,3]")
            await p.send({"event": "media", "streamSid": STREAM_SID, "media": {"payload": payload}})
            append = await up.wait_for("input_audio_buffer.append")
            assert append["audio"] == payload  # the call went on
    logs = "".join(captured_logs)
    assert "Twilio message before start ignored" in logs
    assert logs.count("malformed Twilio message ignored") == 2
