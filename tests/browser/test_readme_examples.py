"""Every example in the README runs as written: its Python blocks as scripts, its shell blocks'
``curl`` lines, and its JavaScript blocks in a real page, against a real bridge process on the
local upstream. Only the addresses change (the README's default ports become the test's)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.conftest import (
    REPO,
    BridgeProcess,
    free_port,
    playwright_sync,
    run_bridge,
    stop_process,
)

FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return [m["code"] for m in FENCE.finditer(text) if m["lang"] == language]


def here(code: str, bridge: BridgeProcess) -> str:
    """The example with the README's default addresses pointed at the running bridge."""
    ws = bridge.ws_url.removeprefix("ws://")
    http = bridge.http_url.removeprefix("http://")
    return code.replace("127.0.0.1:8080", ws).replace("127.0.0.1:3000", http)


@pytest.fixture(scope="module")
def readme_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    with run_bridge(tmp_path_factory.mktemp("readme"), LOCAL_AUDIO_PACE="0") as proc:
        yield proc


@pytest.fixture(scope="module")
def secured_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """As "Browsers without a key" starts it: a server credential and a signing key."""
    env = {"BRIDGE_API_KEYS": "bridge-token", "BRIDGE_SECRET_KEY": "r" * 64}
    with run_bridge(tmp_path_factory.mktemp("readme-secured"), **env) as proc:
        yield proc


def test_the_readme_has_examples_of_each_kind() -> None:
    assert len(blocks("python")) >= 1
    assert len(blocks("js")) >= 1
    assert any("curl " in block for block in blocks("sh"))


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_examples_run_as_scripts(
    index: int, readme_bridge: BridgeProcess, secured_bridge: BridgeProcess, tmp_path: Path
) -> None:
    code = blocks("python")[index]
    bridge = secured_bridge if "client_secrets" in code else readme_bridge
    script = tmp_path / "example.py"
    script.write_text(here(code, bridge))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"


def test_curl_examples_answer_json(readme_bridge: BridgeProcess) -> None:
    commands = [
        line.strip()
        for block in blocks("sh")
        for line in block.splitlines()
        if line.strip().startswith("curl ")
    ]
    assert commands
    for command in commands:
        result = subprocess.run(
            shlex.split(here(command, readme_bridge)), capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith("{"), (command, result.stdout)


@pytest.mark.parametrize("index", range(len(blocks("js"))))
def test_javascript_examples_run_in_a_page(
    index: int, readme_bridge: BridgeProcess, browser: playwright_sync.Browser
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        logged: list[str] = []
        errors: list[str] = []
        page.on("console", lambda m: (errors if m.type == "error" else logged).append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(readme_bridge.http_url + "/health")
        with page.expect_console_message(lambda m: m.text.startswith("done:"), timeout=20_000):
            page.add_script_tag(content=here(blocks("js")[index], readme_bridge))
        assert errors == []
        assert "done: completed" in logged
        assert len(logged) >= 2  # the answer's text came before
    finally:
        context.close()


# -- "Browsers over WebRTC": the backend and the page, as written --------------------------------

WEBRTC_SECTION = "## Browsers over WebRTC"
EXAMPLE_BACKEND_PORT = "port=8000"


def section_blocks(title: str, language: str) -> list[str]:
    """The ``language`` blocks of one README section (up to the next ``## `` heading)."""
    text = (REPO / "README.md").read_text()
    start = text.index(title + "\n")
    end = text.find("\n## ", start + len(title))
    section = text[start : end if end != -1 else len(text)]
    return [m["code"] for m in FENCE.finditer(section) if m["lang"] == language]


@dataclass
class WebRtcExample:
    bridge: BridgeProcess
    origin: str  # the example backend's, which serves the page


@pytest.fixture(scope="module")
def webrtc_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRtcExample]:
    """The section's bridge (its token, a signing key, the page's origin allowed), and its
    ``backend.py`` serving its ``index.html``, both written out from the README and run as they
    are; only the addresses change (the bridge's HTTP port and the backend's port)."""
    (backend,) = section_blocks(WEBRTC_SECTION, "py")
    (page,) = section_blocks(WEBRTC_SECTION, "html")
    assert EXAMPLE_BACKEND_PORT in backend
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {
        "BRIDGE_API_KEYS": "bridge-token",
        "BRIDGE_SECRET_KEY": "w" * 64,
        "ALLOWED_ORIGINS": origin,
        "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1",
    }
    workdir = tmp_path_factory.mktemp("readme-webrtc")
    with run_bridge(workdir / "bridge", **env) as bridge:
        site = workdir / "site"
        site.mkdir()
        code = here(backend, bridge).replace(EXAMPLE_BACKEND_PORT, f"port={port}")
        (site / "backend.py").write_text(code)
        (site / "index.html").write_text(page)
        log = (workdir / "backend.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "backend.py"], cwd=site, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(origin + "/", timeout=2) as response:
                        assert b"oai-events" in response.read()
                        break
                except OSError:
                    assert process.poll() is None, (workdir / "backend.log").read_text()
                    assert time.monotonic() < deadline, "the example backend did not answer"
                    time.sleep(0.1)
            yield WebRtcExample(bridge, origin)
        finally:
            stop_process(process)
            log.close()


def bridge_sessions(bridge: BridgeProcess) -> int:
    with urllib.request.urlopen(bridge.http_url + "/health", timeout=5) as response:
        return int(json.loads(response.read())["sessions"])


def test_the_webrtc_example_holds_a_call(
    webrtc_example: WebRtcExample, browser: playwright_sync.Browser
) -> None:
    """Chromium opens the example page (its fake microphone speaks), presses Talk: the page gets
    a secret from the example backend, calls the bridge cross-origin, logs both transcripts and
    plays the answer; Hang up ends the call at the bridge."""
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(webrtc_example.origin + "/")
        page.click("#start")  # a user gesture, as a visitor's

        def wait_for_log(text: str, timeout_ms: int) -> None:
            try:
                page.wait_for_function(
                    "text => document.getElementById('log').textContent.includes(text)",
                    arg=text,
                    timeout=timeout_ms,
                )
            except playwright_sync.TimeoutError:
                log = page.text_content("#log")
                pytest.fail(f"no {text!r} in the page's log: {log!r}; console: {errors}")

        wait_for_log("connected: rtc_", 15_000)
        assert bridge_sessions(webrtc_example.bridge) == 1
        wait_for_log("you: ", 25_000)
        wait_for_log("assistant: ", 25_000)
        # the answer's audio arrives on the track the page's <audio> element plays
        page.wait_for_function(
            """async () => {
                const answer = document.getElementById("answer");
                const live = answer.srcObject && answer.srcObject.getAudioTracks()
                    .some((track) => track.readyState === "live");
                let energy = 0;
                (await pc.getStats()).forEach((report) => {
                    if (report.type === "inbound-rtp" && report.kind === "audio")
                        energy = report.totalAudioEnergy || 0;
                });
                return live && !answer.paused && energy > 0.01;
            }""",
            timeout=25_000,
        )
        assert "failed:" not in (page.text_content("#log") or "")
        assert errors == []

        page.click("#stop")
        wait_for_log("hung up", 5_000)
        deadline = time.monotonic() + 5
        while bridge_sessions(webrtc_example.bridge) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bridge_sessions(webrtc_example.bridge) == 0
    finally:
        context.close()
    assert "bridge-token" not in webrtc_example.bridge.log()
