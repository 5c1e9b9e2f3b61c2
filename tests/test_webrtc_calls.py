"""WebRTC signalling: the API's shapes, refusals before any upstream connection, CORS, hangup,
every upstream kind, and the data channel's size limit."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import running_bridge, upstream_env
from tests.fakes import FakeUpstream, running_fake_upstream
from tests.test_client_secrets import ADMIN, SERVER_TOKEN, bridge_env, mint
from tests.webrtc_caller import Caller, silence, speech_48k

pytestmark = pytest.mark.timeout(90)

PAGE = "https://app.example"
CALL_ENV = {"WEBRTC_PUBLIC_ADDRESS": "127.0.0.1", "ALLOWED_ORIGINS": PAGE, **bridge_env()}


def calls_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/realtime/calls"


async def appended_audio(session: Any, seconds: float) -> bytes:
    """The first ``seconds`` of audio the upstream received in appends (PCM16 at 24 kHz)."""
    audio = bytearray()
    while len(audio) < seconds * 48000:
        event = orjson.loads(await session.next_text(timeout=10))
        if event.get("type") == "input_audio_buffer.append":
            chunk = base64.b64decode(event["audio"])
            assert chunk  # never an empty append
            audio += chunk
    return bytes(audio)


async def test_refused_calls_open_no_upstream_connection(fake_upstream: FakeUpstream) -> None:
    env = {**upstream_env(fake_upstream.url), **CALL_ENV}
    async with running_bridge(**env) as server, aiohttp.ClientSession() as http:
        url = calls_url(server.http_port)
        secret = (await mint(server))["value"]
        probe = Caller()  # a real offer for the refused requests
        await probe.pc.setLocalDescription(await probe.pc.createOffer())
        sdp = probe.pc.localDescription.sdp
        await probe.close()
        sdp_headers = {"Content-Type": "application/sdp"}
        refusals = [
            ({"Authorization": "Bearer ek_not-a-real-secret"}, sdp, 401, "unauthorized"),
            ({"Authorization": "Bearer wrong-token"}, sdp, 401, "unauthorized"),
            ({}, sdp, 401, "unauthorized"),
            (
                {"Authorization": f"Bearer {secret}", "Origin": "https://evil.example"},
                sdp,
                403,
                "forbidden_origin",
            ),
            (
                {"Authorization": f"Bearer {secret}"},
                "v=0\r\nthis is not sdp\r\n",
                400,
                "invalid_offer",
            ),
            (
                {"Authorization": f"Bearer {secret}"},
                sdp.replace("m=audio", "m=video"),
                400,
                "invalid_offer",
            ),
            ({"Authorization": f"Bearer {secret}"}, "", 400, "invalid_offer"),
        ]
        for headers, body, status, code in refusals:
            async with http.post(url, data=body, headers={**sdp_headers, **headers}) as response:
                assert response.status == status, (headers, await response.text())
                document = await response.json()
                assert document["error"]["code"] == code
                assert "ek_" not in document["error"]["message"]
        assert fake_upstream.connection_attempts == 0
        assert len(server.registry) == 0
        # An offer with the secret is answered, and only then is the upstream dialled.
        caller = Caller()
        answer = await caller.call(url, token=secret, headers={"Origin": PAGE})
        assert answer.status == 201, answer.body
        upstream = await fake_upstream.next_session()
        assert fake_upstream.connection_attempts == 1
        assert upstream.handshake.query["model"] == "gpt-realtime"
        assert answer.headers["Access-Control-Allow-Origin"] == PAGE
        assert "Location" in answer.headers["Access-Control-Expose-Headers"]
        assert re.fullmatch(r"/v1/realtime/calls/rtc_[\w-]+", answer.headers["Location"])
        async with asyncio.timeout(10):
            await caller.channel_open.wait()
        await caller.close()


async def test_the_preflight_allows_the_sdk_headers_for_allowed_origins_only() -> None:
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local", **CALL_ENV) as server:
        async with aiohttp.ClientSession() as http:
            asked = "authorization,content-type,x-openai-agents-sdk"
            preflight = {
                "Origin": PAGE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
            }
            async with http.options(calls_url(server.http_port), headers=preflight) as response:
                assert response.status == 204
                assert response.headers["Access-Control-Allow-Origin"] == PAGE
                assert "POST" in response.headers["Access-Control-Allow-Methods"]
                allowed = response.headers["Access-Control-Allow-Headers"].lower()
                assert all(h in allowed for h in asked.split(","))
            evil = {**preflight, "Origin": "https://evil.example"}
            async with http.options(calls_url(server.http_port), headers=evil) as response:
                assert response.status == 403
                assert "Access-Control-Allow-Origin" not in response.headers
            async with http.get(f"http://127.0.0.1:{server.http_port}/info") as response:
                info = await response.json()
            assert info["webrtc"]["enabled"] is True
            assert info["webrtc"]["public_address"] == "127.0.0.1"
    async with (
        running_bridge(LocalUpstream(pace=0), UPSTREAM="local", WEBRTC_ENABLED="false") as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"http://127.0.0.1:{server.http_port}/info") as response:
            assert (await response.json())["webrtc"] == {"enabled": False}
        async with http.post(calls_url(server.http_port), data="v=0\r\n") as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "webrtc_disabled"


@pytest.mark.parametrize("kind", ["openai", "azure"])
async def test_every_upstream_kind_gets_the_callers_audio_as_appends(kind: str) -> None:
    async with running_fake_upstream() as fake:
        if kind == "openai":
            env = upstream_env(fake.url)
        else:
            env = {
                "UPSTREAM": "azure",
                "AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{fake.port}",
                "AZURE_OPENAI_API_KEY": "azure-test-key",
                "AZURE_OPENAI_DEPLOYMENT": "my-realtime",
            }
        async with running_bridge(**env, WEBRTC_PUBLIC_ADDRESS="127.0.0.1") as server:
            caller = Caller()
            answer = await caller.call(calls_url(server.http_port))
            assert answer.status == 201, answer.body
            upstream = await fake.next_session()
            if kind == "azure":
                assert upstream.handshake.path == "/openai/v1/realtime"
                assert upstream.handshake.headers["api-key"] == "azure-test-key"
            caller.say(speech_48k())
            # Two seconds of the caller's speech, resampled from the Opus track's 48 kHz.
            audio = np.frombuffer(await appended_audio(upstream, 2.0), "<i2").astype(float)
            assert np.sqrt((audio**2).mean()) > 300  # speech, not silence
            await upstream.ws.send_str(
                orjson.dumps({"type": "session.created", "session": {}}).decode()
            )
            await caller.wait_for("session.created")
            await caller.close()


async def test_hangup_ends_the_upstream_within_a_second(fake_upstream: FakeUpstream) -> None:
    env = {**upstream_env(fake_upstream.url), **CALL_ENV}
    async with running_bridge(**env) as server, aiohttp.ClientSession() as http:
        secret = (await mint(server))["value"]
        other = (await mint(server))["value"]
        caller = Caller()
        answer = await caller.call(calls_url(server.http_port), token=secret)
        assert answer.status == 201, answer.body
        upstream = await fake_upstream.next_session()
        hangup = f"http://127.0.0.1:{server.http_port}{answer.headers['Location']}/hangup"
        async with http.post(hangup, headers={"Authorization": f"Bearer {other}"}) as response:
            assert response.status == 401  # another page's secret cannot end this call
        assert not upstream.closed.is_set()
        async with http.post(hangup, headers={"Authorization": f"Bearer {secret}"}) as response:
            assert response.status == 200
            assert await response.json() == {}
        async with asyncio.timeout(1.0):
            await upstream.closed.wait()
        assert await server.registry.wait_for_count(0, 2.0)
        async with http.post(hangup, headers={"Authorization": f"Bearer {SERVER_TOKEN}"}) as gone:
            assert gone.status == 404
            assert (await gone.json())["error"]["code"] == "call_not_found"
        await caller.close()


async def test_admin_delete_and_listing_see_a_call_like_any_session() -> None:
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local", **CALL_ENV) as server:
        caller = Caller()
        answer = await caller.call(calls_url(server.http_port), token=SERVER_TOKEN)
        assert answer.status == 201, answer.body
        await caller.wait_for("session.created")
        admin = {"Authorization": f"Bearer {ADMIN}"}
        async with aiohttp.ClientSession(headers=admin) as http:
            base = f"http://127.0.0.1:{server.http_port}"
            async with http.get(f"{base}/sessions") as response:
                (listed,) = (await response.json())["sessions"]
            assert listed["client_kind"] == "webrtc"
            assert listed["call"]["call_id"] == answer.call_id
            async with http.delete(f"{base}/sessions/{listed['id']}") as response:
                assert response.status == 200
        expired = await caller.wait_for("error")
        assert expired["error"]["code"] == "session_expired"
        assert await server.registry.wait_for_count(0, 3.0)
        await caller.close()


async def test_a_backend_multipart_call_sets_the_session_and_the_policy_still_binds() -> None:
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local", **CALL_ENV) as server:
        caller = Caller()
        session = {"type": "realtime", "instructions": "Answer as a pirate."}
        answer = await caller.call(calls_url(server.http_port), token=SERVER_TOKEN, session=session)
        assert answer.status == 201, answer.body
        updated = await caller.wait_for("session.updated")
        assert updated["session"]["instructions"] == "Answer as a pirate."
        await caller.close()
    # A secret's pinned instructions hold over the data channel too.
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local", **CALL_ENV) as server:
        secret = (await mint(server, instructions="pinned"))["value"]
        caller = Caller()
        assert (await caller.call(calls_url(server.http_port), token=secret)).status == 201
        async with asyncio.timeout(10):
            await caller.channel_open.wait()
        caller.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}
        )
        refused = await caller.wait_for("error")
        assert refused["error"]["code"] == "session_field_locked"
        await caller.close()


async def test_an_event_over_the_channels_size_limit_is_shortened_not_sent_whole() -> None:
    """The browser SDK asks for each input item after its transcription; the item carries the
    whole input audio, past Chromium's 256 KiB. The caller gets it without the audio."""
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local", **CALL_ENV) as server:
        caller = Caller()

        def small_limit(sdp: str) -> str:
            return sdp.replace("a=max-message-size:262144", "a=max-message-size:65536")

        answer = await caller.call(
            calls_url(server.http_port), token=SERVER_TOKEN, edit_offer=small_limit
        )
        assert answer.status == 201, answer.body
        await caller.wait_for("session.created")
        caller.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                },
            }
        )
        await caller.wait_for("session.updated")
        caller.say(speech_48k() + silence(1.5))
        committed = await caller.wait_for("input_audio_buffer.committed", within_s=20)
        caller.send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        retrieved = await caller.wait_for("conversation.item.retrieved", within_s=10)
        part = retrieved["item"]["content"][0]
        assert part["type"] == "input_audio"
        assert part["audio"] == ""
        assert part["audio_omitted_by_bridge"] > 65536  # the base64 characters left out
        assert part.get("transcript")  # the rest of the item is there
        await caller.close()


async def test_a_policy_limit_refuses_a_call_with_429_before_its_upstream(
    fake_upstream: FakeUpstream, tmp_path: Any
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nsessions_per_minute = 1\n")
    env = {**upstream_env(fake_upstream.url), "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1"}
    async with running_bridge(**env, BRIDGE_POLICY_FILE=str(policy)) as server:
        first = Caller()
        assert (await first.call(calls_url(server.http_port))).status == 201
        await fake_upstream.next_session()
        async with asyncio.timeout(10):
            await first.channel_open.wait()
        second = Caller()
        refused = await second.call(calls_url(server.http_port))
        assert refused.status == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert fake_upstream.connection_attempts == 1
        await second.close()
        await first.close()
