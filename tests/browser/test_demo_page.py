"""The demo page in real headless Chromium against a real bridge process (issue 9).

Waits are on the page's own state (``window.bridgeDemo.stats``, the DOM) with timeouts, never
sleeps. Set ``UPDATE_DEMO_SCREENSHOT=1`` to refresh ``docs/demo.png`` for the README.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser.conftest import REPO, BridgeProcess, free_port, playwright_sync, run_bridge
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

VOICE_TIMEOUT_MS = 20_000


def test_page_loads_clean_and_finds_the_websocket(page: Page, bridge: BridgeProcess) -> None:
    console = Console(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    favicon = page.request.get(f"{bridge.http_url}/favicon.ico")
    assert favicon.status == 200
    assert favicon.headers["content-type"] == "image/x-icon"
    missing = page.request.get(f"{bridge.http_url}/static/nope.js")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "not_found"

    open_page(page, bridge.http_url + "/")
    page.wait_for_load_state("networkidle")

    # two listeners: the address comes from /info, not from the page's own origin
    assert page.locator("#ws-url").input_value() == f"{bridge.ws_url}/v1/realtime"
    assert all(url.startswith(bridge.http_url) for url in requested), requested
    assert console.errors == []


def test_narrow_screen_and_keyboard_only(
    browser: playwright_sync.Browser, bridge: BridgeProcess
) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.set_default_timeout(CONNECT_TIMEOUT_MS)
    console = Console(page)
    try:
        open_page(page, bridge.http_url + "/")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        # every control has an accessible name
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, button')]
                 .filter(el => !(el.labels && el.labels.length) && !el.textContent.trim()
                               && !el.getAttribute('aria-label'))
                 .map(el => el.id)"""
        )
        assert unlabeled == []

        # keyboard only: Tab to the mode, pick "text only", Tab on to Connect, press Enter
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "mode":
                break
        page.keyboard.press("End")  # last option: text only
        assert page.locator("#mode").input_value() == "text"
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "connect"
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"  # visible focus
        page.keyboard.press("Enter")
        wait_connected(page)

        # type a message with the keyboard too
        page.locator("#text").focus()
        page.keyboard.type("Hello from the keyboard")
        page.keyboard.press("Enter")
        assistant = page.locator('#transcript li[data-role="assistant"] .text')
        expect(assistant.first).not_to_have_text("")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        assert console.errors == []
    finally:
        context.close()


def test_typed_message_gets_an_answer(page: Page, bridge: BridgeProcess) -> None:
    console = Console(page)
    open_page(page, bridge.http_url + "/")
    page.select_option("#mode", "text")
    page.click("#connect")
    wait_connected(page)
    page.fill("#text", "What is the capital of Portugal?")
    page.click("#send")
    user = page.locator('#transcript li[data-role="user"] .text')
    expect(user.first).to_have_text("What is the capital of Portugal?")
    assistant = page.locator('#transcript li[data-role="assistant"] .text')
    expect(assistant.first).not_to_have_text("")
    page.wait_for_function("() => window.bridgeDemo.stats.audioPlayedMs > 0")
    s = stats(page)
    assert s["rttMs"] is not None
    assert s["answerLatencyMs"] is not None
    assert s["errors"] == []
    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text("Disconnected")
    assert console.errors == []


def test_voice_turns_playback_and_barge_in(
    page: Page, bridge: BridgeProcess, tmp_path: Path
) -> None:
    """Fake microphone (speech bursts and silence): server VAD turns, the assistant's spoken
    answer is played, and the next burst interrupts it with a truncate that stays within the
    audio actually received."""
    console = Console(page)
    open_page(page, bridge.http_url + "/?transport=websocket")
    assert page.locator("#mode").input_value() == "vad"
    page.click("#connect")
    wait_connected(page)
    timeout = {"timeout": VOICE_TIMEOUT_MS}
    page.wait_for_function("() => window.bridgeDemo.stats.audioSentMs > 0", **timeout)
    page.wait_for_function("() => window.bridgeDemo.stats.turns >= 1", **timeout)
    page.wait_for_function("() => window.bridgeDemo.stats.audioPlayedMs > 0", **timeout)
    page.wait_for_function(
        "() => window.bridgeDemo.events.some(e => e.type === 'conversation.item.truncated')",
        **timeout,
    )
    assistant = page.locator('#transcript li[data-role="assistant"] .text')
    expect(assistant.first).not_to_have_text("", **timeout)
    user = page.locator('#transcript li[data-role="user"]')
    expect(user.first).to_be_visible()

    s = stats(page)
    truncates = s["truncates"]
    assert isinstance(truncates, list)
    assert truncates
    for t in truncates:
        assert 0 <= t["audioEndMs"] <= t["receivedMs"], t
        assert t["audioEndMs"] <= t["playedMs"] + 1, t
    assert s["speechStarted"] >= 2  # the interrupting burst
    assert s["audioReceivedMs"] >= s["audioPlayedMs"] > 0  # type: ignore[operator]
    assert s["errors"] == [], s["errors"]
    assert console.errors == []

    shot = tmp_path / "demo.png"
    if os.environ.get("UPDATE_DEMO_SCREENSHOT"):
        shot = REPO / "docs" / "demo.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000


def test_single_listener_serves_page_and_websocket_on_one_port(page: Page, tmp_path: Path) -> None:
    with run_bridge(tmp_path / "single") as proc:
        assert proc.ws_url.replace("ws://", "http://") == proc.http_url
        open_page(page, proc.http_url + "/")
        assert page.locator("#ws-url").input_value() == f"{proc.ws_url}/v1/realtime"
        page.select_option("#mode", "text")
        page.click("#connect")
        wait_connected(page)
        page.click("#disconnect")  # so the bridge stops without waiting out its drain


