"""What resuming a session after its upstream drops costs: in time, from the drop to the first
answered turn after it, and in memory, what a remembered conversation costs per session.

- Drop to answer. Everything runs in this process, on one event loop: the simulator (the local
  upstream served over a socket, ``running_simulator``, pace 0: answers at once), an in-process
  bridge (``UPSTREAM=openai``) connected to it over loopback, and one WebSocket client
  (``?bridge_events=true``). Each run opens a session, builds a conversation of ``--items``
  items (``items/2`` typed turns answered in text: a user message and an answer each), then
  asks "What did I say first?" (a typed turn answered from the first message, so a replay that
  lost the conversation shows). In a drop run the simulator first drops the session
  (``POST /admin/drop``, close 1011, or, in alternate runs, an abrupt end: no close frame), and
  the turn is sent as soon as the drop's answer is in; timed from just before the drop request
  is sent to the answer's first text delta and its ``response.done``, with the ``downtime_ms``
  the bridge reports in ``bridge.session.resumed``. In each run the same turn is also timed
  without a drop (baseline: from sending the turn), on its own session, the two in alternating
  order. What resuming costs = drop run - baseline. Turns lost (no ``response.done`` within
  the timeout) are counted, not timed.
- Memory per session. :class:`ConversationMemory` fed the upstream events of a conversation as
  the upstream sends them (user text of about 60 characters, assistant transcripts of about
  120, a function call and its output every 10 items), each memory from its own freshly parsed
  JSON: its own accounting (``memory.bytes``, what a replay sends) and the Python heap it holds
  (tracemalloc, 200 memories held at once, / 200), for 100 and 500 items.
- The whole session, resumption on and off (optional, ``--sessions-memory N``, 0 to skip): N
  sessions through the bridge, each holding a conversation of ``--items`` items; the heap
  (tracemalloc) the N sessions hold, / N, with ``RESUME_ON_UPSTREAM_DROP`` true and false
  (``UPSTREAM_ROLLOVER_S=0`` in both). The simulator and the clients are in the same process
  and hold the same in both, so the difference is the bridge's.

Numbers only, no targets; bounded (timeouts everywhere), stops by itself.

    .venv/bin/python bench/resume.py [--runs 20] [--items 100] [--sessions-memory 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

from realtime_bridge.config import load_settings
from realtime_bridge.protocol.memory import ConversationMemory, MemoryLimits
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.server import running_simulator

TIMEOUT_S = 10.0
#: The measured turn: the simulator answers it with the conversation's first user message.
QUESTION = "What did I say first?"
DROP_KINDS = ("1011", "abrupt")
HEAP_MEMORIES = 200
#: Every 10 items of the memory benchmark's conversation, in order.
CYCLE = (
    "user",
    "assistant",
    "user",
    "assistant",
    "user",
    "call",
    "output",
    "assistant",
    "user",
    "assistant",
)
WORDS = (
    "the",
    "order",
    "ship",
    "Tuesday",
    "account",
    "billing",
    "address",
    "invoice",
    "delivery",
    "window",
    "please",
    "check",
    "refund",
    "status",
    "call",
    "back",
    "morning",
    "number",
    "change",
    "plan",
    "upgrade",
    "cancel",
    "support",
    "ticket",
    "password",
    "reset",
    "warehouse",
    "Lisbon",
    "Berlin",
    "payment",
    "card",
    "expired",
    "next",
    "week",
    "thanks",
)


# ---- a client ------------------------------------------------------------------------------


def sentence(rng: random.Random, chars: int) -> str:
    """Words until about ``chars`` characters, as a person would type or say them."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize() + "."


