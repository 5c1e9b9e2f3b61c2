"""Sessions that survive the upstream: the simulator (the local upstream over a real socket) is
dropped on demand, and the conversation goes on with its memory."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream import websocket as upstream_socket
from realtime_bridge.upstream.local.server import running_simulator
from tests import server_tool_impls
from tests.conftest import running_bridge, ws_url
from tests.fakes import receive_json, running_fake_upstream
from tests.recordings import read_wav
from tests.test_beta_e2e import BetaEvents
from tests.test_twilio import phone, responses_done

TIMEOUT = 10.0


@asynccontextmanager
async def bridge_on_simulator(**env: str) -> AsyncIterator[tuple[BridgeServer, str]]:
    """A bridge whose upstream is the simulator; yields it and the simulator's base URL."""
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        async with running_bridge(
            UPSTREAM="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_REALTIME_URL=f"ws://127.0.0.1:{port}/v1/realtime",
            **env,
        ) as bridge:
            yield bridge, f"http://127.0.0.1:{port}"


async def drop(http: aiohttp.ClientSession, simulator: str, code: str = "1011") -> None:
    async with http.post(f"{simulator}/admin/drop", params={"code": code}) as response:
        assert (await response.json())["dropped"] >= 1


class Client:
    """A plain WebSocket client that keeps every event it gets."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(event).decode())

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            event = orjson.loads(message.data)
            self.seen.append(event)
            if event["type"] == kind:
                return event

    async def say(self, text: str) -> str:
        """A typed turn; the answer's text."""
        start = len(self.seen)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self.send({"type": "conversation.item.create", "item": item})
        await self.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        await self.until("response.done")
        return "".join(
            e["delta"] for e in self.seen[start:] if e["type"] == "response.output_text.delta"
        )


async def test_a_drop_between_turns_is_invisible_and_the_conversation_remembered(
    http: aiohttp.ClientSession,
) -> None:
    async with (
        bridge_on_simulator() as (bridge, simulator),
        http.ws_connect(ws_url(bridge, query="?bridge_events=true")) as ws,
    ):
        client = Client(ws)
        await client.until("session.created")
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind."}}
        )
        await client.until("session.updated")
        assert "apples" in await client.say("I like apples")
        await client.say("The sky is blue")
        await drop(http, simulator)
        resumed = await client.until("bridge.session.resumed")
        assert resumed["reason"] == "upstream_dropped"
        assert resumed["items_replayed"] == 4  # two user messages, two answers
        answer = await client.say("What did I say first?")
        # Ids the client holds name the same items on the new connection.
        first_id = next(
            e["item"]["id"]
            for e in client.seen
            if e["type"] == "conversation.item.added" and e["item"].get("role") == "user"
        )
        await client.send({"type": "conversation.item.retrieve", "item_id": first_id})
        retrieved = await client.until("conversation.item.retrieved")
        await client.send({"type": "conversation.item.delete", "item_id": first_id})
        deleted = await client.until("conversation.item.deleted")
        types = [e["type"] for e in client.seen]
        async with http.get(f"http://127.0.0.1:{bridge.http_port}/metrics") as response:
            metrics = await response.text()
    assert answer == 'You first said: "I like apples"'
    assert retrieved["item"]["content"] == [{"type": "input_text", "text": "I like apples"}]
    assert deleted["item_id"] == first_id
    assert types.count("session.created") == 1  # one session, as the client sees it
    assert types.count("session.updated") == 1
    assert "error" not in types
    assert (
        'realtime_bridge_upstream_resumptions_total{outcome="resumed",reason="upstream_dropped"}'
        in metrics
    )


async def test_a_drop_during_a_response_reports_it_cancelled_and_goes_on(
    http: aiohttp.ClientSession,
) -> None:
    async with running_simulator("127.0.0.1", 0, 1.0) as port:  # paced: the answer takes time
        async with (
            running_bridge(
                UPSTREAM="openai",
                OPENAI_API_KEY="sk-test",
                OPENAI_REALTIME_URL=f"ws://127.0.0.1:{port}/v1/realtime",
            ) as bridge,
            http.ws_connect(ws_url(bridge)) as ws,
        ):
            client = Client(ws)
            await client.until("session.created")
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Tell me about bridges"}],
            }
            await client.send({"type": "conversation.item.create", "item": item})
            await client.send({"type": "response.create"})  # audio, at real time
            await client.until("response.output_audio.delta")
            await drop(http, f"http://127.0.0.1:{port}", code="abrupt")
            done = await client.until("response.done")
            assert done["response"]["status"] == "cancelled"
            answer = await client.say("What did I say first?")
    assert answer == 'You first said: "Tell me about bridges"'
    assert not [e for e in client.seen if e["type"] == "error"]


