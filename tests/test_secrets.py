"""The OpenAI key never reaches a client, an HTTP answer or a log line."""

from __future__ import annotations

import aiohttp

from realtime_bridge.server.app import BridgeServer
from tests.conftest import TEST_KEY, running_bridge
from tests.fakes import FakeUpstream, UpstreamSession, closed_port


async def test_key_never_visible_to_clients_http_or_logs(
    captured_logs: list[str],
    openai_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
) -> None:
    async def chatty(session: UpstreamSession) -> None:
        await session.ws.send_str('{"type":"session.created","session":{}}')
        await session.ws.close(code=3000, message=b"invalid_api_key")

    fake_upstream.behaviour = chatty
    seen: list[str] = []
    async with running_bridge(**openai_env) as server:
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/v1/realtime") as ws:
            await ws.send_str("not json")
            await ws.send_str('{"type":"x"}')
            async for msg in ws:
                seen.append(str(msg.data))
        for path in ("/health", "/info", "/nope"):
            async with http.get(f"http://127.0.0.1:{server.http_port}{path}") as response:
                seen.append(await response.text())
                seen.append(str(dict(response.headers)))
    # An unreachable upstream: its error message goes to the client and to the logs.
    env = dict(openai_env, OPENAI_REALTIME_URL=f"ws://127.0.0.1:{closed_port()}/v1/realtime")
    async with (
        running_bridge(**env) as server,
        http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/v1/realtime") as ws,
    ):
        async for msg in ws:
            seen.append(str(msg.data))
    assert seen
    everything = "\n".join(seen + captured_logs)
    assert "session start" in everything
    assert "session end" in everything
    assert TEST_KEY not in everything
    assert TEST_KEY[8:20] not in everything


async def test_redaction_catches_a_key_that_slips_into_a_log_line(
    captured_logs: list[str],
) -> None:
    from realtime_bridge.observability import get_logger

    get_logger("test").warning("oops %s", f"Bearer {TEST_KEY}")
    try:
        raise ValueError(f"bad key {TEST_KEY}")
    except ValueError:
        get_logger("test").exception("failure")
    text = "".join(captured_logs)
    assert "[REDACTED]" in text
    assert TEST_KEY not in text


async def test_session_lines_carry_the_session_id(
    captured_logs: list[str],
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
) -> None:
    async with http.ws_connect(f"ws://127.0.0.1:{bridge.ws_port}/v1/realtime") as ws:
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        await fake_upstream.next_session()
    assert await bridge.registry.wait_empty(2.0)  # the end line is logged as the session leaves
    lines = [line for line in captured_logs if "session start" in line or "session end" in line]
    assert len(lines) == 2
    assert all(f"session_id={session_id}" in line for line in lines)
    end = lines[1]
    for field in ("duration_s=", "close_code=", "bytes_in=", "events_in=", "reason="):
        assert field in end
