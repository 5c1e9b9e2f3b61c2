"""The sideband: an operator's backend attached to a live WebRTC call, and who may not attach."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import running_bridge
from tests.test_client_secrets import SERVER_TOKEN, bridge_env, mint
from tests.webrtc_caller import Caller

pytestmark = pytest.mark.timeout(60)

CALL_ENV = {"UPSTREAM": "local", "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1"}


async def open_call(server: BridgeServer, token: str | None) -> Caller:
    caller = Caller()
    url = f"http://127.0.0.1:{server.http_port}/v1/realtime/calls"
    answer = await caller.call(url, token=token)
    assert answer.status == 201, answer.body
    await caller.wait_for("session.created")
    return caller


def sideband_url(server: BridgeServer, call_id: str) -> str:
    return f"ws://127.0.0.1:{server.ws_port}/v1/realtime?call_id={call_id}"


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            event = orjson.loads(await ws.receive_str())
            if event["type"] == kind:
                return dict(event)


async def test_the_sideband_sees_the_calls_events_and_its_session_update_takes_effect() -> None:
    async with running_bridge(LocalUpstream(pace=0), **CALL_ENV, **bridge_env()) as server:
        secret = (await mint(server, instructions="Reply with: the page's answer"))["value"]
        caller = await open_call(server, secret)
        assert caller.answer is not None
        auth = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(sideband_url(server, caller.answer.call_id), headers=auth) as ws,
        ):
            # The backend changes the instructions the page's secret pinned: the operator's
            # server-side control, which the page's own session.update could not do.
            update = {"instructions": "Reply with: the backend's answer", "type": "realtime"}
            await ws.send_str(orjson.dumps({"type": "session.update", "session": update}).decode())
            seen = await next_of(ws, "session.updated")
            assert seen["session"]["instructions"] == "Reply with: the backend's answer"
            assert (await caller.wait_for("session.updated"))["session"]["instructions"] == (
                "Reply with: the backend's answer"
            )
            # The page asks; the answer follows the backend's instructions; both see it.
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
            caller.send({"type": "conversation.item.create", "item": item})
            caller.send({"type": "response.create"})
            done = await next_of(ws, "response.done")
            transcript = done["response"]["output"][0]["content"][0]["transcript"]
            assert transcript == "the backend's answer"
            assert (await caller.wait_for("response.done"))["response"]["id"] == done["response"][
                "id"
            ]
            # The call ends: so does the sideband.
            await caller.close()
            async with asyncio.timeout(10):
                while not ws.closed:
                    await ws.receive()
            assert ws.close_code == 1000
        assert len(server.registry) == 0 or await server.registry.wait_for_count(0, 3.0)


async def test_pages_and_client_secrets_cannot_attach_to_a_call() -> None:
    async with running_bridge(LocalUpstream(pace=0), **CALL_ENV, **bridge_env()) as server:
        secret = (await mint(server))["value"]
        caller = await open_call(server, secret)
        assert caller.answer is not None
        url = sideband_url(server, caller.answer.call_id)
        async with aiohttp.ClientSession() as http:
            page = {"Origin": f"http://127.0.0.1:{server.http_port}"}
            for headers, status in (
                ({"Authorization": f"Bearer {secret}"}, 403),  # even the call's own secret
                ({"Authorization": f"Bearer {SERVER_TOKEN}", **page}, 403),  # a page, token or not
                ({"Authorization": "Bearer not-a-token"}, 401),
                ({}, 401),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url, headers=headers)
                assert refused.value.status == status
            with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
                await http.ws_connect(
                    sideband_url(server, "rtc_nosuchcall"),
                    headers={"Authorization": f"Bearer {SERVER_TOKEN}"},
                )
            assert unknown.value.status == 404
        await caller.close()
    # An open bridge (no tokens) serves backends on loopback, never a page (it has an Origin).
    async with running_bridge(LocalUpstream(pace=0), **CALL_ENV) as server:
        caller = await open_call(server, None)
        assert caller.answer is not None
        url = sideband_url(server, caller.answer.call_id)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    url, headers={"Origin": f"http://127.0.0.1:{server.http_port}"}
                )
            assert refused.value.status == 403
            async with http.ws_connect(url) as ws:
                await ws.send_str('{"type":"response.create"}')
                await next_of(ws, "response.done")
        await caller.close()
