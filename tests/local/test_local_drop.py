"""The simulator's test tools: ``POST /admin/drop`` ends sessions as a failing upstream would,
``GET /admin/sessions`` lists them (real sockets, aiohttp clients)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.upstream.local.core import RealtimeCore
from realtime_bridge.upstream.local.server import running_simulator

TIMEOUT = 5.0
SPEAK = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "instructions": "Reply with: One two three four five six seven eight nine ten.",
    },
}


class Sim:
    """A running simulator and an HTTP client for it."""

    def __init__(self, port: int, http: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = http

    async def connect(self) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        """A new session: its socket and its id (from ``session.created``)."""
        ws = await self.http.ws_connect(self.base + "/v1/realtime")
        created = await next_event(ws)
        assert created["type"] == "session.created"
        return ws, str(created["session"]["id"])

    async def drop(self, expect_status: int = 200, **query: str) -> Any:
        async with self.http.post(self.base + "/admin/drop", params=query) as response:
            assert response.status == expect_status
            assert response.content_type == "application/json"
            return await response.json()

    async def sessions(self) -> list[str]:
        async with self.http.get(self.base + "/admin/sessions") as response:
            assert response.status == 200
            body = await response.json()
            assert set(body) == {"sessions"}
            return list(body["sessions"])


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_simulator("127.0.0.1", 0, 1.0) as port, aiohttp.ClientSession() as http:
        yield Sim(port, http)


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    event: dict[str, Any] = orjson.loads(msg.data)
    return event


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], aiohttp.WSMessage]:
    """The types of the events still received, and the message that ended the socket."""
    types = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return types, msg
        types.append(orjson.loads(msg.data)["type"])


async def test_drop_sends_1011_by_default_and_the_session_is_gone(sim: Sim) -> None:
    ws, session_id = await sim.connect()
    assert await sim.sessions() == [session_id]
    assert await sim.drop() == {"dropped": 1}
    assert await sim.sessions() == []
    # the answer came once the close frame was written: reading only now still gets it, and
    # the handshake completes with the code sent
    types, msg = await until_closed(ws)
    assert types == []
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert (msg.data, msg.extra) == (1011, "session dropped by the simulator")
    assert ws.close_code == 1011
    assert ws.closed


@pytest.mark.parametrize("code", [1000, 1001, 1012, 1013, 3000, 4000, 4999])
async def test_drop_sends_the_close_code_asked_for(sim: Sim, code: int) -> None:
    ws, _ = await sim.connect()
    assert await sim.drop(code=str(code), reason="maintenance") == {"dropped": 1}
    _, msg = await until_closed(ws)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, code, "maintenance")
    assert ws.close_code == code


async def test_abrupt_drop_ends_the_connection_without_a_close_frame(sim: Sim) -> None:
    ws, session_id = await sim.connect()
    assert await sim.drop(code="abrupt", session=session_id) == {"dropped": 1}
    assert await sim.sessions() == []
    types, msg = await until_closed(ws)
    assert types == []
    # aiohttp reports the end of the TCP stream as CLOSED (not CLOSE: no frame came) and close
    # code 1006, abnormal closure (its close frame in answer cannot be written any more)
    assert msg.type == aiohttp.WSMsgType.CLOSED
    assert ws.close_code == 1006


async def test_drop_one_session_by_id_and_the_others_go_on(sim: Sim) -> None:
    (ws1, id1), (ws2, id2), (ws3, id3) = [await sim.connect() for _ in range(3)]
    assert len({id1, id2, id3}) == 3
    assert all(i.startswith("sess_") for i in (id1, id2, id3))
    assert await sim.sessions() == [id1, id2, id3]  # oldest first
    assert await sim.drop(session=id2, code="1012") == {"dropped": 1}
    assert await sim.sessions() == [id1, id3]
    _, msg = await until_closed(ws2)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1012)
    for ws in (ws1, ws3):  # untouched: still answering
        await ws.send_str(orjson.dumps(SPEAK).decode())
        assert (await next_event(ws))["type"] == "session.updated"
        assert not ws.closed
    # dropping a session no longer open (or never open) drops nothing
    assert await sim.drop(session=id2) == {"dropped": 0}
    assert await sim.drop(session="sess_nope") == {"dropped": 0}
    assert await sim.drop(code="abrupt") == {"dropped": 2}  # every open session
    for ws in (ws1, ws3):
        _, msg = await until_closed(ws)
        assert msg.type == aiohttp.WSMsgType.CLOSED
    assert await sim.sessions() == []
    assert await sim.drop() == {"dropped": 0}


async def test_a_client_closing_leaves_the_list(sim: Sim) -> None:
    ws, session_id = await sim.connect()
    other, other_id = await sim.connect()
    await ws.close()
    assert ws.close_code == 1000
    assert await sim.sessions() == [other_id]
    assert session_id not in await sim.sessions()
    await other.close()


async def test_drop_in_the_middle_of_a_paced_response(sim: Sim) -> None:
    """A drop cuts the response short: what the session still had to say never goes out."""
    ws, _ = await sim.connect()
    await ws.send_str(orjson.dumps(SPEAK).decode())
    await ws.send_str('{"type":"response.create"}')
    while (await next_event(ws))["type"] != "response.output_audio.delta":
        pass
    assert await sim.drop(code="1011") == {"dropped": 1}
    types, msg = await until_closed(ws)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1011)
    assert "response.done" not in types  # about 4 s of audio at pace 1: far from done


async def test_drop_while_the_client_is_reading(sim: Sim) -> None:
    ws, _ = await sim.connect()
    reader = asyncio.create_task(until_closed(ws))
    assert await sim.drop(code="4000", reason="") == {"dropped": 1}
    _, msg = await reader
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "")
    assert ws.close_code == 4000


@pytest.mark.parametrize("code", ["1005", "1006", "1015", "999", "5000", "2000", "x", ""])
async def test_bad_drop_codes_are_refused_in_the_apis_error_shape(sim: Sim, code: str) -> None:
    ws, session_id = await sim.connect()
    body = await sim.drop(expect_status=400, code=code)
    assert body["error"]["type"] == "invalid_request_error"
    assert "'code'" in body["error"]["message"]
    assert await sim.sessions() == [session_id]  # nothing dropped
    await ws.close()


async def test_a_too_long_reason_is_refused(sim: Sim) -> None:
    body = await sim.drop(expect_status=400, reason="é" * 62)
    assert "'reason'" in body["error"]["message"]


async def test_admin_methods_and_paths(sim: Sim) -> None:
    async with sim.http.get(sim.base + "/admin/drop") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    async with sim.http.post(sim.base + "/admin/sessions") as response:
        assert response.status == 405
    async with sim.http.get(sim.base + "/admin/nope") as response:
        assert response.status == 404


async def test_a_core_failure_still_closes_1011_after_what_came_before(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The session's own end (here a core bug) goes through the same close as a drop."""
    ws, session_id = await sim.connect()

    def broken(self: RealtimeCore, text: str | bytes, now: float) -> None:
        raise RuntimeError("core bug")

    monkeypatch.setattr(RealtimeCore, "receive", broken)
    with caplog.at_level(logging.ERROR):
        await ws.send_str(orjson.dumps(SPEAK).decode())
        types, msg = await until_closed(ws)
    assert types == []
    assert (msg.type, msg.data, msg.extra) == (
        aiohttp.WSMsgType.CLOSE,
        1011,
        "local upstream internal error",
    )
    assert ws.close_code == 1011
    assert "local upstream session failed" in caplog.text
    assert session_id not in await sim.sessions()


async def test_shutdown_closes_sessions_with_1001_and_a_full_handshake() -> None:
    async with aiohttp.ClientSession() as http:
        async with running_simulator("127.0.0.1", 0, 1.0) as port:
            sim = Sim(port, http)
            ws, _ = await sim.connect()
            reader = asyncio.create_task(until_closed(ws))
        # the simulator is gone; the close frame was answered before the connection went
        _, msg = await reader
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        assert ws.close_code == 1001
