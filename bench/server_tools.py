"""What a server-side tool call adds: the time from the upstream's
``response.function_call_arguments.done`` to the bridge's ``function_call_output`` item and its
follow-up ``response.create``, less the tool's own latency. Target: < 2 ms over the tool's own.

Everything runs in this process, on one event loop: an in-process bridge (``UPSTREAM=openai``)
whose policy file declares four tools, a scripted upstream (aiohttp) the bridge connects to, a
webhook server (aiohttp) and one WebSocket client per session, connected through the bridge.
The tools: a Python ``async`` function of this module and a webhook, each answering at once,
and the same two taking a fixed 5 ms (``asyncio.sleep``), whose added time should be the same.
For each call the upstream sends the whole function-call sequence of one response (through
``response.done``), notes when ``arguments.done`` left and when the two frames arrived; the kinds
take turns so the machine's drift cancels out. A tool's own latency is measured the same way
the bridge meets it, interleaved with the calls: the Python function awaited directly, the
webhook POSTed directly (the bridge's body, a kept-alive connection). Added time = median round
trip - median own latency. The client, upstream and webhook share the bridge's loop, so the
figures are an upper bound of what the bridge alone adds.

    .venv/bin/python bench/server_tools.py [--calls 200] [--sessions 1] [--loop asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from aiohttp import web
from benchutil import LoopbackUpstream

from realtime_bridge.config import load_settings
from realtime_bridge.server.app import BridgeServer

TARGET_MS = 2.0
TOOL_SLEEP_S = 0.005
TIMEOUT_S = 5.0
ARGUMENTS = '{"q":"x"}'
ToolFunction = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# ---- the tools -----------------------------------------------------------------------------


async def instant_tool(arguments: dict[str, Any]) -> dict[str, Any]:
    """The Python tool that answers at once."""
    return {"answer": arguments.get("q")}


async def slow_tool(arguments: dict[str, Any]) -> dict[str, Any]:
    """The Python tool that takes :data:`TOOL_SLEEP_S` of its own."""
    await asyncio.sleep(TOOL_SLEEP_S)
    return {"answer": arguments.get("q")}


@dataclass(frozen=True)
class Kind:
    """One tool of the policy file: a Python function or a path of the webhook server."""

    name: str
    label: str
    function: ToolFunction | None = None
    path: str | None = None


KINDS = (
    Kind("python_instant", "python, instant", function=instant_tool),
    Kind("webhook_instant", "webhook, instant", path="/instant"),
    Kind("python_5ms", "python, 5 ms", function=slow_tool),
    Kind("webhook_5ms", "webhook, 5 ms", path="/slow"),
)


def write_policy(directory: Path, webhook: str) -> Path:
    """The policy file: every kind as a ``[[default.tools]]`` (Python ones by this module's
    name, which is ``__main__`` when run as a script)."""
    tables = []
    for kind in KINDS:
        if kind.function is not None:
            target = f'python = "{__name__}:{kind.function.__name__}"'
        else:
            target = f'webhook = "{webhook}{kind.path}"'
        tables.append(
            f'[[default.tools]]\nname = "{kind.name}"\ndescription = "{kind.label}"\n'
            f"{target}\ntimeout_s = {TIMEOUT_S}\n"
        )
    path = directory / "policy.toml"
    path.write_text("\n".join(tables))
    return path


@contextlib.asynccontextmanager
async def webhook_server() -> AsyncIterator[str]:
    """A loopback webhook server: ``/instant`` answers at once, ``/slow`` after 5 ms."""

    async def instant(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"answer": body["arguments"].get("q")})

    async def slow(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(TOOL_SLEEP_S)
        return web.json_response({"answer": body["arguments"].get("q")})

    app = web.Application()
    app.router.add_post("/instant", instant)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# ---- the scripted upstream -----------------------------------------------------------------


@dataclass
class UpstreamLink:
    """One connection of the bridge to the scripted upstream; frames with their arrival time."""

    ws: web.WebSocketResponse
    received: asyncio.Queue[tuple[float, str]] = field(default_factory=asyncio.Queue)

    async def send(self, event: dict[str, Any]) -> None:
        # Not under wait_for: on Python 3.11 it makes a task, and the loop would run (the
        # bridge read the frame) before the time of sending is noted. An uncompressed frame
        # is written at once; the whole run is under a timeout.
        await self.ws.send_str(orjson.dumps(event).decode())

    async def next(self) -> tuple[float, dict[str, Any]]:
        arrived, text = await asyncio.wait_for(self.received.get(), TIMEOUT_S)
        event: dict[str, Any] = orjson.loads(text)
        return arrived, event


class ScriptedUpstream(LoopbackUpstream):
    """A Realtime-API stand-in on loopback: it records, the bench scripts what it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.connected: asyncio.Queue[UpstreamLink] = asyncio.Queue()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=0)
        await ws.prepare(request)
        link = UpstreamLink(ws)
        self.connected.put_nowait(link)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                link.received.put_nowait((time.perf_counter(), message.data))
        return ws


