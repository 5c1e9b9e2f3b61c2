"""WebRTC calls end to end over loopback: a real aiortc caller, a real bridge, the local upstream.

The caller speaks a recording on its Opus track and hears the answer on the bridge's; events
travel on the ``oai-events`` data channel. Nothing is mocked between the two peers (ICE, DTLS,
SRTP and SCTP all run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.synth import plan
from tests.conftest import running_bridge
from tests.webrtc_caller import RATE, Caller, silence, speech_48k, speech_like

pytestmark = pytest.mark.timeout(90)

CALL_ENV = {"UPSTREAM": "local", "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1", "LOG_LEVEL": "info"}


def calls_url(server: BridgeServer) -> str:
    return f"http://127.0.0.1:{server.http_port}/v1/realtime/calls"


@pytest.fixture
async def bridge() -> AsyncIterator[BridgeServer]:
    async with running_bridge(LocalUpstream(), **CALL_ENV) as server:
        yield server


async def connected(server: BridgeServer, **call: Any) -> Caller:
    caller = Caller()
    answer = await caller.call(calls_url(server), **call)
    assert answer.status == 201, answer.body
    async with asyncio.timeout(10):
        await caller.channel_open.wait()
    return caller


def rms_blocks(pcm: np.ndarray, block: int = RATE // 50) -> np.ndarray:
    n = len(pcm) // block
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block)
    return np.sqrt((blocks**2).mean(axis=1))


def answer_span_ms(frames: list[tuple[float, bytes]], since: float, until: float) -> float:
    """From the first to the last frame with sound, among frames arriving in [since, until]."""
    loud = [
        i
        for i, (t, pcm) in enumerate(frames)
        if since <= t <= until and rms_blocks(np.frombuffer(pcm, "<i2"), len(pcm) // 2)[0] > 20
    ]
    if not loud:
        return 0.0
    return sum(len(frames[i][1]) // 96 for i in range(loud[0], loud[-1] + 1))


async def test_a_caller_speaks_and_hears_the_answer_with_events_in_order(
    bridge: BridgeServer,
) -> None:
    caller = await connected(bridge)
    try:
        assert caller.answer is not None
        call_id = caller.answer.call_id
        assert call_id.startswith("rtc_")
        assert caller.answer.headers["Content-Type"].startswith("application/sdp")
        start = time.monotonic()
        caller.say(silence(0.3) + speech_48k() + silence(1.0))
        done = await caller.wait_for("response.done", within_s=30)
        await caller.wait_for("output_audio_buffer.stopped", within_s=30)
        record = next(iter(bridge.registry))
        assert record.client_kind == "webrtc"
        assert record.call == {"call_id": call_id}
        # The answer the upstream sent, as the bridge passed it on, is what the caller heard.
        reported_ms = record.audio_seconds["upstream_to_client"] * 1000
        heard = caller.audio()
        assert speech_like(heard)
        final = await caller.wait_for("response.output_audio_transcript.done")
        # The local upstream's voice ends on the pause of the final full stop: what is heard
        # runs from its first syllable to its last.
        segments = plan(final["transcript"])
        assert abs(sum(s.ms for s in segments) - reported_ms) <= 25
        while segments and segments[-1].vowel is None:
            reported_ms -= segments.pop().ms
        span = answer_span_ms(caller.frames, start, float("inf"))
        assert abs(span - reported_ms) <= 100, (span, reported_ms)  # 20 ms frames, ringing
        types = caller.types()
        assert types[0] == "session.created"
        assert "response.output_audio.delta" not in types  # the audio is on the track
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.committed",
            "response.created",
            "response.output_item.added",
            "output_audio_buffer.started",
            "response.output_audio.done",
            "response.done",
            "output_audio_buffer.stopped",
        ]
        positions = [types.index(kind) for kind in order]
        assert positions == sorted(positions), list(zip(order, positions, strict=True))
        response_id = done["response"]["id"]
        for kind in ("output_audio_buffer.started", "output_audio_buffer.stopped"):
            assert (await caller.wait_for(kind))["response_id"] == response_id
        # Every transcript delta came, in order: together they are the final transcript.
        deltas = "".join(
            e["delta"]
            for e in caller.events
            if e["type"] == "response.output_audio_transcript.delta"
        )
        assert deltas == final["transcript"]
        assert len(heard) / RATE >= reported_ms / 1000
    finally:
        await caller.close()


async def test_barge_in_truncates_at_the_audio_that_left_the_track(bridge: BridgeServer) -> None:
    caller = await connected(bridge)
    try:
        caller.say(speech_48k() + silence(0.2))
        started = await caller.wait_for("output_audio_buffer.started", within_s=30)
        first = len(caller.events)
        since = caller.arrivals[caller.events.index(started)]

        def heard_s() -> float:
            return answer_span_ms(caller.frames, since - 1, time.monotonic()) / 1000

        await caller.wait_until(lambda: heard_s() >= 1.2, within_s=10)
        caller.say(speech_48k())  # the caller speaks over the answer
        cleared = await caller.wait_for("output_audio_buffer.cleared", after=first, within_s=10)
        cleared_at = caller.arrivals[caller.events.index(cleared)]
        truncated = await caller.wait_for("conversation.item.truncated", after=first)
        # The track stopped at once: past the caller's own jitter buffer (80 ms) nothing loud
        # arrives until the answer to what it said over the first one.
        next_start = await caller.wait_for("output_audio_buffer.started", after=first, within_s=30)
        next_at = caller.arrivals[caller.events.index(next_start)]
        late = [
            t
            for t, pcm in caller.frames
            if cleared_at + 0.25 < t < next_at and np.abs(np.frombuffer(pcm, "<i2")).max() > 200
        ]
        assert not late, [round(t - cleared_at, 3) for t in late]
        played = answer_span_ms(caller.frames, since - 1, cleared_at + 0.25)
        assert abs(truncated["audio_end_ms"] - played) <= 40, (truncated, played)
        assert truncated["item_id"]
        assert started["response_id"]
        assert next(iter(bridge.registry)).call is not None
    finally:
        await caller.close()


async def test_the_callers_clear_stops_playback_and_truncates(bridge: BridgeServer) -> None:
    caller = await connected(bridge)
    try:
        caller.say(speech_48k() + silence(0.2))
        started = await caller.wait_for("output_audio_buffer.started", within_s=30)
        since = caller.arrivals[caller.events.index(started)]
        await caller.wait_until(
            lambda: answer_span_ms(caller.frames, since - 1, time.monotonic()) >= 800, within_s=10
        )
        first = len(caller.events)
        caller.send({"type": "response.cancel"})
        caller.send({"type": "output_audio_buffer.clear"})
        cleared = await caller.wait_for("output_audio_buffer.cleared", after=first)
        assert cleared["response_id"] == started["response_id"]
        cleared_at = caller.arrivals[caller.events.index(cleared)]
        truncated = await caller.wait_for("conversation.item.truncated", after=first)
        await caller.wait_for("response.done", after=first)
        # Wait for a second of track after the clear: nothing loud past the jitter buffer.
        await caller.wait_until(lambda: caller.frames[-1][0] > cleared_at + 1.0)
        late = [
            t
            for t, pcm in caller.frames
            if t > cleared_at + 0.25 and np.abs(np.frombuffer(pcm, "<i2")).max() > 200
        ]
        assert not late
        played = answer_span_ms(caller.frames, since - 1, cleared_at + 0.25)
        assert abs(truncated["audio_end_ms"] - played) <= 40, (truncated, played)
        assert "error" not in caller.types()  # the bridge's own cancel, if late, is not shown
    finally:
        await caller.close()
