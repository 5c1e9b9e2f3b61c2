"""Client secrets, the session policy and its limits, over real sockets (SPEC §8, issue 17).

Minting goes through the official ``openai`` SDK; every refused client is checked against a
recording fake upstream that must never have seen a connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from openai import AsyncOpenAI

from realtime_bridge.server.admission import token_fingerprint
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import running_bridge, ws_url
from tests.fakes import running_fake_upstream

SERVER_TOKEN = "backend-token-0123456789"
SIGNING_KEY = "k" * 40
ADMIN = "admin-token-0123456789"
PINNED_REPLY = "the pinned instructions answer"


def secret_protocols(secret: str) -> list[str]:
    return ["realtime", f"openai-insecure-api-key.{secret}"]


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def bridge_env(**extra: Any) -> dict[str, Any]:
    return {
        "BRIDGE_API_KEYS": SERVER_TOKEN,
        "BRIDGE_SECRET_KEY": SIGNING_KEY,
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        **extra,
    }


async def mint(server: BridgeServer, seconds: int = 600, **session: Any) -> dict[str, Any]:
    """A secret minted the way an app's backend does it: the official SDK, as written."""
    client = AsyncOpenAI(api_key=SERVER_TOKEN, base_url=f"http://127.0.0.1:{server.http_port}/v1")
    created = await client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": seconds},
        session={"type": "realtime", **session},  # type: ignore[typeddict-item]
    )
    await client.close()
    return created.model_dump()


@pytest.fixture
async def local_bridge() -> AsyncIterator[BridgeServer]:
    async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **bridge_env()) as b:
        yield b


async def receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        event = orjson.loads(msg.data)
        seen.append(event)
        if event["type"] == kind:
            return seen


async def send(ws: aiohttp.ClientWebSocketResponse, event: dict[str, Any]) -> None:
    await ws.send_str(orjson.dumps(event).decode())


USER_HI = {
    "type": "conversation.item.create",
    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
}


async def test_sdk_mints_and_a_client_holds_a_turn_with_the_secret(
    local_bridge: BridgeServer, http: aiohttp.ClientSession
) -> None:
    before = time.time()
    secret = await mint(local_bridge, instructions=f"Reply with: {PINNED_REPLY}")
    assert secret["value"].startswith("ek_")
    assert before + 599 <= secret["expires_at"] <= time.time() + 601
    assert secret["session"]["instructions"] == f"Reply with: {PINNED_REPLY}"
    assert SIGNING_KEY not in secret["value"]
    async with http.ws_connect(
        ws_url(local_bridge), protocols=secret_protocols(secret["value"])
    ) as ws:
        await receive_until(ws, "session.created")
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            },
        )
        await receive_until(ws, "session.updated")
        await send(ws, USER_HI)
        await send(ws, {"type": "response.create"})
        events = await receive_until(ws, "response.done")
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == PINNED_REPLY  # the minted instructions were applied before the first event
    # The SDK's own connect, with the secret as its api_key (Authorization: Bearer ek_…).
    base = f"ws://127.0.0.1:{local_bridge.ws_port}/v1"
    client = AsyncOpenAI(api_key=secret["value"], websocket_base_url=base)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await conn.recv()).type == "session.created"


async def test_locked_fields_are_refused_and_the_rest_applies(
    local_bridge: BridgeServer, http: aiohttp.ClientSession
) -> None:
    secret = await mint(
        local_bridge, instructions=f"Reply with: {PINNED_REPLY}", tool_choice="none"
    )
    async with http.ws_connect(
        ws_url(local_bridge), protocols=secret_protocols(secret["value"])
    ) as ws:
        await receive_until(ws, "session.created")
        update = {
            "type": "session.update",
            "event_id": "evt_change",
            "session": {
                "type": "realtime",
                "instructions": "Reply with: something the page wanted",
                "tool_choice": "none",  # the locked value itself: not a change
                "output_modalities": ["text"],
            },
        }
        await send(ws, update)
        seen = await receive_until(ws, "session.updated")
        (error,) = [e for e in seen if e["type"] == "error"]
        assert error["error"]["code"] == "session_field_locked"
        assert error["error"]["param"] == "instructions"
        assert error["error"]["event_id"] == "evt_change"
        assert "tool_choice" not in error["error"]["message"]
        session = seen[-1]["session"]
        assert session["output_modalities"] == ["text"]  # the rest applied
        assert session["instructions"] == f"Reply with: {PINNED_REPLY}"
        await send(ws, USER_HI)
        await send(ws, {"type": "response.create", "response": {"instructions": "Reply with: no"}})
        events = await receive_until(ws, "response.done")
    assert [e["error"]["code"] for e in events if e["type"] == "error"] == ["session_field_locked"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == PINNED_REPLY


async def test_expired_tampered_foreign_and_revoked_secrets_are_refused_before_upstream(
    http: aiohttp.ClientSession,
) -> None:
    async with (
        running_fake_upstream() as fake,
        running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY="sk-x", OPENAI_REALTIME_URL=fake.url, **bridge_env()
        ) as bridge,
        running_bridge(
            UPSTREAM="openai",
            OPENAI_API_KEY="sk-x",
            OPENAI_REALTIME_URL=fake.url,
            **bridge_env(BRIDGE_SECRET_KEY="z" * 40),
        ) as foreign,
    ):
        short = await mint(bridge, seconds=1)
        kept = await mint(bridge)
        value = kept["value"]
        flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
        for server, secret in ((bridge, flipped), (foreign, value)):
            await expect_refusal(http, server, secret, 401)
        # Revoked, then replayed.
        async with http.delete(
            f"http://127.0.0.1:{bridge.http_port}/v1/realtime/client_secrets/{value}",
            headers={"Authorization": f"Bearer {SERVER_TOKEN}"},
        ) as response:
            assert response.status == 200
        await expect_refusal(http, bridge, value, 401)
        # Expired: awaited to the millisecond it expires, then refused.
        await asyncio.sleep(max(0.0, short["expires_at"] - time.time()))
        await expect_refusal(http, bridge, short["value"], 401)
        assert fake.connection_attempts == 0


