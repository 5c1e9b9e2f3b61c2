"""WebRTC calls beside WebSocket sessions: the bridge's CPU per call-second, calls per core at real
time, and the latency a packet's audio gains on its way through the bridge to the upstream.

- CPU per call-second. A real bridge process (``python -m realtime_bridge``,
  ``WEBRTC_PUBLIC_ADDRESS=127.0.0.1``, a ``BRIDGE_API_KEYS`` token) on the local upstream run as a
  separate process (``realtime-bridge simulator``, real-time pace, its server VAD answering every
  turn with synthetic speech), so the bridge's CPU is the bridge's alone. This process drives N
  concurrent clients of one kind at a time, each speaking ``speech-three-turns`` (15.1 s of real
  speech, three turns, looped; read as tests/recordings.py reads it) at real time and hearing
  the answers:
  - WebRTC: an aiortc peer (one Opus track each way, DTLS-SRTP), data channel ``oai-events``
    created before the offer, the offer POSTed to ``/v1/realtime/calls`` (``application/sdp``,
    ``Authorization: Bearer``), the 48 kHz recording in 20 ms frames on its track; the answer
    track is decoded.
  - WebSocket: ``/v1/realtime`` with the same token, the 24 kHz recording as
    ``input_audio_buffer.append`` (PCM16, 20 ms each), the answers'
    ``response.output_audio.delta`` decoded.
  Both count the answer audio they hear (20 ms pieces above -40 dBFS): the same work was done.
  The bridge's user + system CPU (``/proc/<pid>/stat``, all its threads: aiortc encodes and
  decodes Opus in threads) over a window that starts once every call is connected plus a
  warm-up, divided by N x the window: CPU seconds per call-second. Calls per core at real time =
  1 / that. The kinds alternate; medians of the repeats. Each run first waits for a quiet
  machine, and one during which other processes (not the bridge, this process or the simulator)
  used more than 25 % of a core is run again (up to 3 attempts).
- Added latency. A second bridge process whose upstream is a recording WebSocket server in this
  process, on the same clock as the clients (``time.perf_counter``). Each client sends quiet
  noise (-60 dBFS) and, once a second, a loud 60 ms burst (a 1 kHz tone at -6 dBFS). Each client
  labels its upstream connection (a ``session.update`` with its label as instructions); the
  upstream decodes every append and notes when a rising edge of loudness (peak over -20 dBFS
  after an append below it) arrives. The time from the client putting the burst's first frame
  on the wire (WebRTC: the first RTP packet sent after the track handed the frame to aiortc's
  encoder, timed at the ``sendto`` of its SRTP packet; WebSocket: the append's ``send_str``
  returned) to the upstream reading the append that holds it. Beside the WebRTC calls: WebSocket
  sessions at 24 kHz (passed through) and at 48 kHz (declared in the query and resampled to
  24 kHz by the bridge, as a call's decoded audio is), so WebRTC - WebSocket 48 kHz is what the
  WebRTC path itself adds. And, for reference, the same client to a bare aiortc peer in this
  process reading its track as the bridge does: aiortc's own receive path (jitter buffer, Opus
  decoding) without the bridge. The clients and the upstream share this process's event loop,
  so the figures include its scheduling (the same for every kind).

Numbers only, no targets; bounded (timeouts everywhere), stops by itself. The load generator
(this process: the aiortc peers encode and decode Opus and run DTLS-SRTP as a browser would)
shares the machine's cores with the bridge and the simulator.

    .venv/bin/python bench/webrtc.py [--calls 1,5,10] [--seconds 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fractions
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import orjson
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from benchutil import (
    LoopbackUpstream,
    Proc,
    bridge_process_env,
    cpu_seconds,
    free_port,
    host_cpu,
    process_tree,
    wait_quiet,
)
from workers import snapshot_source

from realtime_bridge.webrtc.ice import IceSettings
from realtime_bridge.webrtc.ice import install as install_ice

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.recordings

from tests.recordings import read_wav

# The bridge announces only 127.0.0.1 (WEBRTC_PUBLIC_ADDRESS), and aioice never offers loopback
# by itself: on a machine with another interface, a client would offer only that address. So the
# aiortc clients of this process gather host candidates on loopback alone, with the bridge's own
# function for it (it replaces aioice's choice of addresses for this process only).
install_ice(IceSettings(public_address="127.0.0.1"))
#: No STUN server: aiortc would otherwise ask a public one (and wait 5 s when it cannot).
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])

TOKEN = "bench-token"
TIMEOUT_S = 15.0
FRAME_S = 0.02
RTC_RATE = 48000
WS_RATE = 24000
RTC_FRAME = int(RTC_RATE * FRAME_S)  # 960 samples
#: Latency bursts: quiet noise at -60 dBFS, a 1 kHz tone at -6 dBFS for 3 frames once a second.
QUIET = 10 ** (-60 / 20)
LOUD = 10 ** (-6 / 20)
EDGE = 10 ** (-20 / 20)  # a rising edge: an append peaking above this after one below it
BURST_FRAMES = 3
BURST_EVERY = 50  # frames (1 s)
KINDS = ("webrtc", "websocket")
#: A run during which other processes used more than this (% of a core) is run again.
MAX_OTHER_PCT = 25.0
MAX_ATTEMPTS = 3
#: Each run waits (at most 20 s) for the machine to be this quiet (% of a core) first.
QUIET_PCT = 30.0
WS48_RATE = 48000
#: The latency part adds WebSocket clients at 48 kHz: the bridge resamples their audio to 24 kHz
#: as it does a call's, so WebRTC - WebSocket 48 kHz is what the WebRTC path itself adds.
LATENCY_KINDS = (*KINDS, "websocket-48k")
#: The snapshot of src/ the bridge and simulator processes import (``--source``).
SOURCE: list[str] = []


def source_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` importing the bridge from the snapshot (ahead of the editable install)."""
    return {**env, "PYTHONPATH": SOURCE[0]} if SOURCE else env


