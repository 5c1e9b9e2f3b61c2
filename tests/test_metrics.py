"""/metrics through prometheus-client, per-session usage in the logs, and JSON log lines."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime_bridge.observability import setup_logging
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import TEST_KEY, running_bridge
from tests.fakes import FakeUpstream, receive_json


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: aiohttp.ClientSession, server: BridgeServer) -> str:
    async with http.get(f"http://127.0.0.1:{server.http_port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return await response.text()


async def run_text_turn(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    await ws.send_str(
        orjson.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Count my tokens"}],
                },
            }
        ).decode()
    )
    await ws.send_str('{"type":"response.create","response":{"output_modalities":["audio"]}}')
    while True:
        event = await receive_json(ws)
        if event["type"] == "response.done":
            return event


async def test_metrics_count_sessions_events_latency_audio_tokens_and_errors(
    http: aiohttp.ClientSession,
) -> None:
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local") as server:
        url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime"
        async with http.ws_connect(url) as ws:
            session_id = ws._response.headers["X-Bridge-Session-Id"]
            await receive_json(ws)  # session.created
            await ws.send_str("not json")
            assert (await receive_json(ws))["error"]["code"] == "invalid_json"
            await ws.send_str('{"type":"made.up.event"}')
            await ws.send_str(
                orjson.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(bytes(4800)).decode(),
                    }
                ).decode()
            )
            done = await run_text_turn(ws)
            live = samples(await scrape(http, server))
            assert value(live, "realtime_bridge_sessions_active") == 1
        assert await server.registry.wait_empty(2)
        text = await scrape(http, server)
    metrics = samples(text)
    assert session_id not in text
    assert value(metrics, "realtime_bridge_sessions_active") == 0
    assert (
        value(
            metrics, "realtime_bridge_sessions_total", outcome="client_closed", close_class="normal"
        )
        == 1
    )
    assert (
        value(metrics, "realtime_bridge_events_total", direction="client_to_upstream", type="other")
        == 1
    )
    assert (
        value(
            metrics, "realtime_bridge_events_total", direction="client_to_upstream", type="invalid"
        )
        == 1
    )
    assert (
        value(
            metrics,
            "realtime_bridge_events_total",
            direction="upstream_to_client",
            type="response.done",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "realtime_bridge_bytes_total",
            direction="upstream_to_client",
            type="response.output_audio.delta",
        )
        > 10000
    )
    assert value(metrics, "realtime_bridge_errors_total", code="invalid_json") == 1
    assert (
        value(
            metrics, "realtime_bridge_relay_latency_seconds_count", direction="upstream_to_client"
        )
        > 10
    )
    assert value(metrics, "realtime_bridge_upstream_connect_seconds_count") == 1
    assert value(
        metrics,
        "realtime_bridge_audio_seconds_total",
        direction="client_to_upstream",
        format="pcm16@24000",
    ) == pytest.approx(0.1)
    assert (
        value(
            metrics,
            "realtime_bridge_audio_seconds_total",
            direction="upstream_to_client",
            format="pcm16@24000",
        )
        > 0.2
    )
    usage = done["response"]["usage"]  # type: ignore[index]
    assert (
        value(metrics, "realtime_bridge_tokens_total", kind="output_tokens")
        == usage["output_tokens"]
    )
    assert (
        value(metrics, "realtime_bridge_tokens_total", kind="output_audio_tokens")
        == usage["output_token_details"]["audio_tokens"]
    )


async def test_refused_and_failed_sessions_are_counted(
    http: aiohttp.ClientSession, openai_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    async with running_bridge(
        **openai_env, MAX_SESSIONS="1", SESSION_IDLE_TIMEOUT_S="0.2"
    ) as server:
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/") as ws:
            await fake_upstream.next_session()
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/")
            assert (await receive_json(ws))["error"]["code"] == "session_idle_timeout"
        assert await server.registry.wait_empty(2)
        text = await scrape(http, server)
    metrics = samples(text)
    assert value(metrics, "realtime_bridge_errors_total", code="session_limit_reached") == 1
    assert value(metrics, "realtime_bridge_errors_total", code="session_idle_timeout") == 1
    assert (
        value(
            metrics, "realtime_bridge_sessions_total", outcome="idle_timeout", close_class="normal"
        )
        == 1
    )
    assert TEST_KEY not in text


async def test_metrics_can_be_disabled(
    http: aiohttp.ClientSession, openai_env: dict[str, str]
) -> None:
    async with (
        running_bridge(**openai_env, METRICS_ENABLED="false") as server,
        http.get(f"http://127.0.0.1:{server.http_port}/metrics") as response,
    ):
        assert response.status == 404


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = setup_logging("debug", "json", [TEST_KEY], stream=stream)
    yield stream
    for name in ("realtime_bridge", "aiohttp"):
        logging.getLogger(name).removeHandler(handler)


async def test_json_logs_one_object_per_line_with_session_id_and_usage(
    json_log: io.StringIO, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(LocalUpstream(pace=0), UPSTREAM="local") as server:
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/") as ws:
            session_id = ws._response.headers["X-Bridge-Session-Id"]
            await receive_json(ws)
            await ws.send_str("{oops")
            assert (await receive_json(ws))["error"]["code"] == "invalid_json"
            await ws.send_str(
                orjson.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(bytes(9600)).decode(),
                    }
                ).decode()
            )
            await run_text_turn(ws)
        assert await server.registry.wait_empty(2)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines
    session_lines = [line for line in lines if line.get("session_id") == session_id]
    end = next(line for line in session_lines if line["message"] == "session end")
    assert end["usage"]["output_tokens"] > 0
    assert end["audio_in_s"] == pytest.approx(0.2)
    assert end["audio_out_s"] > 0
    assert end["protocol"] == "ga"
    errors = [line for line in session_lines if line["message"] == "client error"]
    assert [line["code"] for line in errors] == ["invalid_json"]
    relayed = [line for line in session_lines if line["message"] == "client → upstream"]
    appends = [line for line in relayed if line["type"] == "input_audio_buffer.append"]
    assert appends
    assert appends[0]["bytes"] > 12800  # the size is logged, the payload is not
    assert any(line["message"] == "upstream → client" for line in session_lines)
    debug_text = json_log.getvalue()
    # debug logs event types and sizes, never payloads: no base64 audio in the log.
    assert base64.b64encode(bytes(300)).decode() not in debug_text


def test_known_event_types_cover_both_protocols() -> None:
    """Bounded labels must still name every real event: GA (from the SDK) and beta."""
    from typing import get_args

    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

    from realtime_bridge.protocol.events import KNOWN_EVENT_TYPES
    from realtime_bridge.protocol.translate import BETA_SERVER_EVENTS

    ga_types = set()
    for union in (RealtimeClientEvent, RealtimeServerEvent):
        for member in get_args(get_args(union)[0]):
            ga_types.update(get_args(member.model_fields["type"].annotation))
    missing = (ga_types | set(BETA_SERVER_EVENTS)) - KNOWN_EVENT_TYPES
    assert len(ga_types) > 50
    assert not missing, missing


async def test_sessions_listing_carries_usage_and_audio_seconds(
    http: aiohttp.ClientSession,
) -> None:
    admin = "admin-token-for-usage"
    async with running_bridge(
        LocalUpstream(pace=0), UPSTREAM="local", BRIDGE_ADMIN_TOKEN=admin
    ) as server:
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/") as ws:
            await receive_json(ws)
            done = await run_text_turn(ws)
            async with http.get(
                f"http://127.0.0.1:{server.http_port}/sessions",
                headers={"Authorization": f"Bearer {admin}"},
            ) as response:
                (listed,) = (await response.json())["sessions"]
    usage = done["response"]["usage"]  # type: ignore[index]
    assert listed["usage"]["output_tokens"] == usage["output_tokens"]
    assert listed["usage"]["input_tokens"] == usage["input_tokens"]
    assert listed["audio_seconds"]["upstream_to_client"] > 0.2
    assert listed["protocol"] == "ga"


@pytest.mark.parametrize("metrics_enabled", ["true", "false"])
async def test_sessions_count_events_and_bytes_each_way_with_metrics_on_or_off(
    http: aiohttp.ClientSession,
    fake_upstream: FakeUpstream,
    openai_env: dict[str, str],
    metrics_enabled: str,
) -> None:
    """The per-session counters serve /sessions whether or not /metrics is exposed."""
    admin = "admin-token-for-counters"
    audio = base64.b64encode(bytes(960)).decode()
    appends = [
        f'{{"type":"input_audio_buffer.append","event_id":"e{i}","audio":"{audio}"}}'
        for i in range(3)
    ]
    events = ['{"type":"rate_limits.updated","rate_limits":[]}', '{"type":"made.up","x":1}']
    async with running_bridge(
        **openai_env, METRICS_ENABLED=metrics_enabled, BRIDGE_ADMIN_TOKEN=admin
    ) as server:
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/v1/realtime") as ws:
            upstream = await fake_upstream.next_session()
            for append in appends:
                await ws.send_str(append)
            assert [await upstream.next_text() for _ in appends] == appends
            for event in events:
                await upstream.ws.send_str(event)
            assert [orjson.loads(await ws.receive_str()) for _ in events] == [
                orjson.loads(e) for e in events
            ]
            async with http.get(
                f"http://127.0.0.1:{server.http_port}/sessions",
                headers={"Authorization": f"Bearer {admin}"},
            ) as response:
                (listed,) = (await response.json())["sessions"]
    assert listed["events"] == {"client_to_upstream": 3, "upstream_to_client": 2}
    assert listed["bytes"] == {
        "client_to_upstream": sum(len(a) for a in appends),
        "upstream_to_client": sum(len(e) for e in events),
    }
