"""The demo page over WebRTC in real headless Chromium against a real bridge process (issue 26).

By default the page offers an Opus track and the ``oai-events`` data channel to its own bridge
(``POST /v1/realtime/calls``), plays the answer's track in an ``<audio>`` element and shows the
data channel's events; it says which transport it uses (``#transport-state``), and falls back to
the WebSocket where the bridge offers no WebRTC. Waits are on the page's own state with
timeouts, never sleeps.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import BridgeProcess, free_port, playwright_sync, run_bridge
from tests.browser.demo_page import (
    CONNECT_TIMEOUT_MS,
    Console,
    open_page,
    push_to_talk_turn,
    stats,
    wait_connected,
)

Page = playwright_sync.Page
expect = playwright_sync.expect

ADMIN = "admin-token-for-demo-webrtc"
VOICE_TIMEOUT_MS = 25_000
WEBRTC_ENV = {"WEBRTC_PUBLIC_ADDRESS": "127.0.0.1", "BRIDGE_ADMIN_TOKEN": ADMIN}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """Two listeners, WebRTC on (the default) announcing 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("bridge-demo-webrtc")
    with run_bridge(workdir, HTTP_PORT=str(free_port()), **WEBRTC_ENV) as proc:
        yield proc


def event_types(page: Page) -> list[str]:
    return list(page.evaluate("() => window.bridgeDemo.events.map(e => e.type)"))


