"""What the demo page's browser tests share: its state and its waits (the ``page`` fixture is
in conftest.py)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import PAGE_TIMEOUT_MS, playwright_sync

Page = playwright_sync.Page
expect = playwright_sync.expect

CONNECT_TIMEOUT_MS = PAGE_TIMEOUT_MS


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def stats(page: Page) -> dict[str, Any]:
    result = page.evaluate("() => window.bridgeDemo.stats")
    assert isinstance(result, dict)
    return result


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#ws-url")).not_to_have_value("")


def wait_connected(page: Page) -> None:
    expect(page.locator("#status")).to_have_text("Connected")
    page.wait_for_function("() => window.bridgeDemo.stats.sessionId !== null")


def push_to_talk_turn(page: Page, hold_ms: int, answer_timeout_ms: int | None = None) -> None:
    """Hold the push-to-talk button (the space bar) for ``hold_ms`` of audio, let go, and wait
    for the commit and the assistant's answer."""
    ptt = page.locator("#ptt")
    expect(ptt).to_be_enabled()
    ptt.focus()
    page.keyboard.down(" ")
    expect(ptt).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(f"() => window.bridgeDemo.stats.audioSentMs >= {hold_ms}")
    page.keyboard.up(" ")
    expect(ptt).to_have_attribute("aria-pressed", "false")
    page.wait_for_function(
        "() => window.bridgeDemo.events.some(e => e.type === 'input_audio_buffer.committed')"
    )
    assistant = page.locator('#transcript li[data-role="assistant"] .text')
    expect(assistant.first).not_to_have_text("", timeout=answer_timeout_ms)
