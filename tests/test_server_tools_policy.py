"""Which sessions get which server tools: per client token (and the secrets it mints), the
default for the rest, and tools whose calls the operator lets the client see."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from realtime_bridge.server.admission import token_fingerprint
from tests import server_tool_impls
from tests.conftest import running_bridge, ws_url
from tests.test_client_secrets import SERVER_TOKEN, bridge_env, mint, secret_protocols
from tests.test_server_tools import said, turn

OTHER_TOKEN = "other-backend-token-987654"
WEATHER = """
name = "get_weather"
description = "The weather in a city."
parameters = { type = "object", properties = { city = { type = "string" } } }
python = "tests.server_tool_impls:get_weather"
"""


async def test_tools_follow_the_token_its_secrets_and_the_default(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[[tokens.{token_fingerprint(SERVER_TOKEN)}.tools]]\n{WEATHER}")
    server_tool_impls.CALLS.clear()
    env = bridge_env(BRIDGE_POLICY_FILE=str(path))
    env["BRIDGE_API_KEYS"] = f"{SERVER_TOKEN},{OTHER_TOKEN}"
    async with running_bridge(UPSTREAM="local", LOCAL_AUDIO_PACE="0", **env) as bridge:
        headers = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        async with http.ws_connect(ws_url(bridge), headers=headers) as ws:
            await ws.receive()
            assert "sunny in Paris" in said(await turn(ws, "What is the weather in Paris?"))
        secret = await mint(bridge)  # minted with SERVER_TOKEN: its sessions get its tools
        protocols = secret_protocols(secret["value"])
        async with http.ws_connect(ws_url(bridge), protocols=protocols) as ws:
            await ws.receive()
            assert "sunny in Rome" in said(await turn(ws, "What is the weather in Rome?"))
        assert server_tool_impls.CALLS == [{"city": "Paris"}, {"city": "Rome"}]
        headers = {"Authorization": f"Bearer {OTHER_TOKEN}"}  # the default: no tools
        async with http.ws_connect(ws_url(bridge), headers=headers) as ws:
            await ws.receive()
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What is the weather in Oslo?"}],
            }
            await ws.send_str(
                orjson.dumps({"type": "conversation.item.create", "item": item}).decode()
            )
            await ws.send_str('{"type":"response.create"}')
            seen = await events_until_done(ws)
        assert server_tool_impls.CALLS == [{"city": "Paris"}, {"city": "Rome"}]
        assert "function_call" not in orjson.dumps(seen).decode()


async def events_until_done(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != "response.done":
        seen.append(orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data))
    return seen


async def test_a_visible_tool_shows_its_call_and_a_client_tool_of_its_name_is_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[[default.tools]]\n{WEATHER}\nvisible = true\n")
    server_tool_impls.CALLS.clear()
    async with (
        running_bridge(
            UPSTREAM="local", LOCAL_AUDIO_PACE="0", BRIDGE_POLICY_FILE=str(path)
        ) as bridge,
        http.ws_connect(ws_url(bridge)) as ws,
    ):
        await ws.receive()
        own = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
        other = {"type": "function", "name": "open_door", "parameters": {"type": "object"}}
        update = {
            "type": "session.update",
            "event_id": "evt_tools",
            "session": {"type": "realtime", "tools": [own, other]},
        }
        await ws.send_str(orjson.dumps(update).decode())
        error = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert error["type"] == "error"
        assert error["error"]["code"] == "session_field_locked"
        assert error["error"]["param"] == "tools.get_weather"
        updated = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert [t["name"] for t in updated["session"]["tools"]] == ["open_door"]
        events = await turn(ws, "What is the weather in Paris?")
    types = [e["type"] for e in events]
    assert "response.function_call_arguments.done" in types  # the operator let it be seen
    assert server_tool_impls.CALLS == [{"city": "Paris"}]  # run by the bridge all the same
    assert "sunny in Paris" in said(events)