@dataclass
class Turn:
    """One typed turn as the client met it (perf_counter seconds; None: not seen)."""

    sent: float = 0.0
    first_delta: float | None = None
    done: float | None = None
    text: str = ""
    downtime_ms: float | None = None
    resumed: float | None = None
    resumed_items: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class Client:
    """A WebSocket client of the bridge that types turns and times their answers."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(event).decode())

    async def next(self, timeout: float = TIMEOUT_S) -> tuple[float, dict[str, Any]]:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        arrived = time.perf_counter()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"the bridge ended the session: {message}")
        event: dict[str, Any] = orjson.loads(message.data)
        return arrived, event

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            _, event = await self.next()
            if event["type"] == kind:
                return event

    async def say(self, text: str, timeout: float = TIMEOUT_S) -> Turn:
        """A typed turn answered in text, timed from its first frame leaving."""
        turn = Turn()
        content = [{"type": "input_text", "text": text}]
        item = {"type": "message", "role": "user", "content": content}
        turn.sent = time.perf_counter()
        await self.send({"type": "conversation.item.create", "item": item})
        await self.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        deadline = time.monotonic() + timeout
        while turn.done is None:
            try:
                arrived, event = await self.next(max(0.01, deadline - time.monotonic()))
            except (TimeoutError, ConnectionError):
                return turn  # lost: no response.done
            kind = event["type"]
            if kind == "response.output_text.delta":
                turn.first_delta = turn.first_delta or arrived
                turn.text += event["delta"]
            elif kind == "response.done":
                turn.done = arrived
            elif kind == "bridge.session.resumed":
                turn.downtime_ms = float(event["downtime_ms"])
                turn.resumed = arrived
                turn.resumed_items = int(event["items_replayed"])
            elif kind == "error":
                turn.errors.append(event)
        return turn


# ---- drop to answer ------------------------------------------------------------------------


@dataclass
class Sample:
    """One measured turn, ms. Baseline: from the turn's send; drop: from the drop request."""

    to_delta: float
    to_done: float
    turn_to_done: float  # from the turn's send, in both kinds
    drop_request: float = 0.0  # the drop's HTTP round trip
    downtime: float | None = None  # as the bridge reports it
    to_resumed: float | None = None  # bridge.session.resumed at the client


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    wrong: dict[str, int] = field(default_factory=dict)
    replayed: set[int] = field(default_factory=set)


@contextlib.asynccontextmanager
async def bridge_on_simulator(**env: str) -> AsyncIterator[tuple[BridgeServer, str]]:
    """An in-process bridge whose upstream is the simulator (pace 0); and the simulator's URL."""
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        settings = {
            "HOST": "127.0.0.1",
            "WS_PORT": "0",
            "HTTP_PORT": "0",
            "LOG_LEVEL": "warning",
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{port}/v1/realtime",
            "SHUTDOWN_GRACE_S": "0",
            **env,
        }
        server = BridgeServer(load_settings(settings))
        await server.start()
        try:
            yield server, f"http://127.0.0.1:{port}"
        finally:
            await server.shutdown()


