"""Shared fixtures for the local upstream tests.

* ``validate_event``: checks one server event text against the official SDK's GA server-event
  union (tagged by ``type``, pydantic strict mode, and no field the SDK does not know, except the
  session fields the API sends but the SDK's request model lacks).
* ``open_client``: a factory of clients for one test suite run twice, against the in-process
  adapter and against the standalone simulator over a real socket. Every event a client receives
  is validated.
* audio helpers: synthetic bursts and the real recordings in ../shared/audio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType
from typing import Annotated, Any, Protocol, Union, get_args

import aiohttp
import numpy as np
import orjson
import pytest
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter

from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest
from realtime_bridge.upstream.local import synth
from realtime_bridge.upstream.local.adapter import LocalConnection, LocalUpstream
from realtime_bridge.upstream.local.core import RealtimeCore
from realtime_bridge.upstream.local.server import running_simulator
from tests import recordings
from tests.schema import validate_strict

EVENT_TIMEOUT = 5.0

_MEMBERS = get_args(get_args(RealtimeServerEvent)[0])
_SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(
    Annotated[Union[_MEMBERS], Field(discriminator="type")]  # noqa: UP007
)
# Fields the API sends that the SDK's models do not declare (session.created/updated carry the
# session as a RealtimeSessionCreateRequest, which lacks the response-only fields).
ALLOWED_EXTRA = {"session.id", "session.object", "session.expires_at"}


def check_server_event(text: str) -> BaseModel:
    """Validate one server event; raises on a wrong type, field type or unknown field."""
    model = validate_strict(_SERVER_EVENT, text, ALLOWED_EXTRA)
    assert isinstance(model, BaseModel)
    return model


@pytest.fixture
def validate_event() -> Callable[[str], BaseModel]:
    return check_server_event


# -- audio --------------------------------------------------------------------------------------


def read_wav(name: str) -> tuple[bytes, int]:
    """Raw payload and rate of a recording (PCM16 or G.711 bytes as stored)."""
    wav = recordings.read_wav(name)
    return wav.data, wav.rate


def read_wav_g711(name: str) -> bytes:
    """The G.711 payload of a WAV file."""
    return recordings.read_wav(name).data


def pcm16(samples: np.ndarray[Any, Any]) -> bytes:
    return np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes()


def silence(ms: float, rate: int = 24000) -> np.ndarray[Any, Any]:
    return np.zeros(round(rate * ms / 1000), dtype=np.float32)


def speech(text: str, rate: int = 24000, gain: float = 1.0) -> np.ndarray[Any, Any]:
    """Speech-like bursts from the local synthesiser (about -20 dBFS while voiced)."""
    return synth.synthesize(text, rate, voice="echo") * gain


def noise(ms: float, dbfs: float, rate: int = 24000, seed: int = 1) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(rate * ms / 1000)) * 10 ** (dbfs / 20)).astype(np.float32)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- clients ------------------------------------------------------------------------------------


class Client(Protocol):
    seen: list[dict[str, Any]]

    async def send(self, event: dict[str, Any]) -> None: ...

    async def next(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class _BaseClient:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def _accept(self, text: str) -> dict[str, Any]:
        check_server_event(text)
        event: dict[str, Any] = orjson.loads(text)
        self.seen.append(event)
        return event


class QueueSink:
    """An ``UpstreamSink`` for tests: records every call and queues it for ``await next()``."""

    def __init__(self) -> None:
        self.calls: list[str | UpstreamClosed] = []
        #: Backpressure signals, in order (the local upstream's like a socket's).
        self.writable: list[bool] = []
        self._queue: asyncio.Queue[str | UpstreamClosed] = asyncio.Queue()

    def upstream_text(self, text: str) -> None:
        self.calls.append(text)
        self._queue.put_nowait(text)

    def upstream_closed(self, closed: UpstreamClosed) -> None:
        self.calls.append(closed)
        self._queue.put_nowait(closed)

    def upstream_writable(self, writable: bool) -> None:
        self.writable.append(writable)

    async def next(self, timeout: float = EVENT_TIMEOUT) -> str | UpstreamClosed:
        """The next call not yet taken (text or close), waiting at most ``timeout``."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def next_text(self, timeout: float = EVENT_TIMEOUT) -> str:
        item = await self.next(timeout)
        assert isinstance(item, str), item
        return item

    def drain(self) -> None:
        """Drop what is queued (it stays in ``calls``): ``next`` then waits for a new call."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def types(self) -> list[str]:
        """The type of every event delivered so far (a close shows as ``closed <code>``)."""
        return [
            f"closed {c.code}" if isinstance(c, UpstreamClosed) else orjson.loads(c)["type"]
            for c in self.calls
        ]


async def connect_local(
    pace: float = 0.0, model: str = "gpt-realtime", attach: bool = True
) -> tuple[LocalConnection, QueueSink]:
    """An in-process session and its queue sink (attached unless ``attach=False``)."""
    conn = await LocalUpstream(pace).connect(UpstreamRequest("test", model))
    sink = QueueSink()
    if attach:
        conn.attach(sink)
    return conn, sink


class InProcessClient(_BaseClient):
    def __init__(self, conn: LocalConnection, sink: QueueSink) -> None:
        super().__init__()
        self.conn = conn
        self.sink = sink

    async def send(self, event: dict[str, Any]) -> None:
        self.conn.send(orjson.dumps(event).decode())

    async def next(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        return self._accept(await self.sink.next_text(timeout))

    async def close(self) -> None:
        await self.conn.close()


class SocketClient(_BaseClient):
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        super().__init__()
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(event).decode())

    async def next(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return self._accept(msg.data)

    async def close(self) -> None:
        await self.ws.close()


async def wait_for(
    client: Client, event_type: str, timeout: float = EVENT_TIMEOUT
) -> dict[str, Any]:
    """Read events until one of ``event_type`` arrives (all are kept in ``client.seen``)."""

    async def loop() -> dict[str, Any]:
        while True:
            event = await client.next(timeout)
            if event["type"] == event_type:
                return event

    return await asyncio.wait_for(loop(), timeout)


async def collect_until(
    client: Client, event_type: str, timeout: float = EVENT_TIMEOUT
) -> list[dict[str, Any]]:
    """The events up to and including the first ``event_type``."""
    start = len(client.seen)
    await wait_for(client, event_type, timeout)
    return client.seen[start:]


OpenClient = Callable[..., Awaitable[Client]]


@pytest.fixture(params=["in_process", "socket"])
async def open_client(request: pytest.FixtureRequest) -> AsyncIterator[OpenClient]:
    """``await open_client(pace=0.0, model=...)`` → a connected client of the chosen transport."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        ports: dict[float, int] = {}
        clients: list[Client] = []

        async def open_(pace: float = 0.0, model: str = "gpt-realtime") -> Client:
            client: Client
            if request.param == "in_process":
                client = InProcessClient(*await connect_local(pace, model))
            else:
                if pace not in ports:
                    ports[pace] = await stack.enter_async_context(
                        running_simulator("127.0.0.1", 0, pace)
                    )
                ws = await http.ws_connect(
                    f"http://127.0.0.1:{ports[pace]}/v1/realtime?model={model}"
                )
                client = SocketClient(ws)
            clients.append(client)
            return client

        try:
            yield open_
        finally:
            for client in clients:
                await client.close()


