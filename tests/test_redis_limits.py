"""A client's limits across two instances on one real Redis (issue 25): sessions at once and
per minute from the policy file, the daily token budget, and a client secret revoked on one
instance refused on the other."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime_bridge.server.access import RATE_WINDOW_S, budget_key
from realtime_bridge.server.admission import token_fingerprint
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.store.redis import RedisStore
from tests.conftest import ws_url
from tests.redis_server import RedisServer
from tests.test_redis_store import receive_until, redis_server, text_turn, two_instances, until

__all__ = ["redis_server"]  # the fixture, shared

TOKEN = "backend-token-redis-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
TOKEN_ID = token_fingerprint(TOKEN)


def store(server: BridgeServer) -> RedisStore:
    assert isinstance(server.access.store, RedisStore)
    return server.access.store


def policy_file(tmp_path: Path, rules: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(f"[tokens.{TOKEN_ID}]\n{rules}\n")
    return str(path)


async def connect(http: aiohttp.ClientSession, server: BridgeServer) -> Any:
    ws = await asyncio.wait_for(http.ws_connect(ws_url(server), headers=HEADERS), 10)
    await receive_until(ws, "session.created")
    return ws


async def refused(http: aiohttp.ClientSession, server: BridgeServer, **kwargs: Any) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
        await asyncio.wait_for(
            http.ws_connect(ws_url(server), **({"headers": HEADERS} | kwargs)), 10
        )
    return refusal.value.status


def rate_seen(server: BridgeServer) -> int:
    return store(server).recent(f"rate:{TOKEN_ID}", RATE_WINDOW_S, time.time())[0]


async def test_sessions_at_once_and_per_minute_hold_across_instances(
    redis_server: RedisServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, "sessions_per_minute = 3\nconcurrent_sessions = 2")
    env = {"BRIDGE_API_KEYS": TOKEN, "BRIDGE_POLICY_FILE": policy}
    async with two_instances(redis_server, **env) as (a, b):
        first = await connect(http, a)
        await until(lambda: store(b).others_slots.get(f"live:{TOKEN_ID}") == 1, "B sees A's")
        second = await connect(http, b)
        await until(lambda: store(a).others_slots.get(f"live:{TOKEN_ID}") == 1, "A sees B's")
        assert await refused(http, a) == 429  # too_many_sessions: one here, one there
        assert await refused(http, b) == 429
        await first.close()
        await second.close()
        for server in (a, b):
            await until(lambda s=server: not store(s).others_slots, "the slots are free")
        await until(lambda: rate_seen(b) == 2, "B counts the two sessions of the minute")
        third = await connect(http, b)  # the third of the minute
        await third.close()
        await until(lambda: rate_seen(a) == 3, "A counts B's third")
        assert await refused(http, a) == 429  # rate_limited: the fourth, wherever it asks


async def test_the_daily_budget_is_one_for_all_instances(
    redis_server: RedisServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, "tokens_per_day = 40")
    env = {"BRIDGE_API_KEYS": TOKEN, "BRIDGE_POLICY_FILE": policy}
    async with two_instances(redis_server, **env) as (a, b):
        ws = await connect(http, b)
        await text_turn(ws)  # the local upstream's usage for it spends the whole budget
        (error,) = (await receive_until(ws, "error"))[-1:]
        assert error["error"]["code"] == "quota_exceeded"
        await ws.close()
        key = budget_key(TOKEN_ID, time.time())
        await until(lambda: store(a).get(key) >= 40, "A reads what B spent")
        assert await refused(http, a) == 429  # quota_exceeded


async def test_a_secret_revoked_on_one_instance_is_refused_on_the_other(
    redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    async with two_instances(redis_server, BRIDGE_API_KEYS=TOKEN) as (a, b):
        url = f"http://127.0.0.1:{a.http_port}/v1/realtime/client_secrets"
        async with http.post(url, headers=HEADERS, json={"session": {"type": "realtime"}}) as r:
            assert r.status == 200
            secret = (await r.json())["value"]
        protocols = ["realtime", f"openai-insecure-api-key.{secret}"]
        ws = await asyncio.wait_for(http.ws_connect(ws_url(b), protocols=protocols), 10)
        await receive_until(ws, "session.created")
        secret_id = a.access.codec.verify(secret, time.time()).id
        async with http.delete(f"{url}/{secret}", headers=HEADERS) as r:
            assert r.status == 200
        await until(lambda: store(b).revoked(secret_id, time.time()), "B hears it", within_s=1)
        assert await refused(http, b, headers={}, protocols=protocols) == 401  # ...not now
        await text_turn(ws)  # a session already open goes on (revocation bars new ones)
        await ws.close()
