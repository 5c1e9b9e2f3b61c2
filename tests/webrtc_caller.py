"""A WebRTC caller for the tests: a real aiortc peer, as a browser would be.

It creates the ``oai-events`` data channel before its offer (as the browser SDK does), POSTs the
offer to the bridge, speaks PCM16 at 48 kHz on its Opus track at real time (silence between),
and records every event and every decoded audio frame it receives, with arrival times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from realtime_bridge.webrtc.media import PacedAudioTrack, read_track
from tests.recordings import read_wav

RATE = 48000


def speech_48k(name: str = "speech-hello-48k.wav") -> bytes:
    wav = read_wav(name)
    assert wav.rate == RATE
    assert wav.channels == 1
    assert wav.bits == 16
    return wav.data


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def call_id(self) -> str:
        return self.headers.get("Location", "").rsplit("/", 1)[-1]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Caller:
    """One call from the caller's side."""

    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration()))
    events: list[dict[str, Any]] = field(default_factory=list)
    #: When each event arrived (time.monotonic()).
    arrivals: list[float] = field(default_factory=list)
    #: (arrival time, PCM16 mono 48 kHz) per decoded frame.
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    answer: Answer | None = None

    def __post_init__(self) -> None:
        self._changed = asyncio.Event()
        self.track = PacedAudioTrack(lambda _taken, _empty: None)
        self.pc.addTrack(self.track)
        self.channel = self.pc.createDataChannel("oai-events")
        self.channel.on("message", self._on_message)
        self.channel_open = asyncio.Event()
        self.channel.on("open", self.channel_open.set)
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    async def call(
        self,
        url: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        session: dict[str, Any] | None = None,
        edit_offer: Callable[[str], str] | None = None,
    ) -> Answer:
        """POST the offer (SDP, or a multipart form with ``session``); on 201, connect."""
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp = self.pc.localDescription.sdp
        if edit_offer is not None:
            sdp = edit_offer(sdp)
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as http:
            if session is None:
                sent["Content-Type"] = "application/sdp"
                response = await http.post(url, data=sdp, headers=sent)
            else:
                form = aiohttp.FormData(default_to_multipart=True)
                form.add_field("sdp", sdp)
                form.add_field("session", orjson.dumps(session).decode())
                response = await http.post(url, data=form, headers=sent)
            async with response:
                answer = Answer(response.status, dict(response.headers), await response.text())
        self.answer = answer
        if answer.status == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(answer.body, "answer"))
        return answer

    def say(self, pcm: bytes) -> None:
        """Speak ``pcm`` (PCM16 mono 48 kHz) on the track, after what is already queued."""
        self.track.push(pcm, (None, None))

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(orjson.dumps(event).decode())

    async def wait_for(
        self, kind: str, within_s: float = 10.0, after: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """The first event of ``kind`` (from index ``after``) whose fields match."""

        def found() -> dict[str, Any] | None:
            for event in self.events[after:]:
                if event.get("type") == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event
            return None

        async with asyncio.timeout(within_s):
            while (event := found()) is None:
                self._changed.clear()
                await self._changed.wait()
        return event

    async def wait_until(self, condition: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def types(self) -> list[str]:
        return [str(event.get("type")) for event in self.events]

    def audio(self, since: float = 0.0) -> np.ndarray:
        return np.frombuffer(b"".join(pcm for t, pcm in self.frames if t >= since), "<i2")

    async def close(self) -> None:
        self.track.stop()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        # asyncio closes a datagram socket on the loop's next turn: let it, before the test's
        # loop ends (or the socket is reported as leaked).
        for _ in range(3):
            await asyncio.sleep(0)

    def _on_message(self, data: str | bytes) -> None:
        self.events.append(orjson.loads(data))
        self.arrivals.append(time.monotonic())
        self._changed.set()

    def _on_track(self, track: Any) -> None:
        def got(pcm: bytes) -> None:
            self.frames.append((time.monotonic(), pcm))
            self._changed.set()

        self._tasks.append(asyncio.get_running_loop().create_task(read_track(track, got)))


def loud_ms(pcm: np.ndarray, threshold: float = 300.0) -> float:
    """Milliseconds of 10 ms blocks whose RMS is above ``threshold``."""
    block = RATE // 100
    n = len(pcm) // block
    if n == 0:
        return 0.0
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block)
    rms = np.sqrt((blocks**2).mean(axis=1))
    return float((rms > threshold).sum() * 10)


def speech_like(pcm: np.ndarray) -> bool:
    """Loud enough, and with a varying envelope (syllables, pauses), not a tone or noise floor."""
    block = RATE // 50
    n = len(pcm) // block
    if n < 10:
        return False
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block)
    rms = np.sqrt((blocks**2).mean(axis=1))
    loud = rms[rms > 100]
    return loud.size >= 10 and float(loud.std() / loud.mean()) > 0.2