@pytest.fixture
async def simulator_port() -> AsyncIterator[int]:
    """The standalone simulator with audio sent at once (pace 0)."""
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        yield port


@pytest.fixture
async def realtime_simulator_port() -> AsyncIterator[int]:
    """The standalone simulator pacing audio at real time (for barge-in)."""
    async with running_simulator("127.0.0.1", 0, 1.0) as port:
        yield port


@pytest.fixture
def h() -> ModuleType:
    """These helpers, reachable from tests without importing a module named ``conftest``."""
    return sys.modules[__name__]


class CoreDriver:
    """Drives a sans-I/O core with a hand-moved clock; validates every event it emits."""

    def __init__(self, pace: float = 0.0, **kwargs: Any) -> None:
        self.core = RealtimeCore(pace=pace, created_at=1_700_000_000, **kwargs)
        self.now = 100.0
        self.core.start(self.now)
        self.log: list[dict[str, Any]] = []
        (self.created,) = self.poll()

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one client event; returns the events due now."""
        self.core.receive(orjson.dumps(event).decode(), self.now)
        return self.poll()

    def poll(self) -> list[dict[str, Any]]:
        """Everything due by now: polled again while the core says more is due (it runs a
        bounded number of response steps per poll, as the adapter lets other work run)."""
        out = []
        while True:
            for item in self.core.poll(self.now):
                check_server_event(item.text)
                assert item.due <= self.now
                out.append(orjson.loads(item.text))
            due = self.core.next_deadline()
            if due is None or due > self.now:
                break
        self.log.extend(out)
        return out

    def advance(self, seconds: float) -> list[dict[str, Any]]:
        self.now += seconds
        return self.poll()

    def run_until_idle(self, limit: float = 120.0) -> list[dict[str, Any]]:
        """Jump from deadline to deadline until nothing more is scheduled."""
        out = self.poll()
        while (deadline := self.core.next_deadline()) is not None:
            assert deadline - self.now < limit
            self.now = max(self.now, deadline)
            out += self.poll()
        return out

    def append(self, audio: bytes, chunk: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in chunks(audio, chunk or len(audio) or 1):
            out += self.send({"type": "input_audio_buffer.append", "audio": b64(part)})
        return out

    def update(self, **session: Any) -> list[dict[str, Any]]:
        return self.send({"type": "session.update", "session": {"type": "realtime", **session}})


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def turn_detection(**fields: Any) -> dict[str, Any]:
    return {"input": {"turn_detection": {"type": "server_vad", **fields}}}
