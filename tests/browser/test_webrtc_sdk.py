"""The official browser transport over WebRTC, unchanged, against a real bridge (issue 26).

``OpenAIRealtimeWebRTC`` from ``@openai/agents-realtime`` (installed from the npm registry into
tests/js by ``npm ci``) is bundled at test time by esbuild (pinned in tests/js/package.json) with
the small page in tests/browser/webrtc_sdk/, and served by a static server on 127.0.0.1 on a port
of its own: another origin than the bridge's, so the browser runs the CORS preflight the SDK's
headers call for and reads the call id from ``Location`` across origins. The bridge runs on the
local upstream with ``BRIDGE_API_KEYS`` and ``ALLOWED_ORIGINS`` set to the page's origin; the test
mints a client secret the way an app's backend does and hands the ``ek_…`` value to the page.

Chromium's fake microphone speaks (conftest's WAV); the page's analyser listens to the stream the
SDK's own ``<audio>`` element plays. Waits are on the page's state with timeouts, never sleeps.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import BridgeProcess, playwright_sync, run_bridge

Page = playwright_sync.Page

JS = Path(__file__).resolve().parents[1] / "js"
PAGE_SOURCE = Path(__file__).resolve().parent / "webrtc_sdk"
TOKEN = "backend-token-for-webrtc-sdk"
ADMIN = "admin-token-for-webrtc-sdk"
CONNECT_TIMEOUT_MS = 15_000
VOICE_TIMEOUT_MS = 25_000
#: RMS (full scale 1.0) the remote audio must reach: speech is ~0.05-0.3, Opus silence ~0.
AUDIBLE_RMS = 0.02


# -- the page: bundled at test time, served from its own origin ---------------------------------


def npm_ci_if_needed() -> Path:
    """tests/js/node_modules from the lockfile (as tests/test_js_clients.py installs it), now
    also with esbuild."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed: `make test` installs them (ensure-system-deps.sh)")
    modules = JS / "node_modules"
    wanted = (modules / "@openai" / "agents-realtime", modules / "esbuild")
    if not all(path.is_dir() for path in wanted):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS,
            check=True,
            timeout=300,
        )
    return modules


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the page and its bundle: the SDK and its dependencies in one browser file."""
    modules = npm_ci_if_needed()
    out = tmp_path_factory.mktemp("webrtc-sdk-site")
    shutil.copy(PAGE_SOURCE / "index.html", out / "index.html")
    subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),  # a native binary or its JS stand-in
            str(PAGE_SOURCE / "page.mjs"),
            "--bundle",
            "--platform=browser",
            "--format=iife",
            "--target=chrome110",
            "--log-level=warning",
            f"--outfile={out / 'bundle.js'}",
        ],
        cwd=JS,
        env={**os.environ, "NODE_PATH": str(modules)},  # the page imports from tests/js
        check=True,
        timeout=120,
    )
    assert (out / "bundle.js").stat().st_size > 10_000
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serves ``root`` on 127.0.0.1 at a free port; yields its origin (``http://127.0.0.1:N``)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page_origin(site: Path) -> Iterator[str]:
    with static_server(site) as origin:
        yield origin


@pytest.fixture(scope="module")
def other_origin(site: Path) -> Iterator[str]:
    """The same page from an origin the bridge does not allow."""
    with static_server(site) as origin:
        yield origin


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory, page_origin: str) -> Iterator[BridgeProcess]:
    env = {
        "BRIDGE_API_KEYS": TOKEN,
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        "ALLOWED_ORIGINS": page_origin,
        "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1",
    }
    with run_bridge(tmp_path_factory.mktemp("bridge-webrtc-sdk"), **env) as proc:
        yield proc


# -- talking to the bridge as the app's backend -------------------------------------------------


def http_json(
    method: str, url: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def mint_secret(bridge: BridgeProcess) -> str:
    status, body = http_json(
        "POST",
        f"{bridge.http_url}/v1/realtime/client_secrets",
        TOKEN,
        {
            "expires_after": {"anchor": "created_at", "seconds": 120},
            "session": {"type": "realtime"},
        },
    )
    assert status == 200, body
    secret = body["value"]
    assert secret.startswith("ek_")
    return str(secret)


def sessions(bridge: BridgeProcess) -> list[dict[str, Any]]:
    status, body = http_json("GET", f"{bridge.http_url}/sessions", ADMIN)
    assert status == 200, body
    return list(body["sessions"])


# -- the browser side ---------------------------------------------------------------------------


@dataclass
class Call:
    page: Page
    console_errors: list[str]

    def state(self) -> dict[str, Any]:
        result = self.page.evaluate("() => window.sdkCall")
        assert isinstance(result, dict)
        return result

    def wait(self, predicate: str, timeout_ms: int) -> None:
        """Waits for a JS expression over ``c`` (window.sdkCall); on a timeout, says what the
        page had seen and what the bridge logged."""
        try:
            self.page.wait_for_function(
                f"() => {{ const c = window.sdkCall; return {predicate}; }}", timeout=timeout_ms
            )
        except playwright_sync.TimeoutError:
            state = self.state()
            types = [e["type"] for e in state["events"]]
            state["events"] = f"{len(types)} events: {types[-40:]}"
            pytest.fail(
                f"timed out waiting for {predicate}\npage: {state}\nconsole: {self.console_errors}"
            )


@contextlib.contextmanager
def start_call(
    browser: playwright_sync.Browser, origin: str, bridge: BridgeProcess, api_key: str
) -> Iterator[Call]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(CONNECT_TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
    try:
        page.goto(f"{origin}/index.html")
        page.evaluate(
            "config => { window.sdkCallConfig = config; }",
            {"baseUrl": f"{bridge.http_url}/v1/realtime/calls", "apiKey": api_key},
        )
        page.click("#start")  # a user gesture: the page may play audio
        yield Call(page, console_errors)
    finally:
        with contextlib.suppress(playwright_sync.Error):
            page.evaluate("() => window.sdkTransport && window.sdkTransport.close()")
        context.close()


# -- the tests ----------------------------------------------------------------------------------


def test_sdk_call_transcribes_and_plays_the_answer(
    browser: playwright_sync.Browser, bridge: BridgeProcess, page_origin: str
) -> None:
    secret = mint_secret(bridge)
    with start_call(browser, page_origin, bridge, secret) as call:
        call.wait("c.connected || c.error !== null", CONNECT_TIMEOUT_MS)
        state = call.state()
        assert state["error"] is None, state
        # the call id, read by the SDK from Location across origins (Expose-Headers)
        call_id = state["callId"]
        assert isinstance(call_id, str)
        assert call_id.startswith("rtc_"), call_id
        assert state["connectionChanges"][:2] == ["connecting", "connected"]
        listed = [s for s in sessions(bridge) if s.get("client_kind") == "webrtc"]
        assert [s["call"]["call_id"] for s in listed] == [call_id], listed

        # the fake microphone's speech is heard and transcribed
        call.wait(
            "c.events.some(e => e.type === 'conversation.item.input_audio_transcription.completed'"
            " && typeof e.transcript === 'string' && e.transcript.trim() !== '')",
            VOICE_TIMEOUT_MS,
        )
        # the SDK asks for the item after each transcription; the answer fits the data channel
        call.wait("c.events.some(e => e.type === 'conversation.item.retrieved')", VOICE_TIMEOUT_MS)
        # the spoken answer arrives on the track and the SDK's audio element plays it
        call.wait(f"c.peakRms > {AUDIBLE_RMS} && c.loudMs >= 200", VOICE_TIMEOUT_MS)
        call.wait("c.events.some(e => e.type === 'output_audio_buffer.started')", VOICE_TIMEOUT_MS)

        state = call.state()
        assert state["remoteTracks"] == 1
        assert state["audioElementHasStream"] is True  # the SDK's ontrack found event.streams[0]
        assert state["audioElementPlaying"] is True
        types = [e["type"] for e in state["events"]]
        assert "session.created" in types
        assert "session.updated" in types
        assert "response.output_audio.delta" not in types  # the audio is on the track
        errors = [e for e in state["events"] if e["type"] == "error"]
        assert errors == [], errors
        assert state["errors"] == [], state["errors"]
        assert all(e.get("size", 0) < 256 * 1024 for e in state["events"])
        # still up: no oversized message closed the channel, the peer connection holds
        channel = call.page.evaluate(
            "() => window.sdkTransport.connectionState.dataChannel.readyState"
        )
        assert channel == "open"
        assert call.page.evaluate("() => window.sdkTransport.status") == "connected"
        assert call.console_errors == []
    log = bridge.log()
    assert secret not in log
    assert TOKEN not in log


def test_a_wrong_secret_is_refused_and_opens_no_session(
    browser: playwright_sync.Browser, bridge: BridgeProcess, page_origin: str
) -> None:
    forged = "ek_" + "x" * 40
    before = {s["id"] for s in sessions(bridge)}
    with start_call(browser, page_origin, bridge, forged) as call:
        call.wait("c.error !== null || c.connected", CONNECT_TIMEOUT_MS)
        state = call.state()
        assert state["connected"] is False
        # the page sees the bridge's 401 (CORS headers on the refusal too), not a network error
        assert "status 401" in state["error"], state["error"]
        assert state["remoteTracks"] == 0
    assert [s for s in sessions(bridge) if s["id"] not in before] == []


def test_a_page_from_another_origin_is_refused(
    browser: playwright_sync.Browser, bridge: BridgeProcess, other_origin: str
) -> None:
    secret = mint_secret(bridge)
    before = {s["id"] for s in sessions(bridge)}
    with start_call(browser, other_origin, bridge, secret) as call:
        call.wait("c.error !== null || c.connected", CONNECT_TIMEOUT_MS)
        state = call.state()
        assert state["connected"] is False, state
        assert state["error"], state
        assert state["remoteTracks"] == 0
    assert [s for s in sessions(bridge) if s["id"] not in before] == []