async def test_another_instance_with_the_same_key_accepts_the_secret(
    http: aiohttp.ClientSession,
) -> None:
    async with (
        running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **bridge_env()) as first,
        running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **bridge_env()) as second,
    ):
        secret = await mint(first)
        async with http.ws_connect(
            ws_url(second), protocols=secret_protocols(secret["value"])
        ) as ws:
            await receive_until(ws, "session.created")


async def expect_refusal(
    http: aiohttp.ClientSession,
    server: BridgeServer,
    secret: str | None,
    status: int,
    query: str = "",
) -> aiohttp.WSServerHandshakeError:
    protocols = secret_protocols(secret) if secret else ["realtime"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(server, query=query), protocols=protocols)
    assert refused.value.status == status
    return refused.value


async def test_a_restricted_model_cannot_be_changed_by_session_update(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """SDKs put a model in their session.update (the Agents SDK its own default); where the
    operator restricts models, only the session's own is accepted there."""
    token_id = token_fingerprint(SERVER_TOKEN)
    policy = write_policy(tmp_path, f'[tokens.{token_id}]\nmodels = ["gpt-realtime"]\n')
    async with running_bridge(UPSTREAM="local", **bridge_env(BRIDGE_POLICY_FILE=policy)) as bridge:
        headers = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        async with http.ws_connect(ws_url(bridge), headers=headers) as ws:
            await receive_until(ws, "session.created")
            session = {"type": "realtime", "model": "gpt-realtime", "instructions": "A"}
            await send(ws, {"type": "session.update", "session": session})
            seen = await receive_until(ws, "session.updated")
            assert [e for e in seen if e["type"] == "error"] == []  # its own model: no change
            session = {"type": "realtime", "model": "gpt-realtime-pro", "instructions": "B"}
            await send(ws, {"type": "session.update", "event_id": "evt_m", "session": session})
            seen = await receive_until(ws, "session.updated")
            (error,) = [e for e in seen if e["type"] == "error"]
            assert error["error"]["code"] == "session_field_locked"
            assert error["error"]["param"] == "model"
            assert seen[-1]["session"]["model"] == "gpt-realtime"
            assert seen[-1]["session"]["instructions"] == "B"  # the rest applied


async def test_policy_models_rate_and_concurrency(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    token_id = token_fingerprint(SERVER_TOKEN)
    policy = write_policy(
        tmp_path,
        f"""
[tokens.{token_id}]
label = "web app"
models = ["gpt-realtime", "gpt-realtime-mini"]
sessions_per_minute = 3
concurrent_sessions = 2
""",
    )
    async with (
        running_fake_upstream() as fake,
        running_bridge(
            UPSTREAM="openai",
            OPENAI_API_KEY="sk-x",
            OPENAI_REALTIME_URL=fake.url,
            **bridge_env(BRIDGE_POLICY_FILE=policy),
        ) as bridge,
    ):
        headers = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                ws_url(bridge, query="?model=gpt-4o-realtime-preview"), headers=headers
            )
        assert refused.value.status == 403
        assert fake.connection_attempts == 0
        # Two at once, then a third is refused (429) while they live.
        first = await http.ws_connect(
            ws_url(bridge, query="?model=gpt-realtime-mini"), headers=headers
        )
        second = await http.ws_connect(ws_url(bridge), headers=headers)
        await fake.next_session()
        await fake.next_session()
        attempts = fake.connection_attempts
        with pytest.raises(aiohttp.WSServerHandshakeError) as busy:
            await http.ws_connect(ws_url(bridge), headers=headers)
        assert busy.value.status == 429
        assert fake.connection_attempts == attempts
        await first.close()
        await second.close()
        await bridge.registry.wait_for_count(0, 5)
        # The third of the minute is allowed, the fourth is not: 429 with Retry-After.
        third = await http.ws_connect(ws_url(bridge), headers=headers)
        await third.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as limited:
            await http.ws_connect(ws_url(bridge), headers=headers)
        assert limited.value.status == 429
        assert fake.connection_attempts == attempts + 1  # only the third one connected
        assert limited.value.headers is not None
        assert 1 <= int(limited.value.headers["Retry-After"]) <= 60
        async with http.get(f"http://127.0.0.1:{bridge.http_port}/metrics") as response:
            text = await response.text()
        assert 'realtime_bridge_refused_total{reason="rate_limited"} 1.0' in text
        assert 'realtime_bridge_refused_total{reason="too_many_sessions"} 1.0' in text
        assert 'realtime_bridge_refused_total{reason="model_not_allowed"} 1.0' in text


async def test_budget_spent_mid_session_ends_it_and_refuses_new_ones(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    token_id = token_fingerprint(SERVER_TOKEN)
    policy = write_policy(tmp_path, f"[tokens.{token_id}]\ntokens_per_day = 40\n")
    async with running_bridge(
        LocalUpstream(pace=0.0), UPSTREAM="local", **bridge_env(BRIDGE_POLICY_FILE=policy)
    ) as bridge:
        headers = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        admin = {"Authorization": f"Bearer {ADMIN}"}
        async with http.ws_connect(ws_url(bridge), headers=headers) as ws:
            await receive_until(ws, "session.created")
            async with http.get(
                f"http://127.0.0.1:{bridge.http_port}/sessions", headers=admin
            ) as response:
                (listed,) = (await response.json())["sessions"]
            assert listed["credential"] == {"kind": "token", "id": token_id}
            assert listed["budget"] == {"tokens_left_today": 40}
            assert SERVER_TOKEN not in str(listed)
            await send(
                ws,
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "output_modalities": ["text"]},
                },
            )
            await send(ws, USER_HI)
            await send(ws, {"type": "response.create"})
            events = await receive_until(ws, "error")
            done = next(e for e in events if e["type"] == "response.done")
            assert done["response"]["usage"]["total_tokens"] >= 40  # the local upstream's usage
            assert events[-1]["error"]["code"] == "quota_exceeded"
            closing = await asyncio.wait_for(ws.receive(), 5)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert closing.data == 1008
        refused = await expect_refusal(http, bridge, None, 401)  # no token
        assert refused.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as spent:
            await http.ws_connect(ws_url(bridge), headers=headers)
        assert spent.value.status == 429