def read_speech(rate: int) -> np.ndarray:
    """The three-turn recording at ``rate`` as int16, as the tests read it: ../shared/audio's
    original when it is beside the repository, else derived from tests/fixtures/."""
    wav = read_wav(f"speech-three-turns-{rate // 1000}k.wav")
    if wav.rate != rate or wav.bits != 16 or wav.channels != 1:
        raise SystemExit(f"unexpected format of speech-three-turns-{rate // 1000}k.wav")
    return np.frombuffer(wav.data, "<i2").copy()


def burst_frame(index: int, size: int, rate: int, rng: np.random.Generator) -> tuple[bytes, bool]:
    """Frame ``index`` of the latency signal (PCM16): quiet noise, or a loud burst frame."""
    loud = index % BURST_EVERY < BURST_FRAMES and index >= BURST_EVERY
    if loud:
        t = (np.arange(size) + index * size) / rate
        x = LOUD * np.sin(2 * np.pi * 1000 * t)
    else:
        x = QUIET * rng.standard_normal(size)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    return pcm, loud and index % BURST_EVERY == 0


def peak(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, "<i2")
    return float(np.abs(samples).max()) / 32768 if samples.size else 0.0


# ---- clients ---------------------------------------------------------------------------------


@dataclass
class CallStats:
    """What one call or session met."""

    label: str
    setup_ms: float = 0.0
    answer_s: float = 0.0  # audible answer audio received
    events: int = 0  # data channel / WebSocket events received
    responses: int = 0  # response.done events
    lateness_ms: list[float] = field(default_factory=list)  # frames produced after their time
    marks: list[float] = field(default_factory=list)  # perf_counter of each burst on the wire
    error: str | None = None


class Stop:
    """When the clients stop: unknown until every client of the run is up."""

    def __init__(self) -> None:
        self.at = float("inf")

    async def wait(self) -> None:
        while (left := self.at - time.perf_counter()) > 0:
            await asyncio.sleep(min(left, 0.05))


