"""Security at the upgrade (SPEC §8): client tokens, origins, and secrets that never leak.

Every refused client is checked against the recording fake upstream: ``connection_attempts``
stays 0, so a refusal happens before any upstream connection is opened.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from realtime_bridge.server.admission import (
    admit,
    normalise_origin,
    origin_allowed,
    own_origins,
    presented_tokens,
    token_fingerprint,
    token_matches,
)
from tests.conftest import TEST_KEY, running_bridge, wait_for_sessions, ws_url
from tests.fakes import FakeUpstream, echo, receive_json

TOKENS = ("tok-alpha-7f3c9e21d4", "tok-beta-0b8a6655aa")
ADMIN = "adm-secret-5e1f00c9"
APP_ORIGIN = "https://app.example.com"


async def refused_upgrade(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    protocols: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """Send a WebSocket upgrade by hand and return the (refusing) answer: status, JSON body."""
    handshake = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if protocols:
        handshake["Sec-WebSocket-Protocol"] = ", ".join(protocols)
    handshake.update(headers or {})
    async with http.get(url.replace("ws://", "http://", 1), headers=handshake) as response:
        assert response.status != 101, "the upgrade was accepted"
        body = await response.json()
    return response.status, body, response


@pytest.fixture
def secured_env(openai_env: dict[str, str]) -> dict[str, str]:
    return {
        **openai_env,
        "BRIDGE_API_KEYS": ",".join(TOKENS),
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        "ALLOWED_ORIGINS": f"{APP_ORIGIN}, https://other.example.org:8443",
    }


# ---------------------------------------------------------------------------------------------
# The pure checks


def test_normalise_origin() -> None:
    assert normalise_origin("HTTPS://App.Example.COM/") == "https://app.example.com"
    assert normalise_origin("https://app.example.com:443") == "https://app.example.com"
    assert normalise_origin("http://localhost:80") == "http://localhost"
    assert normalise_origin("http://127.0.0.1:3000") == "http://127.0.0.1:3000"
    assert normalise_origin("http://[::1]:3000") == "http://[::1]:3000"
    for bad in ("null", "", "app.example.com", "http://", "http://x:99999"):
        assert normalise_origin(bad) is None


def test_origin_rules() -> None:
    allowed = (APP_ORIGIN,)
    assert origin_allowed(None, allowed)  # not a browser
    assert origin_allowed("https://anything.example", ())  # empty list = any
    assert origin_allowed("https://anything.example", ("*",))
    assert origin_allowed("https://APP.example.com", allowed)
    assert not origin_allowed("http://app.example.com", allowed)  # scheme matters
    assert not origin_allowed("https://app.example.com.evil.io", allowed)
    assert not origin_allowed("https://app.example.com:8443", allowed)  # port matters
    assert not origin_allowed("null", allowed)
    own = own_origins("http://127.0.0.1:3000", "127.0.0.1", "192.168.1.5:8080")
    assert "http://127.0.0.1:3000" in own
    assert "http://localhost:3000" in own
    assert "http://192.168.1.5:3000" in own  # the address the browser used to reach the bridge
    assert "http://localhost:8080" not in own
    # A DNS name in Host is not trusted (DNS rebinding would let any page claim it).
    assert "http://evil.example:3000" not in own_origins(
        "http://127.0.0.1:3000", "0.0.0.0", "evil.example:8080"
    )
    assert "http://[::1]:3000" in own_origins("http://[::1]:3000", "::1", "[::1]:8080")
    assert "http://bridge.lan:3000" in own_origins("http://0.0.0.0:3000", "bridge.lan", None)
    assert origin_allowed("http://localhost:3000", allowed, own)
    assert not origin_allowed("http://localhost:3001", allowed, own)
    assert own_origins("", "127.0.0.1", None) == frozenset()


def test_tokens_are_found_in_each_place_and_compared_against_every_key() -> None:
    headers = {"Authorization": "Bearer a1"}
    assert presented_tokens(headers, {}, []) == ["a1"]
    assert presented_tokens({"Authorization": "bearer  a2 "}, {}, []) == ["a2"]
    assert presented_tokens({"Authorization": "Basic a3"}, {}, []) == []
    assert presented_tokens({}, {"token": "q1"}, []) == ["q1"]
    protocols = ["realtime", "openai-insecure-api-key.p1", "openai-insecure-api-key."]
    assert presented_tokens({}, {}, protocols) == ["p1"]
    keys = tuple(SecretStr(t) for t in TOKENS)
    assert token_matches(TOKENS[0], keys)
    assert token_matches(TOKENS[1], keys)
    assert not token_matches(TOKENS[0][:-1], keys)
    assert not token_matches(TOKENS[0] + "x", keys)
    assert not token_matches("", keys)
    assert not token_matches("tök-ünïcode", keys)
    fingerprint = token_fingerprint(TOKENS[0])
    assert len(fingerprint) == 12
    assert fingerprint not in TOKENS[0]
    assert fingerprint != token_fingerprint(TOKENS[1])


def test_admit_checks_origin_before_token_and_never_echoes_a_token() -> None:
    keys = tuple(SecretStr(t) for t in TOKENS)
    with pytest.raises(Exception) as refused:
        admit(
            headers={"Origin": "https://evil.example", "Authorization": "Bearer nope-123"},
            query={},
            api_keys=keys,
            allowed_origins=(APP_ORIGIN,),
        )
    assert getattr(refused.value, "code", None) == "forbidden_origin"
    with pytest.raises(Exception) as refused:
        admit(
            headers={"Authorization": "Bearer nope-123"},
            query={},
            api_keys=keys,
            allowed_origins=(APP_ORIGIN,),
        )
    assert getattr(refused.value, "code", None) == "unauthorized"
    assert "nope-123" not in str(refused.value)
    admitted = admit(
        headers={"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{TOKENS[1]}"},
        query={},
        api_keys=keys,
        allowed_origins=(),
    )
    assert admitted.token_id == token_fingerprint(TOKENS[1])
    assert admit(headers={}, query={}, api_keys=(), allowed_origins=()).token_id is None


# ---------------------------------------------------------------------------------------------
# The auth matrix over real sockets

ACCEPTED_WAYS: list[tuple[str, dict[str, str], str, tuple[str, ...], str | None]] = [
    # (name, headers, query, offered subprotocols, expected selected subprotocol)
    ("bearer-first-key", {"Authorization": f"Bearer {TOKENS[0]}"}, "", (), None),
    ("bearer-second-key", {"Authorization": f"Bearer {TOKENS[1]}"}, "", (), None),
    ("bearer-lowercase-scheme", {"authorization": f"bearer {TOKENS[0]}"}, "", (), None),
    ("query", {}, f"?token={TOKENS[1]}", (), None),
    ("query-with-model", {}, f"?model=gpt-realtime&token={TOKENS[0]}", (), None),
    ("subprotocol", {}, "", (f"openai-insecure-api-key.{TOKENS[0]}",), None),
    (
        "subprotocol-with-realtime",
        {},
        "",
        ("realtime", f"openai-insecure-api-key.{TOKENS[1]}"),
        "realtime",
    ),
    (
        "wrong-bearer-right-query",
        {"Authorization": "Bearer sk-someone-elses-openai-key"},
        f"?token={TOKENS[0]}",
        (),
        None,
    ),
]


@pytest.mark.parametrize(
    ("headers", "query", "protocols", "selected"),
    [way[1:] for way in ACCEPTED_WAYS],
    ids=[way[0] for way in ACCEPTED_WAYS],
)
async def test_each_way_of_presenting_a_token_is_accepted(
    secured_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    captured_logs: list[str],
    headers: dict[str, str],
    query: str,
    protocols: tuple[str, ...],
    selected: str | None,
) -> None:
    fake_upstream.behaviour = echo
    async with (
        running_bridge(**secured_env) as server,
        http.ws_connect(ws_url(server, query=query), headers=headers, protocols=protocols) as ws,
    ):
        upstream = await fake_upstream.next_session()
        assert ws.protocol == selected  # the key subprotocol is never echoed
        await ws.send_str('{"type":"x.ping"}')
        assert (await asyncio.wait_for(ws.receive(), 5)).data == '{"type":"x.ping"}'
        handshake = str(upstream.handshake)
        for token in TOKENS:
            assert token not in handshake  # never forwarded, in any form
        assert "token" not in upstream.handshake.query
        assert upstream.handshake.headers["Authorization"] == f"Bearer {TEST_KEY}"
    logs = "".join(captured_logs)
    assert "client_token=" in logs
    for token in TOKENS:
        assert token not in logs


REFUSED_WAYS: list[tuple[str, dict[str, str], str, tuple[str, ...]]] = [
    ("missing", {}, "", ()),
    ("wrong-bearer", {"Authorization": "Bearer tok-alpha-7f3c9e21d5"}, "", ()),
    ("prefix-of-a-key", {"Authorization": f"Bearer {TOKENS[0][:-1]}"}, "", ()),
    ("key-plus-suffix", {"Authorization": f"Bearer {TOKENS[0]}0"}, "", ()),
    ("basic-scheme", {"Authorization": f"Basic {TOKENS[0]}"}, "", ()),
    ("bare-header", {"Authorization": TOKENS[0]}, "", ()),
    ("empty-bearer", {"Authorization": "Bearer "}, "", ()),
    ("wrong-query", {}, "?token=tok-gamma-nope", ()),
    ("empty-query", {}, "?token=", ()),
    ("wrong-subprotocol", {}, "", ("realtime", "openai-insecure-api-key.tok-nope-1234")),
    ("empty-subprotocol", {}, "", ("openai-insecure-api-key.",)),
    ("the-admin-token", {"Authorization": f"Bearer {ADMIN}"}, "", ()),
    ("the-openai-key", {"Authorization": f"Bearer {TEST_KEY}"}, "", ()),
    ("allowed-origin-no-token", {"Origin": APP_ORIGIN}, "", ()),
]


@pytest.mark.parametrize(
    ("headers", "query", "protocols"),
    [way[1:] for way in REFUSED_WAYS],
    ids=[way[0] for way in REFUSED_WAYS],
)
async def test_bad_or_missing_token_is_refused_with_401_before_any_upstream(
    secured_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    captured_logs: list[str],
    headers: dict[str, str],
    query: str,
    protocols: tuple[str, ...],
) -> None:
    async with running_bridge(**secured_env) as server:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(server, query=query), headers=headers, protocols=protocols)
        assert refused.value.status == 401
        status, body, response = await refused_upgrade(
            http, ws_url(server, query=query), headers, protocols
        )
        assert status == 401
        assert body["error"]["code"] == "unauthorized"
        assert body["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "X-Bridge-Session-Id" not in response.headers
        text = orjson.dumps(body).decode() + str(response.headers)
        for secret in (*TOKENS, ADMIN, TEST_KEY, "tok-gamma-nope", "tok-nope-1234"):
            assert secret not in text
        assert len(server.registry) == 0
        assert server.registry.total == 0
    assert fake_upstream.connection_attempts == 0
    logs = "".join(captured_logs)
    assert "client refused" in logs
    for secret in (*TOKENS, ADMIN, "tok-gamma-nope", "tok-nope-1234"):
        assert secret not in logs


async def test_no_keys_configured_means_no_token_needed(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env) as server, http.ws_connect(ws_url(server)):
        await fake_upstream.next_session()
        assert fake_upstream.connection_attempts == 1


# ---------------------------------------------------------------------------------------------
# Origins


@pytest.mark.parametrize(
    "origin",
    [APP_ORIGIN, "https://APP.example.com", "https://other.example.org:8443", None],
    ids=["listed", "listed-other-case", "listed-with-port", "no-origin-header"],
)
async def test_allowed_origins_connect(
    secured_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    origin: str | None,
) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[0]}"}
    if origin is not None:
        headers["Origin"] = origin
    async with (
        running_bridge(**secured_env) as server,
        http.ws_connect(ws_url(server), headers=headers),
    ):
        await fake_upstream.next_session()


async def test_the_bridges_own_demo_page_origin_is_always_allowed(
    secured_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**secured_env) as server:
        for host in ("127.0.0.1", "localhost"):
            origin = f"http://{host}:{server.http_port}"
            async with http.ws_connect(
                ws_url(server),
                headers={"Origin": origin, "Authorization": f"Bearer {TOKENS[0]}"},
            ):
                await fake_upstream.next_session()
        # Same host, another port: not the bridge's page.
        status, body, _ = await refused_upgrade(
            http,
            ws_url(server),
            {"Origin": f"http://localhost:{server.http_port + 1}", "Authorization": "Bearer x"},
        )
        assert (status, body["error"]["code"]) == (403, "forbidden_origin")


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com.evil.io",
        "https://other.example.org",
        "null",
        "not an origin",
    ],
)
async def test_other_origins_are_refused_with_403_before_the_token(
    secured_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    origin: str,
) -> None:
    async with running_bridge(**secured_env) as server:
        # A valid token does not help a refused origin, and a bad one still gets 403 (origin first).
        for auth in (f"Bearer {TOKENS[0]}", "Bearer wrong-token-1", None):
            headers = {"Origin": origin}
            if auth is not None:
                headers["Authorization"] = auth
            status, body, _ = await refused_upgrade(http, ws_url(server), headers)
            assert status == 403
            assert body == {
                "error": {"code": "forbidden_origin", "message": body["error"]["message"]}
            }
            assert TOKENS[0] not in body["error"]["message"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(server), headers={"Origin": origin})
        assert refused.value.status == 403
    assert fake_upstream.connection_attempts == 0


async def test_empty_allowed_origins_allows_any_origin(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with (
        running_bridge(**openai_env) as server,
        http.ws_connect(ws_url(server), headers={"Origin": "https://anywhere.example"}),
    ):
        await fake_upstream.next_session()


async def test_refusals_come_before_load_checks(
    secured_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    """A stranger learns nothing about load: at the session limit it still gets 401/403."""
    async with running_bridge(**secured_env, MAX_SESSIONS="1") as server:
        async with http.ws_connect(
            ws_url(server), headers={"Authorization": f"Bearer {TOKENS[0]}"}
        ):
            await fake_upstream.next_session()
            status, _, _ = await refused_upgrade(http, ws_url(server))
            assert status == 401
            status, _, _ = await refused_upgrade(
                http, ws_url(server), {"Origin": "https://evil.example"}
            )
            assert status == 403
            status, body, _ = await refused_upgrade(
                http, ws_url(server), {"Authorization": f"Bearer {TOKENS[1]}"}
            )
            assert (status, body["error"]["code"]) == (503, "session_limit_reached")
    assert fake_upstream.connection_attempts == 1


# ---------------------------------------------------------------------------------------------
# Secrets never leak


async def test_key_and_tokens_never_appear_in_events_logs_info_metrics_or_sessions(
    secured_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    captured_logs: list[str],
) -> None:
    secrets = (TEST_KEY, *TOKENS, ADMIN)
    fake_upstream.behaviour = echo
    seen: list[str] = []
    async with running_bridge(**secured_env, SESSION_IDLE_TIMEOUT_S="5") as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with http.ws_connect(
            ws_url(server, query=f"?token={TOKENS[0]}"),
            protocols=("realtime", f"openai-insecure-api-key.{TOKENS[1]}"),
            headers={"Authorization": f"Bearer {TOKENS[1]}", "Origin": APP_ORIGIN},
        ) as ws:
            seen.append(str(ws._response.headers))
            await fake_upstream.next_session()
            for frame in (
                '{"type":"session.update","session":{"type":"realtime"}}',
                "not json at all",
                '{"no":"type"}',
                '{"type":"input_audio_buffer.append","audio":"!!not-base64!!"}',
            ):
                await ws.send_str(frame)
                seen.append((await asyncio.wait_for(ws.receive(), 5)).data)
            for path in ("/info", "/health", "/metrics", "/sessions", "/nope"):
                async with http.get(
                    base + path, headers={"Authorization": f"Bearer {ADMIN}"}
                ) as response:
                    seen.append(f"{path} {response.status} {response.headers} ")
                    seen.append(await response.text())
            sessions = await (
                await http.get(base + "/sessions", headers={"Authorization": f"Bearer {ADMIN}"})
            ).json()
            assert len(sessions["sessions"]) == 1
            # Failed admin calls do not echo what was presented either.
            async with http.get(
                base + "/sessions", headers={"Authorization": "Bearer guess-admin-999"}
            ) as response:
                assert response.status == 401
                body = await response.text()
                assert "guess-admin-999" not in body
                seen.append(body)
        # An upstream failure's error text must not carry the key either.
        await fake_upstream.stop()
        async with http.ws_connect(ws_url(server, query=f"?token={TOKENS[0]}")) as ws:
            event = await receive_json(ws)
            assert event["error"]["code"] == "upstream_unavailable"
            seen.append(orjson.dumps(event).decode())
        await wait_for_sessions(server, 0)
    everything = "\n".join(seen)
    logs = "".join(captured_logs)
    assert "session start" in logs
    for secret in secrets:
        assert secret not in everything
        assert secret not in logs
        assert base64.b64encode(secret.encode()).decode() not in everything


async def test_a_real_bridge_process_never_logs_key_or_tokens(
    fake_upstream: FakeUpstream, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Started like the README says (debug, JSON logs); its whole stderr is checked."""
    fake_upstream.behaviour = echo
    wrong = "tok-wrong-31337abc"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WS_PORT": "0",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "UPSTREAM": "openai",
        "OPENAI_API_KEY": TEST_KEY,
        "OPENAI_REALTIME_URL": fake_upstream.url,
        "BRIDGE_API_KEYS": ",".join(TOKENS),
        "BRIDGE_ADMIN_TOKEN": ADMIN,
    }
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "realtime_bridge",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert proc.stdout is not None
            ready = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            match = re.search(r"ws://127\.0\.0\.1:(\d+) http://127\.0\.0\.1:(\d+)", ready)
            assert match, ready
            ws_base = f"ws://127.0.0.1:{match.group(1)}/v1/realtime"
            http_base = f"http://127.0.0.1:{match.group(2)}"
            seen = [ready]
            for kwargs in (
                {"protocols": (f"openai-insecure-api-key.{TOKENS[0]}",)},  # aiohttp warns
                {"headers": {"Authorization": f"Bearer {TOKENS[1]}"}},
            ):
                async with http.ws_connect(ws_base + f"?x={wrong}", **kwargs) as ws:  # type: ignore[arg-type]
                    await fake_upstream.next_session()
                    await ws.send_str('{"type":"x.debug","note":"hello"}')
                    seen.append((await asyncio.wait_for(ws.receive(), 5)).data)
                    await ws.send_str("not json")
                    seen.append((await asyncio.wait_for(ws.receive(), 5)).data)
                    admin = {"Authorization": f"Bearer {ADMIN}"}
                    for path in ("/sessions", "/info", "/metrics", "/health"):
                        async with http.get(http_base + path, headers=admin) as response:
                            seen.append(await response.text())
            for kwargs in (
                {"protocols": ("realtime", f"openai-insecure-api-key.{wrong}")},
                {"headers": {"Authorization": f"Bearer {wrong}"}},
                {"headers": {"Authorization": f"Bearer {ADMIN}"}},
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await http.ws_connect(ws_base + f"?token={wrong}", **kwargs)  # type: ignore[arg-type]
            async with http.get(
                http_base + "/sessions", headers={"Authorization": f"Bearer {wrong}"}
            ) as response:
                assert response.status == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    logs = stderr_path.read_text()
    assert '"message": "session start"' in logs or '"message":"session start"' in logs
    assert "client_token" in logs
    for secret in (TEST_KEY, *TOKENS, ADMIN, wrong):
        assert secret not in logs, secret
        assert secret not in "\n".join(seen), secret
    assert "Traceback" not in logs