async def test_policy_pins_fields_for_static_tokens_and_bounds_sessions(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A policy's pinned session applies to plain token clients too; its max_session_s ends the
    session with session_expired (awaited, not slept for); a secret's lifetime is bounded."""
    policy = write_policy(
        tmp_path,
        """
[default]
max_session_s = 1
max_output_tokens = 50

[default.session]
instructions = "Reply with: the policy speaks"
""",
    )
    async with running_bridge(
        LocalUpstream(pace=0.0), UPSTREAM="local", **bridge_env(BRIDGE_POLICY_FILE=policy)
    ) as bridge:
        headers = {"Authorization": f"Bearer {SERVER_TOKEN}"}
        async with http.ws_connect(ws_url(bridge), headers=headers) as ws:
            created = (await receive_until(ws, "session.created"))[-1]
            assert created["session"]["instructions"] == "Reply with: the policy speaks"
            text_only = {"type": "realtime", "output_modalities": ["text"]}
            await send(ws, {"type": "session.update", "session": text_only})
            updated = (await receive_until(ws, "session.updated"))[-1]["session"]
            assert updated["instructions"] == "Reply with: the policy speaks"
            assert updated["max_output_tokens"] == 50
            await send(ws, USER_HI)
            await send(ws, {"type": "response.create"})
            events = await receive_until(ws, "response.done")
            text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
            assert text == "the policy speaks"
            expired = await receive_until(ws, "error")
            assert expired[-1]["error"]["code"] == "session_expired"
        async with http.post(
            f"http://127.0.0.1:{bridge.http_port}/v1/realtime/client_secrets",
            json={"expires_after": {"anchor": "created_at", "seconds": 7201}},
            headers=headers,
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "expires_after.seconds"
        async with http.post(
            f"http://127.0.0.1:{bridge.http_port}/v1/realtime/client_secrets",
            json={},
            headers={"Authorization": "Bearer not-a-server-token"},
        ) as response:
            assert response.status == 401
