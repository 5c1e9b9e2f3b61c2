"""Audio conversion end to end: clients at 16 kHz, 48 kHz, µ-law and binary frames, through the
bridge to a recording fake upstream and back; what arrives decodes to what was sent."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson
import pytest

from realtime_bridge.audio import g711
from realtime_bridge.server.app import BridgeServer
from tests.conftest import ws_url
from tests.fakes import FakeUpstream, UpstreamSession, receive_json

Samples = npt.NDArray[np.float64]


def tone(rate: int, seconds: float, freqs: tuple[float, ...] = (440.0, 1250.0)) -> Samples:
    t = np.arange(round(rate * seconds)) / rate
    return sum(0.25 * np.sin(2 * np.pi * f * t) for f in freqs)  # type: ignore[return-value]


def to_pcm16(x: Samples) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> Samples:
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768


def spectrum_peaks(x: Samples, rate: int, count: int = 2) -> list[float]:
    """The strongest frequencies of a signal (Hz, rounded to 10 Hz)."""
    window = np.hanning(len(x))
    magnitude = np.abs(np.fft.rfft(x * window))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    peaks: list[float] = []
    for index in np.argsort(magnitude)[::-1]:
        f = round(float(freqs[index]), -1)
        if all(abs(f - p) > 50 for p in peaks):
            peaks.append(f)
        if len(peaks) == count:
            break
    return sorted(peaks)


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def collect_appends(upstream: UpstreamSession) -> bytes:
    """Audio the upstream received, up to and including the commit."""
    audio = b""
    while True:
        event = orjson.loads(await upstream.next_text())
        if event["type"] == "input_audio_buffer.commit":
            return audio
        if event["type"] == "input_audio_buffer.append":
            audio += base64.b64decode(event["audio"])


def session_update(fmt_in: dict[str, object], fmt_out: dict[str, object]) -> str:
    return orjson.dumps(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": fmt_in}, "output": {"format": fmt_out}},
            },
        }
    ).decode()


@pytest.mark.parametrize("rate", [16000, 48000, 8000, 22050, 44100])
async def test_pcm_client_at_other_rates_both_ways(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession, rate: int
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        fmt = {"type": "audio/pcm", "rate": rate}
        await ws.send_str(session_update(fmt, fmt))
        told = orjson.loads(await upstream.next_text())
        assert told["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert told["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}

        # The upstream reports 24 kHz; the client is shown the format it declared.
        await upstream.ws.send_str(
            orjson.dumps({"type": "session.updated", "session": told["session"]}).decode()
        )
        shown = await receive_json(ws)
        assert shown["session"]["audio"]["input"]["format"] == fmt

        signal = tone(rate, 1.0)
        for chunk in frames(to_pcm16(signal), rate // 50 * 2):  # 20 ms frames
            await ws.send_str(
                orjson.dumps(
                    {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
                ).decode()
            )
        await ws.send_str('{"type":"input_audio_buffer.commit"}')
        received = from_pcm16(await collect_appends(upstream))
        assert abs(len(received) / 24000 - 1.0) <= 0.02  # same duration within 20 ms
        assert spectrum_peaks(received, 24000) == [440.0, 1250.0]

        # Upstream → client: 24 kHz deltas become the client's rate.
        reply = tone(24000, 0.6, (600.0, 2000.0))
        for chunk in frames(to_pcm16(reply), 2400):
            delta = {
                "type": "response.output_audio.delta",
                "event_id": "e",
                "response_id": "r",
                "item_id": "i",
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(chunk).decode(),
            }
            await upstream.ws.send_str(orjson.dumps(delta).decode())
        await upstream.ws.send_str(
            '{"type":"response.output_audio.done","event_id":"d","response_id":"r","item_id":"i","output_index":0,"content_index":0}'
        )
        audio = b""
        while True:
            event = await receive_json(ws)
            if event["type"] == "response.output_audio.done":
                break
            assert event["type"] == "response.output_audio.delta"
            assert event["item_id"] == "i"
            audio += base64.b64decode(event["delta"])
        got = from_pcm16(audio)
        assert abs(len(got) / rate - 0.6) <= 0.02
        expected = [600.0, 2000.0] if rate > 4000 else [600.0]
        assert spectrum_peaks(got, rate, len(expected)) == expected


async def test_ulaw_passes_through_and_binary_frames(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge, query="?audio=binary")) as ws:
        upstream = await fake_upstream.next_session()
        await ws.send_str(session_update({"type": "audio/pcmu"}, {"type": "audio/pcmu"}))
        told = orjson.loads(await upstream.next_text())
        assert told["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        ulaw = g711.pcm16_to_ulaw(to_pcm16(tone(8000, 0.5)))
        for chunk in frames(ulaw, 160):
            await ws.send_bytes(chunk)  # binary frame = raw audio in the input format
        await ws.send_str('{"type":"input_audio_buffer.commit"}')
        assert await collect_appends(upstream) == ulaw  # G.711 is never transcoded

        await upstream.ws.send_str(
            orjson.dumps(
                {
                    "type": "response.output_audio.delta",
                    "event_id": "e",
                    "response_id": "r",
                    "item_id": "i",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": base64.b64encode(ulaw[:800]).decode(),
                }
            ).decode()
        )
        await upstream.ws.send_str('{"type":"response.output_text.delta","delta":"hi"}')
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.BINARY
        assert msg.data == ulaw[:800]
        assert (await receive_json(ws))["type"] == "response.output_text.delta"


async def test_binary_frames_at_16k_are_resampled(
    fake_upstream: FakeUpstream, openai_env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    from tests.conftest import running_bridge

    async with (
        running_bridge(**openai_env) as server,
        http.ws_connect(ws_url(server, query="?input_audio_format=pcm16@16000")) as ws,
    ):
        upstream = await fake_upstream.next_session()
        signal = to_pcm16(tone(16000, 0.5))
        for chunk in frames(signal, 640):
            await ws.send_bytes(chunk)
        await ws.send_str('{"type":"input_audio_buffer.commit"}')
        received = from_pcm16(await collect_appends(upstream))
        assert abs(len(received) - 12000) <= 480
        assert spectrum_peaks(received, 24000) == [440.0, 1250.0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type":"input_audio_buffer.append","event_id":"a1","audio":"***"}', "invalid_audio"),
        ('{"type":"input_audio_buffer.append","audio":"AA=="}', "invalid_audio"),  # 1 byte: odd
        ('{"type":"input_audio_buffer.append","audio":17}', "invalid_audio"),
        (
            session_update({"type": "audio/pcm", "rate": 11025}, {"type": "audio/pcm"}),
            "unsupported_audio_format",
        ),
        (session_update({"type": "audio/opus"}, {"type": "audio/pcm"}), "unsupported_audio_format"),
    ],
)
async def test_bad_audio_gets_an_error_and_is_not_forwarded(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    frame: str,
    code: str,
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        await ws.send_str(frame)
        event = await receive_json(ws)
        assert event["error"]["code"] == code
        if '"a1"' in frame:
            assert event["error"]["event_id"] == "a1"
        await ws.send_str('{"type":"input_audio_buffer.clear"}')
        assert orjson.loads(await upstream.next_text())["type"] == "input_audio_buffer.clear"
        assert upstream.received.empty()


async def test_odd_binary_frame_for_pcm16_is_invalid_audio(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        await ws.send_bytes(b"\x01\x02\x03")
        assert (await receive_json(ws))["error"]["code"] == "invalid_audio"
        await ws.send_bytes(b"\x01\x02")
        forwarded = orjson.loads(await upstream.next_text())
        assert forwarded == {"type": "input_audio_buffer.append", "audio": "AQI="}


async def test_unsupported_query_format_is_refused_at_the_upgrade(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(bridge, query="?input_audio_format=pcm16@11025"))
    assert refused.value.status == 400
    assert fake_upstream.connection_attempts == 0


@pytest.mark.parametrize("rate", [16000, 44100, 8000])
async def test_truncate_at_everything_received_is_accepted_after_conversion(
    http: aiohttp.ClientSession, rate: int
) -> None:
    """audio_end_ms is time, not bytes: a client at another rate that truncates at exactly what it
    received (after the bridge's resampling) never exceeds what the upstream sent."""
    from realtime_bridge.upstream.local.adapter import LocalUpstream
    from tests.conftest import running_bridge

    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local") as server:
        async with http.ws_connect(ws_url(server)) as ws:
            await receive_json(ws)  # session.created
            fmt = {"type": "audio/pcm", "rate": rate}
            await ws.send_str(session_update(fmt, fmt))
            assert (await receive_json(ws))["type"] == "session.updated"
            await ws.send_str(
                '{"type":"conversation.item.create","item":{"type":"message","role":"user",'
                '"content":[{"type":"input_text","text":"Tell me a long story about rivers"}]}}'
            )
            await ws.send_str('{"type":"response.create"}')
            audio, item_id = b"", None
            while True:
                event = await receive_json(ws)
                if event["type"] == "response.output_audio.delta":
                    audio += base64.b64decode(event["delta"])
                    item_id = event["item_id"]
                if event["type"] == "response.done":
                    break
            received_ms = len(audio) // 2 * 1000 // rate
            assert received_ms > 500
            truncate = {
                "type": "conversation.item.truncate",
                "event_id": "t1",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": received_ms,
            }
            await ws.send_str(orjson.dumps(truncate).decode())
            while True:
                event = await receive_json(ws)
                assert event["type"] != "error", event
                if event["type"] == "conversation.item.truncated":
                    assert event["audio_end_ms"] == received_ms
                    break


async def test_audio_inside_conversation_items_is_converted_both_ways(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    """A 16 kHz client's input_audio item reaches the upstream as 24 kHz, and items the
    upstream reports (retrieve) come back at 16 kHz; a bad clip is refused, not forwarded."""
    async with http.ws_connect(ws_url(bridge, query="?input_audio_format=pcm16@16000")) as ws:
        upstream = await fake_upstream.next_session()
        clip = to_pcm16(tone(16000, 0.5))
        create = {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": base64.b64encode(clip).decode()}],
            },
        }
        await ws.send_str(orjson.dumps(create).decode())
        sent = orjson.loads(await upstream.next_text())
        upstream_clip = base64.b64decode(sent["item"]["content"][0]["audio"])
        assert len(upstream_clip) == 24000  # 0.5 s at 24 kHz, 2 bytes a sample
        assert spectrum_peaks(from_pcm16(upstream_clip), 24000) == [440.0, 1250.0]

        retrieved = {"type": "conversation.item.retrieved", "event_id": "e", "item": sent["item"]}
        await upstream.ws.send_str(orjson.dumps(retrieved).decode())
        got = await receive_json(ws)
        client_clip = base64.b64decode(got["item"]["content"][0]["audio"])
        assert len(client_clip) == 16000  # back at 16 kHz
        assert spectrum_peaks(from_pcm16(client_clip), 16000) == [440.0, 1250.0]

        create["event_id"] = "bad1"
        create["item"]["content"][0]["audio"] = "not base64!"  # type: ignore[index]
        await ws.send_str(orjson.dumps(create).decode())
        error = await receive_json(ws)
        assert error["error"]["code"] == "invalid_audio"
        assert error["error"]["event_id"] == "bad1"
        assert error["error"]["param"] == "item.content[0].audio"
        assert upstream.received.empty()


async def test_response_output_format_override_follows_the_session(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge, query="?output_audio_format=pcm16@16000")) as ws:
        upstream = await fake_upstream.next_session()
        same = {"type": "audio/pcm", "rate": 16000}
        create = {"type": "response.create", "response": {"audio": {"output": {"format": same}}}}
        await ws.send_str(orjson.dumps(create).decode())
        told = orjson.loads(await upstream.next_text())
        assert told["response"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        other = {"type": "audio/pcmu"}
        create = {
            "type": "response.create",
            "event_id": "r2",
            "response": {"audio": {"output": {"format": other}}},
        }
        await ws.send_str(orjson.dumps(create).decode())
        error = await receive_json(ws)
        assert error["error"]["code"] == "unsupported_audio_format"
        assert error["error"]["event_id"] == "r2"
        await ws.send_str('{"type":"response.create"}')
        assert orjson.loads(await upstream.next_text()) == {"type": "response.create"}


async def test_native_output_override_on_a_native_session_is_forwarded_untouched(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        frame = (
            '{"type":"response.create",'
            '"response":{"audio":{"output":{"format":{"type":"audio/pcmu"}}}}}'
        )
        await ws.send_str(frame)
        assert await upstream.next_text() == frame
