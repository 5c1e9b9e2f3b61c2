"""The HTTP API as a client meets it: /health, /info, JSON errors, one listener or two."""

from __future__ import annotations

import aiohttp

from realtime_bridge import __version__
from realtime_bridge.server.app import BridgeServer
from tests.conftest import TEST_KEY, running_bridge
from tests.fakes import FakeUpstream


def http_url(server: BridgeServer, path: str) -> str:
    return f"http://127.0.0.1:{server.http_port}{path}"


async def test_health(bridge: BridgeServer, http: aiohttp.ClientSession) -> None:
    async with http.get(http_url(bridge, "/health")) as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ok"
    assert body["sessions"] == 0
    assert isinstance(body["uptime_s"], float)
    assert (body["store"], body["store_ok"]) == ("memory", True)  # no REDIS_URL


async def test_info_has_the_documented_shape_and_no_secret(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.get(http_url(bridge, "/info")) as response:
        assert response.status == 200
        text = await response.text()
        body = await response.json()
    assert body["name"] == "realtime-bridge"
    assert body["version"] == __version__
    assert body["upstream"] == {
        "kind": "openai",
        "url": fake_upstream.url,
        "model": "gpt-realtime",
    }
    assert body["listeners"] == {
        "ws": f"ws://127.0.0.1:{bridge.ws_port}",
        "http": f"http://127.0.0.1:{bridge.http_port}",
    }
    assert "audio/pcmu" in body["audio_formats"]
    assert body["sessions"] == {"active": 0, "max": 100}
    assert TEST_KEY not in text
    assert TEST_KEY[:8] not in text  # not even a prefix


async def test_unknown_path_and_wrong_method_are_json(
    bridge: BridgeServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(http_url(bridge, "/nope")) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with http.post(http_url(bridge, "/health")) as response:
        assert response.status == 405
        body = await response.json()
        assert body["error"]["code"] == "method_not_allowed"
        assert body["error"]["message"]


async def test_plain_get_on_the_websocket_path_explains_itself(
    bridge: BridgeServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"http://127.0.0.1:{bridge.ws_port}/v1/realtime") as response:
        assert response.status == 426
        assert (await response.json())["error"]["code"] == "upgrade_required"


async def test_two_listeners_when_ports_differ(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    from tests.fakes import closed_port

    ws_port, http_port = closed_port(), closed_port()
    async with running_bridge(**openai_env, WS_PORT=ws_port, HTTP_PORT=http_port) as server:
        assert (server.ws_port, server.http_port) == (ws_port, http_port)
        async with http.get(f"http://127.0.0.1:{http_port}/health") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{ws_port}/health") as response:
            assert response.status == 404  # the WebSocket listener serves no HTTP API
        async with http.ws_connect(f"ws://127.0.0.1:{ws_port}/v1/realtime"):
            await fake_upstream.next_session()
            async with http.get(f"http://127.0.0.1:{http_port}/health") as response:
                assert (await response.json())["sessions"] == 1


async def test_one_listener_serves_both_when_ports_are_equal(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env) as server:  # WS_PORT == HTTP_PORT == 0
        assert server.ws_port == server.http_port
        async with http.get(f"http://127.0.0.1:{server.ws_port}/info") as response:
            assert response.status == 200
        async with http.ws_connect(f"ws://127.0.0.1:{server.ws_port}/"):
            await fake_upstream.next_session()


async def test_demo_page_and_favicon_are_served(
    openai_env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    from tests.fakes import closed_port

    async with running_bridge(**openai_env) as single:  # "/" shared with the WebSocket
        async with http.get(f"http://127.0.0.1:{single.http_port}/") as response:
            assert response.status == 200
            assert "text/html" in response.headers["Content-Type"]
    async with running_bridge(**openai_env, WS_PORT=closed_port(), HTTP_PORT=closed_port()) as two:
        async with http.get(f"http://127.0.0.1:{two.http_port}/") as response:
            assert response.status == 200
            page = await response.text()
        assert "<script" in page
        for external in ('src="http', "src='http", 'href="http', "href='http", "//cdn", "@import"):
            assert external not in page  # nothing loaded from outside the bridge
        async with http.get(f"http://127.0.0.1:{two.http_port}/favicon.ico") as response:
            assert response.status == 200
