"""Fixtures for the browser tests: a real bridge process, a fake-microphone WAV, system Chromium.

The bridge is started the way the README says (``python -m realtime_bridge``) on the local
upstream; Chromium is Debian's (``make system-deps`` installs it), driven by Playwright with a
fake microphone that loops a WAV of speech bursts and silence. Nothing in the browser is mocked.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import playwright.sync_api as playwright_sync
import pytest

from tests.recordings import read_wav

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0
WAV_RATE = 24000
#: Bridge/upstream settings that must not leak from the developer's environment into the test.
SCRUBBED_PREFIXES = ("OPENAI_", "AZURE_", "BRIDGE_", "UPSTREAM", "ALLOWED_ORIGINS", "MAX_SESSIONS")


def chromium_path() -> str | None:
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


# -- the fake microphone ------------------------------------------------------------------------


def _speech_segment(seconds: float) -> np.ndarray:
    """Real speech (the repository's recordings; see tests/recordings.py)."""
    n = int(seconds * WAV_RATE)
    wav = read_wav("speech-hello-24k.wav")
    assert wav.rate == WAV_RATE
    assert wav.bits == 16
    x = np.frombuffer(wav.data, "<i2").astype(np.float64) / 32768
    loud = np.flatnonzero(np.abs(x) > 0.02)
    start = int(loud[0]) if loud.size else 0
    segment = x[start : start + n]
    fade = int(0.01 * WAV_RATE)
    ramp = np.linspace(0.0, 1.0, fade)
    segment = segment.copy()
    segment[:fade] *= ramp
    segment[-fade:] *= ramp[::-1]
    return segment


def write_fake_mic_wav(path: Path) -> Path:
    """0.4 s silence, then three times [1.4 s speech, 1.2 s silence] (8.2 s, looped by Chromium).

    The silence outlasts server VAD's 500 ms, so each burst is a turn; it is shorter than the
    assistant's answer, so the next burst interrupts the answer while it plays (barge-in).
    """
    silence = np.zeros(int(1.2 * WAV_RATE))
    parts = [np.zeros(int(0.4 * WAV_RATE))]
    for _ in range(3):
        parts += [_speech_segment(1.4), silence]
    signal_ = np.concatenate(parts)
    pcm = (np.clip(signal_, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WAV_RATE)
        w.writeframes(pcm.tobytes())
    return path


# -- the bridge process -------------------------------------------------------------------------


@dataclass
class BridgeProcess:
    process: subprocess.Popen[str]
    ws_url: str
    http_url: str
    log_path: Path
    lines: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, up to 10 s to exit (a bridge drains), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def run_bridge(workdir: Path, **env_overrides: str) -> Iterator[BridgeProcess]:
    """``python -m realtime_bridge`` on the local upstream; yields once the ready line is out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(
        HOST="127.0.0.1",
        WS_PORT="0",
        HTTP_PORT="0",
        UPSTREAM="local",
        LOCAL_AUDIO_PACE="1",
        LOG_LEVEL="info",
        SHUTDOWN_GRACE_S="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(env_overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "bridge.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "realtime_bridge"],
            cwd=workdir,  # no developer .env is picked up
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            line = None
        if line is None or not line.startswith("realtime-bridge listening"):
            pytest.fail(f"bridge did not start: {line!r}\n{log_path.read_text(errors='replace')}")
        _, _, ws_url, http_url, _ = line.split()
        yield BridgeProcess(process, ws_url, http_url, log_path)
    finally:
        stop_process(process)
        reader.join(timeout=5)
        process.stdout.close()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """Two listeners (the default layout): the page must find the WebSocket port from /info."""
    with run_bridge(tmp_path_factory.mktemp("bridge"), HTTP_PORT=str(free_port())) as proc:
        assert proc.ws_url != proc.http_url.replace("http://", "ws://")
        yield proc


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_mic_wav(tmp_path_factory.mktemp("audio") / "fake-mic.wav")


@pytest.fixture(scope="module")
def browser(fake_mic_wav: Path) -> Iterator[playwright_sync.Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.fail("Chromium is missing: `make test` installs it (scripts/ensure-system-deps.sh)")
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_mic_wav}",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


#: How long a page action or expectation may take by default.
PAGE_TIMEOUT_MS = 15_000


@pytest.fixture
def page(browser: playwright_sync.Browser) -> Iterator[playwright_sync.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()