@pytest.mark.parametrize("code", [3000, 4000, 1008])
async def test_the_clients_own_faults_are_not_retried(
    code: int, http: aiohttp.ClientSession
) -> None:
    async with (
        running_fake_upstream() as fake,
        running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY="sk-test", OPENAI_REALTIME_URL=fake.url
        ) as bridge,
        http.ws_connect(ws_url(bridge)) as ws,
    ):
        upstream = await fake.next_session()
        await upstream.ws.close(code=code)
        while (message := await asyncio.wait_for(ws.receive(), TIMEOUT)).type is (
            aiohttp.WSMsgType.TEXT
        ):
            pass
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert fake.connection_attempts == 1


async def test_an_upstream_gone_for_good_ends_the_session_after_the_deadline(
    http: aiohttp.ClientSession,
) -> None:
    async with running_fake_upstream() as fake:
        async with (
            running_bridge(
                UPSTREAM="openai",
                OPENAI_API_KEY="sk-test",
                OPENAI_REALTIME_URL=fake.url,
                RESUME_DEADLINE_S="1",
            ) as bridge,
            http.ws_connect(ws_url(bridge)) as ws,
        ):
            await fake.next_session()
            await fake.stop()  # its sessions end (1001) and nothing listens there any more
            event = await receive_json(ws, timeout=TIMEOUT)
            assert event["error"]["code"] == "upstream_unavailable"
            assert (await asyncio.wait_for(ws.receive(), TIMEOUT)).data == 1014


async def test_rollover_at_a_quiet_moment_keeps_a_long_conversation(
    http: aiohttp.ClientSession,
) -> None:
    """With a short rollover interval, a long scripted conversation moves to fresh upstream
    connections between its turns and still remembers its start."""
    async with (
        bridge_on_simulator(UPSTREAM_ROLLOVER_S="0.2", RESUME_MEMORY_ITEMS="5000") as (
            bridge,
            _simulator,
        ),
        http.ws_connect(ws_url(bridge, query="?bridge_events=true")) as ws,
    ):
        client = Client(ws)
        await client.until("session.created")
        rollovers = 0
        turn = 0
        while rollovers < 2:  # two moves, each waiting for the client to be quiet a second
            await client.say(f"message number {turn}")
            await client.say(f"message number {turn + 1}")
            turn += 2
            resumed = await client.until("bridge.session.resumed")
            assert resumed["reason"] == "rollover"
            rollovers += 1
        answer = await client.say("What did I say first?")
    assert answer == 'You first said: "message number 0"'
    assert not [e for e in client.seen if e["type"] == "error"]
    assert [e["type"] for e in client.seen].count("session.created") == 1


async def test_a_beta_client_resumes_too(http: aiohttp.ClientSession) -> None:
    async with bridge_on_simulator() as (bridge, simulator):
        client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{bridge.ws_port}/v1")
        async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
            events = BetaEvents(conn.recv_bytes, ga_session_created=True)
            await events.until("session.created")
            await conn.session.update(session={"modalities": ["text"]})
            await events.until("session.updated")
            for text in ("I like pears", "What did I say first?"):
                await conn.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": text}],
                    }
                )
                await conn.response.create()
                start = len(events.seen)
                await events.until("response.done")
                if text == "I like pears":
                    await drop(http, simulator, code="1012")
        await client.close()
    answer = "".join(e["delta"] for e in events.seen[start:] if e["type"] == "response.text.delta")
    assert answer == 'You first said: "I like pears"'
    assert "error" not in events.types()


async def test_a_drop_during_a_server_tool_call_delivers_its_output_after(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The upstream drops while the bridge's own tool runs: the call's item is replayed, and
    the output (and the follow-up) reach the fresh connection once the tool returns."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[[default.tools]]\nname = "blocking_tool"\ndescription = "Holds its thread."\n'
        'python = "tests.server_tool_impls:blocking_tool"\n'
    )
    server_tool_impls.STARTED.clear()
    server_tool_impls.RELEASE.clear()
    async with (
        bridge_on_simulator(BRIDGE_POLICY_FILE=str(path)) as (bridge, simulator),
        http.ws_connect(ws_url(bridge, query="?bridge_events=true")) as ws,
    ):
        client = Client(ws)
        await client.until("session.created")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "use blocking_tool now"}],
        }
        await client.send({"type": "conversation.item.create", "item": item})
        await client.send({"type": "response.create"})
        await client.until("response.done")  # the response that called the tool
        assert await asyncio.to_thread(server_tool_impls.STARTED.wait, TIMEOUT)
        await drop(http, simulator)
        await client.until("bridge.session.resumed")  # the tool is still running
        server_tool_impls.RELEASE.set()
        followed = await client.until("response.done")
    text = "".join(
        e.get("delta", "")
        for e in client.seen
        if e["type"] == "response.output_audio_transcript.delta"
    )
    assert followed["response"]["status"] == "completed"
    assert "released" in text
    assert not [e for e in client.seen if e["type"] == "error"]