def test_push_to_talk_with_the_keyboard(page: Page, bridge: BridgeProcess) -> None:
    console = Console(page)
    open_page(page, bridge.http_url + "/")
    page.select_option("#mode", "ptt")
    page.click("#connect")
    wait_connected(page)
    push_to_talk_turn(page, 800)
    s = stats(page)
    assert s["speechStarted"] == 0  # no server VAD in push-to-talk
    assert s["turns"] == 1
    assert s["errors"] == []
    page.click("#disconnect")
    assert console.errors == []


def test_only_the_active_modes_controls_show_and_the_mic_state_is_said(
    page: Page, bridge: BridgeProcess
) -> None:
    """A disabled microphone button reads as "the microphone does not work": hands-free shows
    no push-to-talk button at all, and the microphone's state is said in words."""
    console = Console(page)
    open_page(page, bridge.http_url + "/")
    ptt = page.locator("#ptt")
    mic = page.locator("#mic-state")
    expect(ptt).to_be_hidden()
    expect(mic).to_have_attribute("data-state", "off")
    page.click("#connect")  # default mode: hands-free
    wait_connected(page)
    expect(mic).to_have_attribute("data-state", "listening")
    expect(mic).to_contain_text("Listening")
    expect(ptt).to_be_hidden()
    expect(page.locator("#vad-help")).to_be_visible()
    expect(page.locator("#level")).to_be_visible()
    page.select_option("#mode", "ptt")
    expect(ptt).to_be_visible()
    expect(ptt).to_be_enabled()
    expect(mic).to_have_attribute("data-state", "muted")
    expect(page.locator("#vad-help")).to_be_hidden()
    ptt.focus()
    page.keyboard.down(" ")
    expect(mic).to_have_attribute("data-state", "talking")
    page.keyboard.up(" ")
    expect(mic).to_have_attribute("data-state", "muted")
    page.select_option("#mode", "text")
    expect(ptt).to_be_hidden()
    expect(page.locator("#level")).to_be_hidden()
    expect(mic).to_contain_text("text only")
    page.click("#disconnect")
    expect(mic).to_have_attribute("data-state", "off")
    assert console.errors == []


def test_refusals_are_explained_in_words(browser: playwright_sync.Browser, tmp_path: Path) -> None:
    """Token (BRIDGE_API_KEYS, sent as a subprotocol) and the session limit (MAX_SESSIONS)."""
    token = "demo-token-123"
    with run_bridge(tmp_path / "auth", BRIDGE_API_KEYS=token, MAX_SESSIONS="1") as proc:
        context = browser.new_context()
        try:
            first, second = context.new_page(), context.new_page()
            for p in (first, second):
                p.set_default_timeout(CONNECT_TIMEOUT_MS)
                open_page(p, proc.http_url + "/")
                p.select_option("#mode", "text")
            first.click("#connect")
            status = first.locator("#status")
            expect(status).not_to_have_text("Connecting…")
            expect(first.locator("#alert")).to_contain_text("token")
            first.fill("#token", token)
            first.click("#connect")
            wait_connected(first)

            second.fill("#token", token)
            second.click("#connect")
            expect(second.locator("#alert")).to_contain_text("busy")
            expect(second.locator("#status")).to_have_text("Not connected")
            first.click("#disconnect")
        finally:
            context.close()


def test_the_page_gets_a_client_secret_from_its_bridge_when_allowed(
    page: Page, tmp_path: Path
) -> None:
    """With BRIDGE_API_KEYS set and DEMO_SECRETS=true, the page connects with no token typed:
    it asks its own bridge for a one-minute client secret, as a real app's page asks its
    backend. The secret, not a static token, is what it presents."""
    env = {"BRIDGE_API_KEYS": "server-only-token-123", "DEMO_SECRETS": "true"}
    with run_bridge(tmp_path / "demo-secrets", **env) as proc:
        console = Console(page)
        open_page(page, proc.http_url + "/")
        page.select_option("#mode", "text")
        page.click("#connect")
        wait_connected(page)
        assert page.evaluate("() => window.bridgeDemo.usedDemoSecret") is True
        page.fill("#text", "Hello")
        page.click("#send")
        assistant = page.locator('#transcript li[data-role="assistant"] .text')
        expect(assistant.first).not_to_have_text("")
        page.click("#disconnect")
        assert console.errors == []
    log = proc.log()
    assert "client_secret=cs_" in log
    assert "server-only-token-123" not in log


def test_nothing_at_the_address_is_not_blamed_on_the_token(
    page: Page, bridge: BridgeProcess
) -> None:
    """A WebSocket address where nothing listens says so, not "the token was refused"."""
    dead = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    open_page(page, bridge.http_url + "/")
    page.fill("#ws-url", dead)
    page.fill("#token", "some-token")
    page.select_option("#mode", "text")
    page.click("#connect")
    alert = page.locator("#alert")
    expect(alert).to_contain_text(f"Cannot reach the bridge at {dead}")
    expect(alert).not_to_contain_text("token")
    expect(page.locator("#status")).to_have_text("Not connected")


def test_upstream_unavailable_is_explained(page: Page, tmp_path: Path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    env = {
        "UPSTREAM": "openai",
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "OPENAI_REALTIME_URL": dead,
        "UPSTREAM_CONNECT_TIMEOUT_S": "2",
    }
    with run_bridge(tmp_path / "dead", **env) as proc:
        open_page(page, proc.http_url + "/")
        page.select_option("#mode", "text")
        page.click("#connect")
        expect(page.locator("#alert")).to_contain_text("could not reach the AI service")
        expect(page.locator("#status")).to_have_text("Not connected")