def call_events(kind: Kind, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One response calling ``kind``'s tool, as the API sends it: the events through
    ``arguments.done``, and the rest through ``response.done``."""
    response_id, call_id, item_id = f"resp_{n}", f"call_{n}", f"item_{n}"
    item = {
        "id": item_id,
        "type": "function_call",
        "status": "completed",
        "name": kind.name,
        "call_id": call_id,
        "arguments": ARGUMENTS,
    }
    common = {"response_id": response_id, "item_id": item_id}
    until_done: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}},
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": 0,
            "item": {**item, "status": "in_progress", "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", **common, "delta": ARGUMENTS},
        {
            "type": "response.function_call_arguments.done",
            **common,
            "call_id": call_id,
            "name": kind.name,
            "arguments": ARGUMENTS,
        },
    ]
    rest: list[dict[str, Any]] = [
        {"type": "response.output_item.done", "response_id": response_id, "item": item},
        {
            "type": "response.done",
            "response": {"id": response_id, "status": "completed", "output": [item]},
        },
    ]
    return until_done, rest


# ---- one session ---------------------------------------------------------------------------


@dataclass
class Samples:
    """Milliseconds per call: to the output item, to ``response.create``, the tool's own."""

    output: list[float] = field(default_factory=list)
    create: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)


async def open_session(
    http: aiohttp.ClientSession, url: str, upstream: ScriptedUpstream
) -> tuple[aiohttp.ClientWebSocketResponse, UpstreamLink]:
    """A client connected through the bridge, past the bridge's start-up ``session.update``."""
    ws = await asyncio.wait_for(http.ws_connect(url), TIMEOUT_S)
    link = await asyncio.wait_for(upstream.connected.get(), TIMEOUT_S)
    await link.send({"type": "session.created", "session": {"type": "realtime"}})
    _, update = await link.next()
    names = [t.get("name") for t in update.get("session", {}).get("tools", [])]
    if update["type"] != "session.update" or names != [k.name for k in KINDS]:
        raise RuntimeError(f"expected the bridge's session.update with the tools, got {update}")
    await link.send({"type": "session.updated", "session": update["session"]})
    created = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
    if created.type is not aiohttp.WSMsgType.TEXT or '"session.created"' not in created.data:
        raise RuntimeError(f"expected session.created at the client, got {created}")
    return ws, link


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read what the client is sent (each call's response.created/done) until it closes."""
    async for _ in ws:
        pass


async def round_trip(link: UpstreamLink, kind: Kind, n: int) -> tuple[float, float]:
    """One call of ``kind``: ms from ``arguments.done`` sent to the output item and to
    ``response.create`` received by the upstream."""
    until_done, rest = call_events(kind, n)
    for event in until_done:
        await link.send(event)
    sent = time.perf_counter()
    for event in rest:
        await link.send(event)
    output_at, output = await link.next()
    item = output.get("item", {})
    if output["type"] != "conversation.item.create" or item.get("call_id") != f"call_{n}":
        raise RuntimeError(f"expected the output of call_{n}, got {output}")
    if "error" in orjson.loads(item["output"]):
        raise RuntimeError(f"the tool {kind.name} failed: {item['output']}")
    create_at, create = await link.next()
    if create["type"] != "response.create":
        raise RuntimeError(f"expected response.create, got {create}")
    return (output_at - sent) * 1000, (create_at - sent) * 1000


async def own_latency(kind: Kind, http: aiohttp.ClientSession, webhook: str) -> float:
    """ms the tool takes on its own, met as the bridge meets it."""
    if kind.function is not None:
        arguments = orjson.loads(ARGUMENTS)
        started = time.perf_counter()
        await kind.function(arguments)
        return (time.perf_counter() - started) * 1000
    body = orjson.dumps(
        {"name": kind.name, "arguments": orjson.loads(ARGUMENTS), "call_id": "c", "session_id": "s"}
    )
    headers = {"Content-Type": "application/json", "User-Agent": "realtime-bridge"}
    started = time.perf_counter()
    async with http.post(f"{webhook}{kind.path}", data=body, headers=headers) as response:
        response.raise_for_status()
        await response.read()
    return (time.perf_counter() - started) * 1000


async def drive(
    link: UpstreamLink, direct: aiohttp.ClientSession, webhook: str, calls: int, warmup: int
) -> dict[str, Samples]:
    """``warmup`` + ``calls`` calls of every kind on one session, the kinds taking turns (in a
    rotating order), each call followed by one direct measurement of the tool's own latency."""
    samples = {kind.name: Samples() for kind in KINDS}
    n = 0
    for i in range(warmup + calls):
        for kind in KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)]:
            n += 1
            to_output, to_create = await round_trip(link, kind, n)
            own = await own_latency(kind, direct, webhook)
            if i >= warmup:
                samples[kind.name].output.append(to_output)
                samples[kind.name].create.append(to_create)
                samples[kind.name].own.append(own)
    return samples