class PacedTrack(MediaStreamTrack):
    """An audio track giving 20 ms frames at real time: the recording (looped) or the latency
    signal. Notes when each burst's first frame was handed to the sender."""

    kind = "audio"

    def __init__(self, speech: np.ndarray | None, stats: CallStats) -> None:
        super().__init__()
        self.speech = speech
        self.stats = stats
        self.index = 0
        self.start: float | None = None
        self.mark_pending = False
        self.rng = np.random.default_rng(len(stats.label))

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        due = self.start + self.index * FRAME_S
        if due > now:
            await asyncio.sleep(due - now)
        self.stats.lateness_ms.append((time.perf_counter() - due) * 1000)
        if self.speech is not None:
            offset = self.index * RTC_FRAME % (len(self.speech) - RTC_FRAME)
            pcm = self.speech[offset : offset + RTC_FRAME].tobytes()
        else:
            pcm, first = burst_frame(self.index, RTC_FRAME, RTC_RATE, self.rng)
            self.mark_pending = self.mark_pending or first
        frame = av.AudioFrame(format="s16", layout="mono", samples=RTC_FRAME)
        frame.planes[0].update(pcm)
        frame.sample_rate = RTC_RATE
        frame.pts = self.index * RTC_FRAME
        frame.time_base = fractions.Fraction(1, RTC_RATE)
        self.index += 1
        return frame


def is_rtcp(packet: bytes) -> bool:
    return len(packet) > 1 and 192 <= packet[1] <= 223  # RFC 5761


def time_the_marks(pc: RTCPeerConnection, track: PacedTrack) -> None:
    """Note when the burst's first RTP packet leaves: aiortc's sender takes a frame from the
    track, encodes it and sends its packet before it takes the next, so the first RTP packet
    sent after a burst frame was taken is that frame's."""
    dtls = pc.getSenders()[0].transport
    send = dtls._send_rtp

    async def timed(data: bytes) -> None:
        await send(data)
        if track.mark_pending and not is_rtcp(data):
            track.mark_pending = False
            track.stats.marks.append(time.perf_counter())

    dtls._send_rtp = timed