async def conversation(client: Client, items: int, seed: int) -> str:
    """``items`` items: ``items/2`` typed turns answered in text; the first message."""
    rng = random.Random(seed)
    first = ""
    for index in range(items // 2):
        text = f"{index}: {sentence(rng, 56)}"
        first = first or text
        turn = await client.say(text)
        if turn.done is None or turn.errors:
            raise RuntimeError(f"a conversation turn failed: {turn.errors}")
    return first


async def one_run(
    server: BridgeServer,
    simulator: str,
    http: aiohttp.ClientSession,
    kind: str,
    items: int,
    seed: int,
    results: Results,
) -> None:
    """A session with its conversation, then the measured turn (after a drop unless baseline)."""
    url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime?bridge_events=true"
    async with http.ws_connect(url) as ws:
        client = Client(ws)
        created = await client.until("session.created")
        first = await conversation(client, items, seed)
        drop_request = 0.0
        params = {"code": kind, "session": created["session"]["id"]}  # the simulator's id
        started = time.perf_counter()
        if kind != "baseline":
            async with http.post(f"{simulator}/admin/drop", params=params) as response:
                dropped = (await response.json())["dropped"]
            drop_request = (time.perf_counter() - started) * 1000
            if dropped != 1:
                raise RuntimeError(f"expected to drop 1 session, dropped {dropped}")
        turn = await client.say(QUESTION)
        if kind == "baseline":
            started = turn.sent
    await server.registry.wait_for_count(0, TIMEOUT_S)
    if turn.done is None or turn.first_delta is None:
        results.lost[kind] = results.lost.get(kind, 0) + 1
        return
    if turn.errors or turn.text != f'You first said: "{first}"':
        results.wrong[kind] = results.wrong.get(kind, 0) + 1
    if turn.resumed_items is not None:
        results.replayed.add(turn.resumed_items)
    results.samples.setdefault(kind, []).append(
        Sample(
            to_delta=(turn.first_delta - started) * 1000,
            to_done=(turn.done - started) * 1000,
            turn_to_done=(turn.done - turn.sent) * 1000,
            drop_request=drop_request,
            downtime=turn.downtime_ms,
            to_resumed=None if turn.resumed is None else (turn.resumed - started) * 1000,
        )
    )


async def drop_to_answer(runs: int, items: int) -> Results:
    """``runs`` runs, each a drop (1011, abrupt alternating) and a baseline, order alternating;
    one unmeasured run of each kind first."""
    results = Results()
    env = {"RESUME_MEMORY_ITEMS": str(max(500, items + 10))}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        bridge_on_simulator(**env) as (server, simulator),
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        warm = Results()
        for kind in ("baseline", *DROP_KINDS):
            await one_run(server, simulator, http, kind, items, 0, warm)
        async with asyncio.timeout(60 + runs * (2 + items * 0.05)):
            for run in range(runs):
                kinds = ["baseline", DROP_KINDS[run % 2]]
                if run % 4 >= 2:
                    kinds.reverse()
                for kind in kinds:
                    await one_run(server, simulator, http, kind, items, run + 1, results)
    return results


# ---- memory per session --------------------------------------------------------------------


def upstream_events(items: int, seed: int) -> list[bytes]:
    """The memory events of an ``items``-item conversation as the upstream sends them (JSON):
    in every 10 items, 4 user messages, 4 spoken answers, a function call and its output."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    call_id = ""
    for index in range(items):
        item_id = f"item_{seed:04d}{index:05d}{rng.getrandbits(40):010x}"
        role = CYCLE[index % len(CYCLE)]
        if role == "user":
            done = {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_text", "text": sentence(rng, 58)}],
            }
            events.append({"type": "conversation.item.added", "item": done})
        elif role == "assistant":
            done = {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_audio", "transcript": sentence(rng, 118)}],
            }
            added = {**done, "status": "in_progress", "content": []}
            events.append({"type": "conversation.item.added", "item": added})
        elif role == "call":
            call_id = f"call_{rng.getrandbits(64):016x}"
            arguments = orjson.dumps({"order": rng.randrange(10**6), "city": rng.choice(WORDS)})
            done = {
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call",
                "status": "completed",
                "name": "lookup_order",
                "call_id": call_id,
                "arguments": arguments.decode(),
            }
            added = {**done, "status": "in_progress", "arguments": ""}
            events.append({"type": "conversation.item.added", "item": added})
        else:
            done = {
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call_output",
                "call_id": call_id,
                "output": orjson.dumps({"status": "shipped", "eta": sentence(rng, 40)}).decode(),
            }
            events.append({"type": "conversation.item.added", "item": done})
        events.append({"type": "conversation.item.done", "item": done})
    return [orjson.dumps(e) for e in events]


def fill(memory: ConversationMemory, events: list[bytes]) -> None:
    """Feed ``memory`` the events, each parsed afresh (as the bridge parses the upstream's)."""
    for raw in events:
        event = orjson.loads(raw)
        memory.upstream_event(event["type"], event)


def memory_cost(items: int) -> tuple[float, float, int]:
    """(memory.bytes, Python heap bytes per memory, items kept) for ``items`` items."""
    scripts = [upstream_events(items, seed) for seed in range(HEAP_MEMORIES)]
    limits = MemoryLimits(max_items=max(500, items))
    held: list[ConversationMemory] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for events in scripts:
            memory = ConversationMemory(limits)
            fill(memory, events)
            held.append(memory)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    accounted = float(np.median([m.bytes for m in held]))
    return accounted, (after - before) / len(held), held[0].items


async def session_heap(sessions: int, items: int, resume: bool) -> float:
    """Heap bytes per session held by ``sessions`` open sessions of ``items`` items each
    (the bridge, the simulator and the clients, all in this process)."""
    env = {
        "RESUME_ON_UPSTREAM_DROP": "true" if resume else "false",
        "UPSTREAM_ROLLOVER_S": "0",
        "RESUME_MEMORY_ITEMS": str(max(500, items + 10)),
        "MAX_SESSIONS": str(sessions + 10),
    }
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        bridge_on_simulator(**env) as (server, _simulator),
        aiohttp.ClientSession(timeout=timeout) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime"

        async def open_session(seed: int) -> None:
            ws = await stack.enter_async_context(http.ws_connect(url))
            client = Client(ws)
            await client.until("session.created")
            await conversation(client, items, seed)

        await open_session(10**6)  # warm: first-use allocations are not a session's
        async with asyncio.timeout(60 + sessions * items * 0.05):
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for seed in range(sessions):
                    await open_session(seed)
                await asyncio.sleep(0.1)
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
    return (after - before) / sessions


# ---- report --------------------------------------------------------------------------------


def p50_p90(values: list[float]) -> str:
    """The median and the 90th percentile, ms."""
    p50, p90 = np.percentile(values, [50, 90])
    return f"{p50:7.2f} {p90:7.2f}"


def report_drops(results: Results, runs: int, items: int, loop: str) -> None:
    print(
        f"Drop to answer: {items}-item conversations, {runs} runs (a drop and a baseline "
        f"each), simulator at pace 0 over loopback, {loop}. ms, p50 p90; drops timed from "
        "the drop request, the baseline from its turn"
    )
    print(
        f"  {'kind':8} {'n':>3} | {'drop request':>12} | {'downtime (bridge)':>17} | "
        f"{'bridge.resumed':>15} | {'1st text delta':>16} | {'response.done':>16} | "
        f"{'turn send→done':>16}"
    )

    def column(values: list[float | None], width: int) -> str:
        known = [v for v in values if v is not None]
        return f"{p50_p90(known) if known else '-':>{width}}"

    for kind in ("baseline", *DROP_KINDS):
        rows = results.samples.get(kind, [])
        if not rows:
            print(f"  {kind:8} {0:3d} | (none answered)")
            continue
        drop = f"{np.median([r.drop_request for r in rows]):12.2f}" if kind != "baseline" else ""
        print(
            f"  {kind:8} {len(rows):3d} | {drop:>12} | "
            f"{column([r.downtime for r in rows], 17)} | "
            f"{column([r.to_resumed for r in rows], 15)} | "
            f"{column([r.to_delta for r in rows], 16)} | "
            f"{column([r.to_done for r in rows], 16)} | "
            f"{column([r.turn_to_done for r in rows], 16)}"
        )
    base = results.samples.get("baseline", [])
    for kind in DROP_KINDS:
        rows = results.samples.get(kind, [])
        if base and rows:
            extra = np.median([r.to_done for r in rows]) - np.median([r.to_done for r in base])
            print(f"  resuming costs ({kind}): +{extra:.2f} ms to response.done (median - median)")
    lost = ", ".join(f"{k} {v}" for k, v in sorted(results.lost.items())) or "none"
    wrong = ", ".join(f"{k} {v}" for k, v in sorted(results.wrong.items())) or "none"
    print(f"  turns lost: {lost}; answers without the first message: {wrong}")
    print(f"  items replayed: {sorted(results.replayed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs (a drop and a baseline each)")
    parser.add_argument("--items", type=int, default=100, help="items before the drop")
    parser.add_argument(
        "--sessions-memory", type=int, default=20, help="sessions per mode in the heap (0: skip)"
    )
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="as the bridge runs"
    )
    args = parser.parse_args()
    runner: Callable[..., Any] = asyncio.run
    loop = args.loop
    if loop == "uvloop":
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            loop = "asyncio (no uvloop)"

    report_drops(runner(drop_to_answer(args.runs, args.items)), args.runs, args.items, loop)

    print(
        f"\nConversationMemory per session: memory.bytes and the Python heap "
        f"(tracemalloc, {HEAP_MEMORIES} memories held / {HEAP_MEMORIES})"
    )
    print("  items kept | memory.bytes | heap bytes | heap / memory.bytes")
    for items in (100, 500):
        accounted, heap, kept = memory_cost(items)
        print(f"  {kept:10d} | {accounted:12.0f} | {heap:10.0f} | {heap / accounted:19.2f}")

    if args.sessions_memory > 0:
        n = args.sessions_memory
        print(
            f"\nWhole sessions: heap per session, {n} sessions of {args.items} items each "
            "(bridge + simulator + client in one process; the difference is the bridge's)"
        )
        heaps: dict[bool, list[float]] = {}
        for resume in (True, False, True, False):
            heap = runner(session_heap(n, args.items, resume))
            heaps.setdefault(resume, []).append(heap)
            print(f"  RESUME_ON_UPSTREAM_DROP={str(resume).lower():5} {heap / 1024:8.1f} KiB")
        on, off = np.median(heaps[True]), np.median(heaps[False])
        print(f"  resumption on - off: {(on - off) / 1024:+.1f} KiB per session (medians)")


if __name__ == "__main__":
    main()