async def measure(calls: int, sessions: int, warmup: int) -> dict[str, Samples]:
    """Start everything, run the calls of every session at once, stop everything."""
    async with contextlib.AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        webhook = await stack.enter_async_context(webhook_server())
        upstream = ScriptedUpstream()
        await upstream.start()
        stack.push_async_callback(upstream.stop)
        env = {
            "HOST": "127.0.0.1",
            "WS_PORT": "0",
            "HTTP_PORT": "0",
            "LOG_LEVEL": "warning",
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_REALTIME_URL": upstream.url,
            "BRIDGE_POLICY_FILE": str(write_policy(directory, webhook)),
            "SHUTDOWN_GRACE_S": "0",
        }
        server = BridgeServer(load_settings(env))
        await server.start()
        stack.push_async_callback(server.shutdown)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        direct = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime"
        links = []
        for _ in range(sessions):  # one at a time: the upstream pairs connections in order
            ws, link = await open_session(http, url, upstream)
            stack.push_async_callback(ws.close)
            reader = asyncio.create_task(drain(ws))
            stack.callback(reader.cancel)
            links.append(link)
        async with asyncio.timeout(60 + 0.1 * (warmup + calls) * len(KINDS) * sessions):
            per_session = await asyncio.gather(
                *(drive(link, direct, webhook, calls, warmup) for link in links)
            )
    merged = {kind.name: Samples() for kind in KINDS}
    for result in per_session:
        for name, samples in result.items():
            merged[name].output += samples.output
            merged[name].create += samples.create
            merged[name].own += samples.own
    return merged


# ---- report --------------------------------------------------------------------------------


def quantiles(values: list[float]) -> tuple[float, float, float]:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return float(p50), float(p90), float(p99)


def report(results: dict[str, Samples], calls: int, sessions: int, loop: str) -> None:
    print(
        f"Server-side tool round trip, {calls} calls per tool x {sessions} session(s), "
        f"{loop} (ms; target: adds < {TARGET_MS:g} ms over the tool's own latency)"
    )
    print(
        "  tool                 own p50 | to output p50    p90    p99 | to response.create "
        "p50    p90    p99 | added: output  create  target"
    )
    added: dict[str, float] = {}
    for kind in KINDS:
        s = results[kind.name]
        own = statistics.median(s.own)
        out50, out90, out99 = quantiles(s.output)
        cre50, cre90, cre99 = quantiles(s.create)
        added[kind.name] = cre50 - own
        met = "met" if added[kind.name] < TARGET_MS else "NOT met"
        print(
            f"  {kind.label:18} {own:9.3f} | {out50:13.3f} {out90:6.3f} {out99:6.3f} | "
            f"{cre50:22.3f} {cre90:6.3f} {cre99:6.3f} | {out50 - own:13.3f} "
            f"{added[kind.name]:7.3f}  {met}"
        )
    print(
        "  added by the bridge (to response.create), 5 ms tool vs instant one: "
        f"python {added['python_5ms']:.3f} vs {added['python_instant']:.3f} ms, "
        f"webhook {added['webhook_5ms']:.3f} vs {added['webhook_instant']:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="measured calls per tool")
    parser.add_argument("--sessions", type=int, default=1, help="sessions calling at once")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls per tool first")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="as the bridge runs"
    )
    args = parser.parse_args()
    runner: Callable[..., dict[str, Samples]] = asyncio.run
    loop = args.loop
    if loop == "uvloop":
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            loop = "asyncio (no uvloop)"
    results = runner(measure(args.calls, args.sessions, args.warmup))
    report(results, args.calls, args.sessions, loop)


if __name__ == "__main__":
    main()