def audible_s(pcm: bytes, rate: int) -> float:
    """Seconds of ``pcm`` (PCM16 mono) in 20 ms pieces louder than -40 dBFS: the answer's
    speech, not the silence around it (counted alike for both kinds)."""
    samples = np.frombuffer(pcm, "<i2")
    size = int(rate * FRAME_S)
    pieces = samples[: len(samples) // size * size].reshape(-1, size)
    return float((np.abs(pieces).max(axis=1) > 328).sum()) * FRAME_S if pieces.size else 0.0


async def hear(track: MediaStreamTrack, stats: CallStats) -> None:
    """Decode the answer track to its end; count audible seconds."""
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            mono = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            stats.answer_s += audible_s(mono.astype("<i2").tobytes(), frame.sample_rate)


async def webrtc_call(
    http: aiohttp.ClientSession,
    http_url: str,
    label: str,
    speech: np.ndarray | None,
    stop: Stop,
    ready: asyncio.Event,
) -> CallStats:
    """One browser-like call: offer POSTed, audio at real time until ``stop``, hangup."""
    stats = CallStats(label)
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    listening: list[asyncio.Task[None]] = []
    try:
        channel = pc.createDataChannel("oai-events")
        opened = asyncio.Event()

        @channel.on("open")
        def on_open() -> None:
            update = {"type": "session.update", "session": {"type": "realtime"}}
            update["session"]["instructions"] = label
            channel.send(orjson.dumps(update).decode())
            opened.set()

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            stats.events += 1
            if isinstance(message, str) and '"response.done"' in message:
                stats.responses += 1

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            listening.append(asyncio.create_task(hear(remote, stats)))

        track = PacedTrack(speech, stats)
        pc.addTrack(track)
        started = time.perf_counter()
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"}
        async with http.post(
            f"{http_url}/v1/realtime/calls", data=pc.localDescription.sdp, headers=headers
        ) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"POST /v1/realtime/calls: {response.status} {answer[:200]}")
            call_id = response.headers["Location"].rsplit("/", 1)[-1]
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        time_the_marks(pc, track)
        await asyncio.wait_for(opened.wait(), TIMEOUT_S)
        stats.setup_ms = (time.perf_counter() - started) * 1000
        ready.set()
        await stop.wait()
        hangup = f"{http_url}/v1/realtime/calls/{call_id}/hangup"
        async with http.post(hangup, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            if response.status != 200:
                stats.error = f"hangup: {response.status}"
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
        ready.set()
    finally:
        await pc.close()
        for task in listening:
            task.cancel()
    return stats


async def websocket_session(
    http: aiohttp.ClientSession,
    ws_url: str,
    label: str,
    speech: np.ndarray | None,
    stop: Stop,
    ready: asyncio.Event,
    rate: int = WS_RATE,
) -> CallStats:
    """One WebSocket session: the same audio as appends of 20 ms at real time (at ``rate``;
    other than 24 kHz declared in the query, so the bridge resamples it as a call's)."""
    stats = CallStats(label)
    rng = np.random.default_rng(len(label))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    query = "" if rate == WS_RATE else f"?input_audio_format=pcm16@{rate}"
    frame_samples = int(rate * FRAME_S)
    started = time.perf_counter()
    try:
        async with http.ws_connect(
            f"{ws_url}/v1/realtime{query}", headers=headers, max_msg_size=0
        ) as ws:

            async def read() -> None:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        return
                    stats.events += 1
                    event = orjson.loads(message.data)
                    kind = event["type"]
                    if kind == "response.output_audio.delta":
                        stats.answer_s += audible_s(base64.b64decode(event["delta"]), WS_RATE)
                    elif kind == "response.done":
                        stats.responses += 1
                    elif kind == "session.created":
                        created.set()

            created = asyncio.Event()
            reader = asyncio.create_task(read())
            await asyncio.wait_for(created.wait(), TIMEOUT_S)
            update = {"type": "session.update", "session": {"type": "realtime"}}
            update["session"]["instructions"] = label
            await ws.send_str(orjson.dumps(update).decode())
            stats.setup_ms = (time.perf_counter() - started) * 1000
            ready.set()
            start = time.perf_counter()
            index = 0
            while (now := time.perf_counter()) < stop.at:
                due = start + index * FRAME_S
                if due > now:
                    await asyncio.sleep(due - now)
                stats.lateness_ms.append((time.perf_counter() - due) * 1000)
                if speech is not None:
                    offset = index * frame_samples % (len(speech) - frame_samples)
                    pcm, first = speech[offset : offset + frame_samples].tobytes(), False
                else:
                    pcm, first = burst_frame(index, frame_samples, rate, rng)
                audio = base64.b64encode(pcm).decode()
                await ws.send_str('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')
                if first:
                    stats.marks.append(time.perf_counter())
                index += 1
            reader.cancel()
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
        ready.set()
    return stats


# ---- the bridge and its upstreams --------------------------------------------------------------


def bridge_env(upstream: str, ws_port: int, http_port: int) -> dict[str, str]:
    return bridge_process_env(
        WS_PORT=str(ws_port),
        HTTP_PORT=str(http_port),
        UPSTREAM="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_REALTIME_URL=upstream,
        BRIDGE_API_KEYS=TOKEN,
        WEBRTC_PUBLIC_ADDRESS="127.0.0.1",
        LOG_LEVEL="warning",
        MAX_SESSIONS="1000",
        MAX_CONNECTIONS="10000",
        SHUTDOWN_GRACE_S="1",
    )


@contextlib.asynccontextmanager
async def bridge_process(upstream: str, logs: Path, name: str) -> AsyncIterator[tuple[Proc, str]]:
    """A bridge process; yields it and its HTTP URL (its WebSocket URL: ``ws_url_of``)."""
    ws_port, http_port = free_port(), free_port()
    bridge = Proc(
        name,
        [sys.executable, "-m", "realtime_bridge"],
        log_dir=logs,
        env=source_env(bridge_env(upstream, ws_port, http_port)),
        cwd=logs,  # no developer .env
    )
    await bridge.start()
    try:
        await bridge.wait_line(r"realtime-bridge listening", 30)
        yield bridge, f"http://127.0.0.1:{http_port}"
    finally:
        await bridge.stop()


def ws_url_of(http_url: str, bridge: Proc) -> str:
    match = next(line for line in bridge.lines if "realtime-bridge listening" in line)
    return match.split()[2].rstrip("/")


async def wait_idle(http: aiohttp.ClientSession, http_url: str, timeout: float = 20.0) -> None:
    """Until the bridge counts no session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{http_url}/health") as response:
                if (await response.json()).get("sessions") == 0:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the bridge still has sessions {timeout:.0f} s after the calls ended")


@dataclass
class UpstreamLink:
    label: str = ""
    quiet: bool = True
    edges: list[float] = field(default_factory=list)


class RecordingUpstream(LoopbackUpstream):
    """A Realtime-API stand-in: confirms session updates, notes loud edges in the appends."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[UpstreamLink] = []

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=0)
        await ws.prepare(request)
        link = UpstreamLink()
        self.links.append(link)
        session: dict[str, Any] = {"type": "realtime", "id": f"sess_{len(self.links)}"}
        await ws.send_str(orjson.dumps({"type": "session.created", "session": session}).decode())
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            arrived = time.perf_counter()
            event = orjson.loads(message.data)
            kind = event.get("type")
            if kind == "input_audio_buffer.append":
                loud = peak(base64.b64decode(event["audio"])) > EDGE
                if loud and link.quiet:
                    link.edges.append(arrived)
                link.quiet = not loud
            elif kind == "session.update":
                update = event.get("session", {})
                link.label = update.get("instructions", link.label)
                session = {**session, **update}
                answer = {"type": "session.updated", "session": session}
                await ws.send_str(orjson.dumps(answer).decode())
        return ws


