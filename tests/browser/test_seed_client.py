"""The seed's own web client (artepatrick/realtime-client-front, MIT; PROTOCOL §7) in real
Chromium, against real bridge processes on the local upstream and on the GA-only simulator.

Nothing is fetched at run time: the page replays the client's exact message sequence from
``js/websocket.js`` and ``js/audioManager.js``: a socket to ``ws://HOST/`` with no header or
subprotocol; on ``session.created`` its beta ``session.update`` (server VAD, 700 ms silence);
"Start" sends ``input_audio_buffer.clear``; then one append per 4 096-sample chunk of real
speech, paced as captured, and only for chunks with a sample louder than 0.1 (quiet ones are
dropped); "Stop" sends ``input_audio_buffer.commit``; never ``response.create``. Every message
carries an ``evt_<ms>_<n>`` id, as the client adds one. The client must hear an answer in beta
names (``response.audio.delta``) and get no error.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser.conftest import (
    SCRUBBED_PREFIXES,
    BridgeProcess,
    free_port,
    playwright_sync,
    run_bridge,
    stop_process,
)
from tests.recordings import read_wav

CHUNK = 4096
SEED_REPLAY = """
async ({url, chunks, stopAfterMs}) => {
  const ws = new WebSocket(url);
  let counter = 0;
  const send = (message) => {
    if (!message.event_id) message.event_id = `evt_${Date.now()}_${++counter}`;
    ws.send(JSON.stringify(message));
  };
  const seen = [];
  const errors = [];
  let audioBytes = 0;
  let committed = 0;
  let audioDone = false;
  let stopped = false;
  const finished = new Promise((resolve, reject) => {
    // Done when the answer was heard and the Stop's commit was answered (not with an error).
    const check = () => { if (audioDone && stopped && committed >= 1) resolve(); };
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      seen.push(data.type);
      switch (data.type) {
        case "session.created":
          send({
            type: "session.update",
            session: {
              modalities: ["audio", "text"],
              voice: "alloy",
              input_audio_format: "pcm16",
              output_audio_format: "pcm16",
              turn_detection: {
                type: "server_vad", threshold: 0.5, prefix_padding_ms: 300,
                silence_duration_ms: 700,
              },
            },
          });
          break;
        case "input_audio_buffer.committed": if (stopped) committed += 1; break;
        case "response.audio.delta": audioBytes += atob(data.delta).length; break;
        case "response.audio.done": audioDone = true; break;
        case "error": errors.push(data.error); break;
      }
      check();
    };
    ws.onclose = (event) => reject(new Error(`closed ${event.code} ${event.reason}`));
    window.__seedCheck = check;
  });
  await new Promise((resolve) => { ws.onopen = resolve; });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(300);  // the user reads the page, then presses Start
  send({type: "input_audio_buffer.clear"});
  const chunkMs = 4096 / 24000 * 1000;
  const start = performance.now();
  for (let i = 0; i < chunks.length; i++) {
    const due = start + i * chunkMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (chunks[i] !== null) send({type: "input_audio_buffer.append", audio: chunks[i]});
  }
  await sleep(stopAfterMs);  // the user presses Stop
  if (counter > 0) send({type: "input_audio_buffer.commit"});
  stopped = true;
  window.__seedCheck();
  await Promise.race([
    finished, sleep(20000).then(() => { throw new Error(`no answer: ${seen.join(",")}`); }),
  ]);
  ws.close(1000);
  return {seen, errors, audioBytes};
}
"""


def captured_chunks(seconds: float = 1.75) -> list[str | None]:
    """The seed's ScriptProcessor output for real speech: base64 PCM16 per 4 096-sample chunk,
    or None where the page drops a chunk for being quiet."""
    samples = np.frombuffer(read_wav("speech-hello-24k.wav").data, "<i2")[: int(24000 * seconds)]
    out: list[str | None] = []
    for i in range(0, len(samples), CHUNK):
        chunk = samples[i : i + CHUNK]
        loud = np.abs(chunk.astype(np.float64) / 32768).max() > 0.1
        out.append(base64.b64encode(chunk.tobytes()).decode() if loud else None)
    return out


@contextlib.contextmanager
def simulator_process(workdir: Path) -> Iterator[str]:
    """``realtime-bridge simulator``: the GA-only local API on its own port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(PYTHONUNBUFFERED="1", LOCAL_AUDIO_PACE="1")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "realtime_bridge", "simulator", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "simulator listening" in line, line
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(params=["local", "ga-only-simulator"])
def seed_bridge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BridgeProcess]:
    if request.param == "local":
        with run_bridge(tmp_path / "bridge") as proc:
            yield proc
        return
    with simulator_process(tmp_path / "simulator") as url:
        env = {"UPSTREAM": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_REALTIME_URL": url}
        with run_bridge(tmp_path / "bridge", **env) as proc:
            yield proc


@pytest.mark.parametrize("stop_after_ms", [1500, 100], ids=["vad-ends-turn", "stop-first"])
def test_seed_client_hears_a_spoken_answer(
    browser: playwright_sync.Browser, seed_bridge: BridgeProcess, stop_after_ms: int
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(seed_bridge.http_url + "/health")  # any page of the bridge's origin
        result = page.evaluate(
            SEED_REPLAY,
            {
                "url": seed_bridge.ws_url + "/",
                "chunks": captured_chunks(),
                "stopAfterMs": stop_after_ms,
            },
        )
    finally:
        context.close()
    assert result["errors"] == []
    assert result["audioBytes"] > 24000  # over half a second of spoken answer
    seen = result["seen"]
    assert "response.audio.delta" in seen
    assert not any(t.startswith("response.output_audio") for t in seen)  # beta names only
    assert seen.count("response.created") == 1