async def test_a_phone_call_goes_on_after_a_drop() -> None:
    """A Twilio call whose upstream drops between two answers: the caller is answered again."""
    recording = read_wav("speech-three-turns-8k-ulaw.wav").data
    async with (
        bridge_on_simulator() as (bridge, simulator),
        aiohttp.ClientSession() as http,
        phone(bridge, realtime=False) as caller,
    ):
        await caller.say(recording[: 8000 * 4], speed=4.0)
        for _ in range(200):  # until the first answer is done (bounded)
            if responses_done(bridge) >= 1:
                break
            await asyncio.sleep(0.05)
        await drop(http, simulator, code="abrupt")
        heard = len(caller.audio)
        await caller.say(recording[8000 * 4 :], speed=4.0)
        for _ in range(200):  # until another answer is done (bounded)
            if responses_done(bridge) >= 2 and len(caller.audio) > heard:
                break
            await asyncio.sleep(0.05)
        done = responses_done(bridge)
        (session,) = [record.summary() for record in bridge.registry]
    assert done >= 2
    assert len(caller.audio) > heard  # the caller heard the answer after the drop
    assert session["client_kind"] == "twilio"


async def test_an_upstream_that_stops_answering_pings_is_replaced(
    monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    """An upstream whose connection stays open but answers nothing (a hung server, a dead
    path): the bridge's ping goes unanswered, and the session moves to a fresh connection."""
    monkeypatch.setattr(upstream_socket, "UPSTREAM_PING_IDLE_S", 0.2)
    monkeypatch.setattr(upstream_socket, "UPSTREAM_PING_TIMEOUT_S", 0.2)
    connections = 0
    hang = asyncio.Event()

    async def realtime(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse(protocols=("realtime",), autoping=False)
        await ws.prepare(request)
        created = {"type": "session.created", "session": {"type": "realtime", "id": "s"}}
        await ws.send_str(orjson.dumps(created).decode())
        if connections == 1:
            await hang.wait()  # never reads again, so never answers a ping
        else:
            async for _ in ws:
                pass
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", realtime)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/v1/realtime"
    try:
        async with (
            running_bridge(
                UPSTREAM="openai", OPENAI_API_KEY="sk-test", OPENAI_REALTIME_URL=url
            ) as bridge,
            http.ws_connect(ws_url(bridge, query="?bridge_events=true")) as ws,
        ):
            client = Client(ws)
            await client.until("session.created")
            resumed = await client.until("bridge.session.resumed")
    finally:
        hang.set()
        await runner.cleanup()
    assert resumed["reason"] == "upstream_dropped"
    assert connections == 2


async def test_audio_keeps_flowing_across_a_drop(http: aiohttp.ClientSession) -> None:
    """A client streaming speech under server VAD: the upstream drops in the middle; what it
    sends meanwhile is held and delivered, and its next utterance is heard and answered."""
    wav = read_wav("speech-hello-24k.wav")
    assert wav.rate == 24000
    speech = wav.data
    chunks = [speech[i : i + 960] for i in range(0, len(speech), 960)] + [bytes(960)] * 50
    async with (
        bridge_on_simulator() as (bridge, simulator),
        http.ws_connect(ws_url(bridge, query="?bridge_events=true")) as ws,
    ):
        client = Client(ws)
        await client.until("session.created")
        for index, chunk in enumerate(chunks * 2):
            if index == len(chunks) // 3:
                await drop(http, simulator, code="abrupt")
            append = {"type": "input_audio_buffer.append", "audio": b64(chunk)}
            await client.send(append)
        await client.until("bridge.session.resumed")
        committed = await client.until("input_audio_buffer.committed")
        done = await client.until("response.done")
    assert committed["item_id"]
    assert done["response"]["status"] == "completed"
    assert not [e for e in client.seen if e["type"] == "error"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