# ---- runs --------------------------------------------------------------------------------------


async def run_calls(
    kind: str,
    n: int,
    http: aiohttp.ClientSession,
    http_url: str,
    ws_url: str,
    speech: dict[str, np.ndarray] | None,
    seconds: float,
    warmup: float,
    bridge_pids: Callable[[], list[int]],
    upstream_pids: Callable[[], list[int]] = list,
) -> dict[str, Any]:
    """N clients of ``kind`` at once; the bridge's CPU over the measured window, and what the
    rest of the machine used meanwhile (the load generator, the upstream, anything else)."""
    readies = [asyncio.Event() for _ in range(n)]
    stop = Stop()

    async def one(i: int) -> CallStats:
        label = f"{kind}-{i}"
        source = None if speech is None else speech[kind]
        await asyncio.sleep(0.05 * i)  # not all in the same millisecond
        if kind == "webrtc":
            return await webrtc_call(http, http_url, label, source, stop, readies[i])
        rate = WS48_RATE if kind == "websocket-48k" else WS_RATE
        return await websocket_session(http, ws_url, label, source, stop, readies[i], rate)

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    async with asyncio.timeout(TIMEOUT_S + n):
        for ready in readies:
            await ready.wait()
    stop.at = time.perf_counter() + warmup + seconds + 0.5
    await asyncio.sleep(warmup)
    pids, others = bridge_pids(), upstream_pids()
    cpu0, own0, up0 = cpu_seconds(pids), cpu_seconds([os.getpid()]), cpu_seconds(others)
    host0 = host_cpu()[0]
    window0 = time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, own1, up1 = cpu_seconds(pids), cpu_seconds([os.getpid()]), cpu_seconds(others)
    host1 = host_cpu()[0]
    window = time.perf_counter() - window0
    async with asyncio.timeout(TIMEOUT_S + seconds):
        calls = await asyncio.gather(*tasks)
    lateness = [x for c in calls for x in c.lateness_ms] or [0.0]
    return {
        "kind": kind,
        "calls": calls,
        "cpu_per_call_s": (cpu1 - cpu0) / (n * window),
        "bridge_pct": 100 * (cpu1 - cpu0) / window,
        "loadgen_pct": 100 * (own1 - own0) / window,
        "host_pct": 100 * (host1 - host0) / window,
        "upstream_pct": 100 * (up1 - up0) / window,
        "other_pct": 100 * ((host1 - host0) - (cpu1 - cpu0) - (own1 - own0) - (up1 - up0)) / window,
        "late_p99_ms": float(np.percentile(lateness, 99)),
    }


