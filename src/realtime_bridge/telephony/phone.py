"""An offline phone: plays a WAV into a bridge as a Twilio media stream and records what the
caller would have heard (``realtime-bridge call``).

Like a phone on a Twilio call it sends µ-law 8 kHz in 20 ms media messages at real time, plays
what comes back at real time, acknowledges each mark once the audio before it was played, and
drops what it queued on ``clear``. After the WAV, it listens until the answer has been quiet
for a while, then hangs up (``stop``). The result is a µ-law WAV of what was played.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson
import soxr

from realtime_bridge.audio import g711

FRAME_BYTES = 160  # 20 ms of µ-law at 8 kHz
SILENCE_FRAME = b"\xff" * FRAME_BYTES  # µ-law's code for zero
STREAM_SID = "MZsimulated0000000000000000000000"
CALL_SID = "CAsimulated0000000000000000000000"


def read_as_ulaw(path: Path) -> bytes:
    """A WAV file (PCM16 at any rate, or G.711 µ-law / A-law) as µ-law at 8 kHz, mono."""
    blob = path.read_bytes()
    tag, channels, rate, bits, data = _riff(blob)
    if tag == 7:
        return data
    if tag == 6:
        return g711.pcm16_to_ulaw(g711.alaw_to_pcm16(data))
    if tag != 1 or bits != 16:
        raise ValueError(f"{path}: only PCM16, µ-law or A-law WAV files can be played")
    samples = np.frombuffer(data, "<i2").reshape(-1, channels).mean(axis=1)
    if rate != 8000:
        samples = soxr.resample(samples, rate, 8000, quality="VHQ")
    pcm = np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()
    return g711.pcm16_to_ulaw(pcm)


def write_ulaw_wav(path: Path, ulaw: bytes) -> None:
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, len(ulaw))
        + b"data"
        + struct.pack("<I", len(ulaw))
        + ulaw
        + (b"\0" if len(ulaw) % 2 else b"")
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _riff(blob: bytes) -> tuple[int, int, int, int, bytes]:
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(blob):
        chunk, size = blob[pos : pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        if chunk == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", blob, pos + 8)
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data" and fmt is not None:
            return (*fmt, blob[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    raise ValueError("no audio in the WAV file")


@dataclass
class CallResult:
    heard: bytes
    marks: int
    clears: int
    seconds: float


@dataclass
class _Playback:
    """What the phone has queued to play, and what it played."""

    queue: deque[tuple[str, object]] = field(default_factory=deque)
    started: float = 0.0
    heard: bytearray = field(default_factory=bytearray)
    last_audio: float = 0.0


async def place_call(
    url: str, ulaw: bytes, *, quiet_s: float = 2.0, max_s: float = 300.0, token: str | None = None
) -> CallResult:
    """One simulated call to ``url`` (a bridge's ``/twilio``); returns what was heard."""
    began = time.monotonic()
    play = _Playback()
    marks = clears = 0
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:

        async def send(message: dict[str, object]) -> None:
            await ws.send_str(orjson.dumps(message).decode())

        async def talk() -> None:
            await send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await send(
                {
                    "event": "start",
                    "streamSid": STREAM_SID,
                    "start": {
                        "streamSid": STREAM_SID,
                        "callSid": CALL_SID,
                        "tracks": ["inbound"],
                        "customParameters": {},
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
            loop = asyncio.get_running_loop()
            start = loop.time()
            for index, offset in enumerate(range(0, len(ulaw), FRAME_BYTES)):
                delay = start + index * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await media(ulaw[offset : offset + FRAME_BYTES])
            talked.set()
            # A phone line goes on carrying the caller's silence (so the VAD hears the turn end).
            index = len(ulaw) // FRAME_BYTES
            while True:
                index += 1
                delay = start + index * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await media(SILENCE_FRAME)

        async def media(chunk: bytes) -> None:
            payload = base64.b64encode(chunk).decode()
            await send(
                {
                    "event": "media",
                    "streamSid": STREAM_SID,
                    "media": {"track": "inbound", "payload": payload},
                }
            )

        async def listen() -> None:
            nonlocal marks, clears
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                message = orjson.loads(msg.data)
                event = message.get("event")
                if event == "media":
                    data = base64.b64decode(message["media"]["payload"])
                    if not play.queue:
                        play.started = time.monotonic()
                    play.queue.append(("audio", data))
                    play.last_audio = time.monotonic()
                elif event == "mark":
                    play.queue.append(("mark", message["mark"]["name"]))
                elif event == "clear":
                    clears += 1
                    play.queue.clear()

        async def player() -> None:
            nonlocal marks
            while True:
                now = time.monotonic()
                while play.queue:
                    kind, value = play.queue[0]
                    if kind == "mark":
                        play.queue.popleft()
                        marks += 1
                        await send(
                            {"event": "mark", "streamSid": STREAM_SID, "mark": {"name": value}}
                        )
                        continue
                    assert isinstance(value, bytes)
                    if now - play.started < len(value) / 8000:
                        break
                    play.queue.popleft()
                    play.started += len(value) / 8000
                    play.heard += value
                await asyncio.sleep(0.01)

        talked = asyncio.Event()
        tasks = [
            asyncio.create_task(listen()),
            asyncio.create_task(player()),
            asyncio.create_task(talk()),
        ]
        try:
            await asyncio.wait_for(talked.wait(), max_s)
            done_talking = time.monotonic()
            # Listen until the answer has been quiet for quiet_s (and everything was played).
            while time.monotonic() - began < max_s:
                last = max(play.last_audio, done_talking)
                if not play.queue and time.monotonic() - last >= quiet_s:
                    break
                await asyncio.sleep(0.05)
            await send({"event": "stop", "streamSid": STREAM_SID})
        finally:
            for task in tasks:
                task.cancel()
    return CallResult(bytes(play.heard), marks, clears, time.monotonic() - began)


async def run_call(url: str, wav: Path, out: Path, token: str | None = None) -> CallResult:
    result = await place_call(url, read_as_ulaw(wav), token=token)
    write_ulaw_wav(out, result.heard)
    return result


def describe(result: CallResult, out: Path) -> str:
    return (
        f"call ended after {result.seconds:.1f} s: heard {len(result.heard) / 8000:.1f} s of "
        f"answer ({result.marks} marks played, {result.clears} barge-ins); wrote {out}"
    )


__all__ = ["CallResult", "describe", "place_call", "read_as_ulaw", "run_call", "write_ulaw_wav"]