def sessions(bridge: BridgeProcess) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{bridge.http_url}/sessions")
    request.add_header("Authorization", f"Bearer {ADMIN}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read())["sessions"])


def test_connects_over_webrtc_by_default_and_says_so(page: Page, bridge: BridgeProcess) -> None:
    console = Console(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    open_page(page, bridge.http_url + "/")
    transport = page.locator("#transport-state")
    expect(transport).to_have_text("Transport: –")
    assert page.locator("#transport").input_value() == "auto"
    page.select_option("#mode", "text")
    page.click("#connect")
    wait_connected(page)
    expect(transport).to_have_text("Transport: WebRTC")
    expect(transport).to_have_attribute("data-transport", "webrtc")
    expect(transport).to_be_visible()
    s = stats(page)
    assert s["transport"] == "webrtc"
    assert s["fallbackReason"] is None
    call_id = s["callId"]
    assert isinstance(call_id, str)
    assert call_id.startswith("rtc_")
    listed = [x for x in sessions(bridge) if x.get("client_kind") == "webrtc"]
    assert [x["call"]["call_id"] for x in listed] == [call_id]
    assert f"{bridge.http_url}/v1/realtime/calls" in requested  # the page's own origin

    # the data channel carries the conversation: a typed message gets its answer
    page.fill("#text", "What is the capital of Portugal?")
    page.click("#send")
    assistant = page.locator('#transcript li[data-role="assistant"] .text')
    expect(assistant.first).not_to_have_text("")
    page.wait_for_function("() => window.bridgeDemo.stats.audioPlayedMs > 0")
    page.wait_for_function("() => window.bridgeDemo.stats.audioAudibleMs > 0")  # not silence
    s = stats(page)
    assert s["rttMs"] is not None  # session.update → session.updated over the data channel
    assert s["answerLatencyMs"] is not None
    assert s["errors"] == []
    types = event_types(page)
    assert "output_audio_buffer.started" in types
    assert "response.output_audio.delta" not in types  # the answer's audio is on the track
    assert all(url.startswith(bridge.http_url) for url in requested), requested

    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text("Disconnected")
    expect(transport).to_have_text("Transport: –")
    assert console.errors == []


def test_a_voice_turn_over_webrtc(page: Page, bridge: BridgeProcess) -> None:
    """Fake microphone (speech bursts and silence) on the Opus track: the bridge's VAD takes the
    turn, the transcript shows, the spoken answer is audible at the page, and the next burst
    interrupts it (the bridge stops the track and truncates the item)."""
    console = Console(page)
    open_page(page, bridge.http_url + "/")
    assert page.locator("#mode").input_value() == "vad"
    page.click("#connect")
    wait_connected(page)
    expect(page.locator("#transport-state")).to_have_text("Transport: WebRTC")
    expect(page.locator("#mic-state")).to_have_attribute("data-state", "listening")
    timeout = {"timeout": VOICE_TIMEOUT_MS}
    page.wait_for_function("() => window.bridgeDemo.stats.audioSentMs > 0", **timeout)
    page.wait_for_function("() => window.bridgeDemo.stats.turns >= 1", **timeout)
    user = page.locator('#transcript li[data-role="user"]')
    expect(user.first).not_to_have_attribute("data-pending", "true", **timeout)
    expect(user.first.locator(".text")).not_to_have_text("", **timeout)
    assistant = page.locator('#transcript li[data-role="assistant"] .text')
    expect(assistant.first).not_to_have_text("", **timeout)
    # audible at the page: the answer's track, measured after the browser decoded it
    page.wait_for_function("() => window.bridgeDemo.stats.audioAudibleMs >= 300", **timeout)
    page.wait_for_function(
        "() => window.bridgeDemo.stats.truncates.length > 0", **timeout
    )  # the next burst interrupted the answer

    s = stats(page)
    types = event_types(page)
    assert "conversation.item.input_audio_transcription.completed" in types
    assert "input_audio_buffer.append" not in types  # the microphone is the track
    assert "response.output_audio.delta" not in types
    assert "output_audio_buffer.cleared" in types
    for t in s["truncates"]:
        assert t["byBridge"] is True, t
        # the bridge cut the item at what it had put on the track, which is what played here
        # (from output_audio_buffer.started to .cleared), give or take the events' transit
        assert 0 <= t["audioEndMs"] <= t["receivedMs"] + 60, t
        assert abs(t["audioEndMs"] - t["playedMs"]) <= 60, t
        assert 0 < t["audibleMs"] <= t["playedMs"] + 60, t
    assert s["speechStarted"] >= 2
    assert s["audioReceivedMs"] >= s["audioPlayedMs"] > 0
    assert s["audioPlayedMs"] + 60 >= s["audioAudibleMs"] > 0
    assert s["errors"] == [], s["errors"]
    assert console.errors == []
    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text("Disconnected")


def test_push_to_talk_over_webrtc(page: Page, bridge: BridgeProcess) -> None:
    console = Console(page)
    open_page(page, bridge.http_url + "/")
    page.select_option("#mode", "ptt")
    page.click("#connect")
    wait_connected(page)
    expect(page.locator("#transport-state")).to_have_text("Transport: WebRTC")
    push_to_talk_turn(page, 1500, VOICE_TIMEOUT_MS)
    s = stats(page)
    assert s["speechStarted"] == 0  # no server VAD in push-to-talk
    assert s["turns"] == 1
    assert s["errors"] == [], s["errors"]
    page.click("#disconnect")
    assert console.errors == []


def test_falls_back_to_the_websocket_when_the_bridge_has_no_webrtc(
    page: Page, tmp_path: Path
) -> None:
    """WEBRTC_ENABLED=false (``/info`` says so; an offer would get 503): the page talks over
    the WebSocket, and says so."""
    with run_bridge(tmp_path / "no-webrtc", WEBRTC_ENABLED="false", **WEBRTC_ENV) as proc:
        console = Console(page)
        open_page(page, proc.http_url + "/")
        page.click("#connect")  # hands-free: the fake microphone speaks
        wait_connected(page)
        transport = page.locator("#transport-state")
        expect(transport).to_contain_text("Transport: WebSocket")
        expect(transport).to_contain_text("WebRTC is off on this bridge")
        expect(transport).to_have_attribute("data-transport", "websocket")
        s = stats(page)
        assert s["transport"] == "websocket"
        assert s["fallbackReason"] == "WebRTC is off on this bridge"
        assert s["callId"] is None
        # the conversation works as it always did on the WebSocket
        timeout = {"timeout": VOICE_TIMEOUT_MS}
        page.wait_for_function("() => window.bridgeDemo.stats.audioSentMs > 0", **timeout)
        assistant = page.locator('#transcript li[data-role="assistant"] .text')
        expect(assistant.first).not_to_have_text("", **timeout)
        page.wait_for_function("() => window.bridgeDemo.stats.audioPlayedMs > 0", **timeout)
        assert "input_audio_buffer.append" in event_types(page)
        assert [x["client_kind"] for x in sessions(proc)] == ["realtime"]
        page.click("#disconnect")
        expect(page.locator("#status")).to_have_text("Disconnected")
        assert console.errors == []


def test_a_browser_without_webrtc_uses_the_websocket(page: Page, bridge: BridgeProcess) -> None:
    page.add_init_script("delete window.RTCPeerConnection")
    open_page(page, bridge.http_url + "/")
    page.select_option("#mode", "text")
    page.click("#connect")
    wait_connected(page)
    transport = page.locator("#transport-state")
    expect(transport).to_have_text("Transport: WebSocket (no WebRTC: this browser has no WebRTC)")
    page.fill("#text", "Hello")
    page.click("#send")
    expect(page.locator('#transcript li[data-role="assistant"] .text').first).not_to_have_text("")
    page.click("#disconnect")


def test_the_websocket_can_be_chosen(page: Page, bridge: BridgeProcess) -> None:
    open_page(page, bridge.http_url + "/?transport=websocket")
    assert page.locator("#transport").input_value() == "websocket"
    page.select_option("#mode", "text")
    page.click("#connect")
    wait_connected(page)
    expect(page.locator("#transport-state")).to_have_text("Transport: WebSocket")
    assert stats(page)["fallbackReason"] is None
    page.click("#disconnect")


def test_webrtc_with_a_client_secret_and_refusals_in_words(
    browser: playwright_sync.Browser, tmp_path: Path
) -> None:
    """BRIDGE_API_KEYS: no token is refused in words (no fallback: the WebSocket would be
    refused too); a typed bridge token is the Bearer credential; with DEMO_SECRETS the page's
    own ek_ secret is; a full bridge (MAX_SESSIONS) says it is busy."""
    token = "demo-token-123"
    env = {"BRIDGE_API_KEYS": token, "MAX_SESSIONS": "1", **WEBRTC_ENV}
    with run_bridge(tmp_path / "auth", **env) as proc:
        context = browser.new_context()
        try:
            first, second = context.new_page(), context.new_page()
            for p in (first, second):
                p.set_default_timeout(CONNECT_TIMEOUT_MS)
                open_page(p, proc.http_url + "/")
                p.select_option("#mode", "text")
            first.click("#connect")
            expect(first.locator("#alert")).to_contain_text("token")
            expect(first.locator("#status")).to_have_text("Not connected")
            assert stats(first)["fallbackReason"] is None
            first.fill("#token", token)
            first.click("#connect")
            wait_connected(first)
            expect(first.locator("#transport-state")).to_have_text("Transport: WebRTC")

            second.fill("#token", token)
            second.click("#connect")
            expect(second.locator("#alert")).to_contain_text("busy")
            expect(second.locator("#status")).to_have_text("Not connected")
            first.click("#disconnect")
        finally:
            context.close()
    assert token not in proc.log()

    env = {"BRIDGE_API_KEYS": "server-only-token-123", "DEMO_SECRETS": "true", **WEBRTC_ENV}
    with run_bridge(tmp_path / "demo-secrets", **env) as proc:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(CONNECT_TIMEOUT_MS)
            open_page(page, proc.http_url + "/")
            page.select_option("#mode", "text")
            page.click("#connect")
            wait_connected(page)
            expect(page.locator("#transport-state")).to_have_text("Transport: WebRTC")
            assert page.evaluate("() => window.bridgeDemo.usedDemoSecret") is True
            page.fill("#text", "Hello")
            page.click("#send")
            assistant = page.locator('#transcript li[data-role="assistant"] .text')
            expect(assistant.first).not_to_have_text("")
            page.click("#disconnect")
        finally:
            context.close()
    assert "server-only-token-123" not in proc.log()