async def cpu_part(
    counts: list[int], seconds: float, warmup: float, repeats: int, logs: Path
) -> list[dict[str, Any]]:
    """The bridge on the simulator: every count, both kinds alternating, ``repeats`` times."""
    speech = {"webrtc": read_speech(RTC_RATE), "websocket": read_speech(WS_RATE)}
    sim_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LOCAL_", "HOST"))}
    simulator = Proc(
        "simulator",
        [sys.executable, "-m", "realtime_bridge", "simulator", "--port", str(sim_port)],
        log_dir=logs,
        env=source_env(
            {**env, "LOCAL_AUDIO_PACE": "1", "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        ),
        cwd=logs,
    )
    await simulator.start()
    results: list[dict[str, Any]] = []
    try:
        await simulator.wait_line(r"simulator listening", 30)
        upstream = f"ws://127.0.0.1:{sim_port}/v1/realtime"
        async with (
            bridge_process(upstream, logs, "bridge") as (bridge, http_url),
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
        ):
            ws_url = ws_url_of(http_url, bridge)
            pids = process_tree(bridge.pid)
            idle0 = cpu_seconds(pids)
            await asyncio.sleep(2.0)
            idle = (cpu_seconds(pids) - idle0) / 2.0
            print(f"  bridge idle: {100 * idle:.2f} % of a core", flush=True)
            for repeat in range(repeats):
                for n in counts:
                    order = KINDS if (repeat + counts.index(n)) % 2 == 0 else KINDS[::-1]
                    for kind in order:
                        for attempt in range(1, MAX_ATTEMPTS + 1):
                            await wait_quiet(QUIET_PCT, 20.0)
                            result = await run_calls(
                                kind,
                                n,
                                http,
                                http_url,
                                ws_url,
                                speech,
                                seconds,
                                warmup,
                                lambda: process_tree(bridge.pid),
                                lambda: process_tree(simulator.pid),
                            )
                            result.update(n=n, repeat=repeat, attempt=attempt)
                            print_run(result)
                            await wait_idle(http, http_url)
                            if not bridge.alive():
                                raise RuntimeError(f"the bridge exited: {bridge.tail()}")
                            if result["other_pct"] <= MAX_OTHER_PCT:
                                break
                            print(
                                f"    other processes used {result['other_pct']:.0f} % of a "
                                f"core (> {MAX_OTHER_PCT:.0f} %): "
                                + ("run again" if attempt < MAX_ATTEMPTS else "kept"),
                                flush=True,
                            )
                        results.append(result)
    finally:
        await simulator.stop()
    return results


async def latency_part(
    counts: list[int], seconds: float, logs: Path
) -> dict[tuple[str, int], dict[str, Any]]:
    """The bridge on the recording upstream: marked bursts, both kinds, at each count."""
    upstream = RecordingUpstream()
    await upstream.start()
    out: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        async with (
            bridge_process(upstream.url, logs, "bridge-latency") as (bridge, http_url),
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
        ):
            ws_url = ws_url_of(http_url, bridge)
            for n in counts:
                for kind in LATENCY_KINDS:
                    upstream.links.clear()
                    result = await run_calls(
                        kind,
                        n,
                        http,
                        http_url,
                        ws_url,
                        None,
                        seconds,
                        1.0,
                        lambda: process_tree(bridge.pid),
                    )
                    await wait_idle(http, http_url)
                    links = {link.label: link for link in upstream.links if link.label}
                    samples: list[float] = []
                    unmatched = 0
                    for call in result["calls"]:
                        link = links.get(call.label)
                        edges = link.edges if link else []
                        for mark in call.marks:
                            after = [e for e in edges if mark < e < mark + 0.9]
                            if after:
                                samples.append((after[0] - mark) * 1000)
                            else:
                                unmatched += 1
                    errors = [c.error for c in result["calls"] if c.error]
                    out[(kind, n)] = {"samples": samples, "unmatched": unmatched, "errors": errors}
                    print(
                        f"  latency {kind:9} {n:3d} calls: {len(samples)} bursts, "
                        f"p50 {percentile(samples, 50):.1f} ms, unmatched {unmatched}"
                        + (f", errors {errors[:2]}" if errors else ""),
                        flush=True,
                    )
    finally:
        await upstream.stop()
    return out


async def receiver_alone(seconds: float) -> list[float]:
    """The same bursts from the same kind of client to a bare aiortc peer in this process, which
    reads the decoded track as the bridge does (``track.recv()``): ms from the burst's packet
    on the wire to its first loud frame out of aiortc's receiver (jitter buffer and Opus
    decoding). What the bridge adds beyond it is its own (resampling, the append upstream)."""
    sender, receiver = RTCPeerConnection(NO_ICE_SERVERS), RTCPeerConnection(NO_ICE_SERVERS)
    stats = CallStats("alone")
    edges: list[float] = []

    async def read(track: MediaStreamTrack) -> None:
        quiet = True
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                loud = float(np.abs(frame.to_ndarray()).max()) / 32768 > EDGE
                if loud and quiet:
                    edges.append(time.perf_counter())
                quiet = not loud

    readers: list[asyncio.Task[None]] = []
    receiver.on("track", lambda track: readers.append(asyncio.create_task(read(track))))
    try:
        sender.createDataChannel("oai-events")
        track = PacedTrack(None, stats)
        sender.addTrack(track)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        time_the_marks(sender, track)
        await asyncio.sleep(seconds + 1.0)
    finally:
        await sender.close()
        await receiver.close()
        for task in readers:
            task.cancel()
    samples = []
    for mark in stats.marks:
        after = [e for e in edges if mark < e < mark + 0.9]
        if after:
            samples.append((after[0] - mark) * 1000)
    print(
        f"  latency aiortc receiver alone: {len(samples)} bursts, p50 "
        f"{percentile(samples, 50):.1f} ms",
        flush=True,
    )
    return samples


# ---- report ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def print_run(r: dict[str, Any]) -> None:
    calls: list[CallStats] = r["calls"]
    errors = [c.error for c in calls if c.error]
    print(
        f"  {r['kind']:9} {r['n']:3d} calls #{r['repeat']}: "
        f"{1000 * r['cpu_per_call_s']:.1f} ms CPU per call-second, bridge "
        f"{r['bridge_pct']:.0f} %, load generator {r['loadgen_pct']:.0f} %, upstream "
        f"{r['upstream_pct']:.0f} %, other {r['other_pct']:.0f} %, host "
        f"{r['host_pct']:.0f} % (of one core), answers "
        f"{statistics.mean(c.answer_s for c in calls):.1f} s/call, setup "
        f"{statistics.median(c.setup_ms for c in calls):.0f} ms, frames late p99 "
        f"{r['late_p99_ms']:.1f} ms" + (f", errors: {errors[:2]}" if errors else ""),
        flush=True,
    )


def report(
    cpu: list[dict[str, Any]],
    latency: dict[tuple[str, int], dict[str, Any]],
    alone: list[float],
    counts: list[int],
    seconds: float,
    repeats: int,
) -> None:
    print(
        f"\nBridge CPU per call-second ({seconds:g} s windows, medians of {repeats}; "
        "calls per core at real time = 1 / CPU per call-second)"
    )
    print(
        "| calls | WebRTC ms/call-s | WebSocket ms/call-s | WebRTC / WebSocket | "
        "WebRTC calls/core | WebSocket sessions/core | answer s/call (WebRTC, WebSocket) | "
        "load generator, % of a core (WebRTC, WebSocket) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---|")

    def median(kind: str, n: int, key: str) -> float:
        return statistics.median(r[key] for r in cpu if r["kind"] == kind and r["n"] == n)

    def answers(kind: str, n: int) -> float:
        rows = [r for r in cpu if r["kind"] == kind and r["n"] == n]
        return statistics.mean(c.answer_s for r in rows for c in r["calls"])

    for n in counts:
        rtc, ws = median("webrtc", n, "cpu_per_call_s"), median("websocket", n, "cpu_per_call_s")
        print(
            f"| {n} | {1000 * rtc:.1f} | {1000 * ws:.1f} | {rtc / ws:.1f}× | {1 / rtc:.0f} | "
            f"{1 / ws:.0f} | {answers('webrtc', n):.1f}, {answers('websocket', n):.1f} | "
            f"{median('webrtc', n, 'loadgen_pct'):.0f}, "
            f"{median('websocket', n, 'loadgen_pct'):.0f} |"
        )
    errors = [c.error for r in cpu for c in r["calls"] if c.error]
    print(f"calls that failed: {len(errors)}" + (f" ({errors[:3]})" if errors else ""))
    if not latency:
        return

    print(
        "\nLatency: a loud burst's first frame on the wire at the client -> the append holding "
        "it read by the upstream (ms; p50 / p90 / p99 / max)"
    )
    print(
        "| calls | WebRTC | WebSocket 24 kHz | WebSocket 48 kHz (resampled) | "
        "WebRTC - WebSocket 24 kHz (p50) | WebRTC - WebSocket 48 kHz (p50) | bursts |"
    )
    print("|---:|---|---|---|---:|---:|---|")
    for n in sorted({n for _, n in latency}):
        rows = [latency[(kind, n)] for kind in LATENCY_KINDS]
        cells = [
            " / ".join(f"{percentile(row['samples'], q):.1f}" for q in (50, 90, 99, 100))
            for row in rows
        ]
        p50 = [percentile(row["samples"], 50) for row in rows]
        counted = ", ".join(
            f"{len(x['samples'])}" + (f" ({x['unmatched']} unmatched)" if x["unmatched"] else "")
            for x in rows
        )
        print(
            f"| {n} | {' | '.join(cells)} | +{p50[0] - p50[1]:.1f} | +{p50[0] - p50[2]:.1f} | "
            f"{counted} |"
        )
    if alone:
        cells = [f"{percentile(alone, q):.1f}" for q in (50, 90, 99, 100)]
        print(
            f"aiortc's receiver alone (a bare aiortc peer in this process reading the track, "
            f"no bridge): p50 {cells[0]}, p90 {cells[1]}, p99 {cells[2]}, max {cells[3]} ms "
            f"({len(alone)} bursts)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1,5,10", help="call counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--repeats", type=int, default=2, help="runs per count and kind")
    parser.add_argument(
        "--latency-calls", default="1,5", help="call counts of the latency part ('' to skip)"
    )
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="of the load generator"
    )
    parser.add_argument(
        "--source",
        default="head",
        help="the bridge measured: head (the checked-out commit's src/), worktree, or a commit",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.calls.split(",") if c]
    latency_counts = [int(c) for c in args.latency_calls.split(",") if c]
    runner: Callable[..., Any] = asyncio.run
    if args.loop == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    with tempfile.TemporaryDirectory() as logs:
        source = snapshot_source(args.source, Path(logs), sys.executable)
        SOURCE[:] = [str(Path(logs) / "src")]
        print(
            f"WebRTC calls and WebSocket sessions through one bridge process "
            f"({source['label']}, src digest {source['src_sha1']}); {os.cpu_count()} cores "
            f"shared with the load generator and the upstream; {args.seconds:g} s windows"
        )

        async def everything() -> tuple[Any, ...]:
            cpu = await cpu_part(counts, args.seconds, args.warmup, args.repeats, Path(logs))
            latency = await latency_part(latency_counts, args.latency_seconds, Path(logs))
            alone = await receiver_alone(args.latency_seconds) if latency_counts else []
            return cpu, latency, alone

        cpu, latency, alone = runner(everything())
    report(cpu, latency, alone, counts, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
