"""The real command, started as `make run` starts it: ready line, a session on the local
upstream, graceful exit on SIGTERM; and bad configuration → exit 2 with one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.fakes import closed_port

COMMAND = str(Path(sys.executable).with_name("realtime-bridge"))
READY = re.compile(
    r"realtime-bridge listening ws://([\d.]+):(\d+) http://([\d.]+):(\d+) upstream=(\w+)"
)
SECRET = "sk-process-SECRET-9876543210"


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, **extra}


async def start(tmp_path: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        COMMAND,
        *args,
        cwd=tmp_path,
        env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *args: str, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The command as a child process, killed at the end if the test left it running."""
    process = await start(tmp_path, *args, **env)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def ready_line(process: asyncio.subprocess.Process) -> re.Match[str]:
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    match = READY.search(line)
    assert match, line
    return match


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, int]]:
    ws_port, http_port = closed_port(), closed_port()
    (tmp_path / ".env").write_text(
        f"WS_PORT={ws_port}\nHTTP_PORT={http_port}\nLOCAL_AUDIO_PACE=0\n"
    )
    async with running(tmp_path) as process:
        match = await ready_line(process)
        assert int(match.group(2)) == ws_port
        assert int(match.group(4)) == http_port
        assert match.group(5) == "local"
        yield process, ws_port, http_port


async def test_serves_like_make_run_and_exits_cleanly_on_sigterm(
    served: tuple[asyncio.subprocess.Process, int, int],
) -> None:
    process, ws_port, http_port = served
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{http_port}/info") as response:
            assert (await response.json())["upstream"]["kind"] == "local"
        async with http.ws_connect(
            f"ws://127.0.0.1:{ws_port}/v1/realtime?model=gpt-realtime"
        ) as ws:
            created = await asyncio.wait_for(ws.receive_json(), 10)
            assert created["type"] == "session.created"
            assert created["session"]["model"] == "gpt-realtime"
            await ws.send_json(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Say hello"}],
                    },
                }
            )
            await ws.send_json(
                {"type": "response.create", "response": {"output_modalities": ["text"]}}
            )
            while True:
                event = await asyncio.wait_for(ws.receive_json(), 10)
                if event["type"] == "response.done":
                    break
            assert event["response"]["status"] == "completed"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_sigint_with_a_live_session_drains_and_exits_zero(tmp_path: Path) -> None:
    ws_port = closed_port()
    async with running(
        tmp_path, "--ws-port", str(ws_port), "--http-port", str(ws_port), SHUTDOWN_GRACE_S="0.2"
    ) as process:
        await ready_line(process)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{ws_port}/") as ws,
        ):
            await asyncio.wait_for(ws.receive_json(), 10)  # session.created
            process.send_signal(signal.SIGINT)
            events = []
            async for msg in ws:
                events.append(msg.json())
            assert events[-1]["error"]["code"] == "server_shutting_down"
            assert ws.close_code == 1001
        assert await asyncio.wait_for(process.wait(), 15) == 0


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        ((), {"WS_PORT": "abc"}, "WS_PORT"),
        (("--http-port", "99999"), {}, "HTTP_PORT"),
        ((), {"UPSTREAM": "nope"}, "UPSTREAM"),
        ((), {"UPSTREAM": "openai"}, "OPENAI_API_KEY"),
        ((), {"UPSTREAM": "azure", "AZURE_OPENAI_API_KEY": SECRET}, "AZURE_OPENAI_ENDPOINT"),
        ((), {"LOG_LEVEL": "chatty", "OPENAI_API_KEY": SECRET}, "LOG_LEVEL"),
        ((), {"MAX_SESSIONS": "-5"}, "MAX_SESSIONS"),
    ],
)
def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], variable: str
) -> None:
    result = subprocess.run(
        [COMMAND, *args],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert result.stdout == ""


def test_bad_value_in_dotenv_exits_2(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WS_PORT=eighty\n")
    result = subprocess.run(
        [COMMAND], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 2
    assert "WS_PORT" in result.stderr


def test_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [COMMAND, "--ws-port", str(port), "--http-port", str(closed_port())],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [COMMAND, "--help"], capture_output=True, text=True, timeout=20, check=True
    )
    for option in ("--ws-port", "--http-port", "--upstream", "--model", "--log-level", "simulator"):
        assert option in result.stdout
    python_m = subprocess.run(
        [sys.executable, "-m", "realtime_bridge", "--version"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert python_m.returncode == 0
    assert "realtime-bridge" in python_m.stdout


async def test_simulator_command_serves_the_local_api(tmp_path: Path) -> None:
    port = closed_port()
    async with running(tmp_path, "simulator", "--port", str(port)) as process:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert f"ws://127.0.0.1:{port}/v1/realtime" in line
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws,
        ):
            assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "session.created"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_the_ready_line_is_said_once(tmp_path: Path) -> None:
    """A terminal shows stdout and stderr together: the ready line appears once in all."""
    port = closed_port()
    async with running(tmp_path, "--ws-port", str(port), "--http-port", str(port)) as process:
        await ready_line(process)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)
    both = stdout.decode() + stderr.decode()
    assert both.count("realtime-bridge listening") == 0  # the first one was read above
    assert "demo page: http://127.0.0.1:" in stderr.decode()


async def test_a_backend_mints_a_secret_from_a_bridge_process_and_a_page_talks_with_it(
    tmp_path: Path,
) -> None:
    """The whole browser flow against the process as `make run` starts it: the backend mints
    with the official SDK, the 'page' connects with the secret as a subprotocol."""
    from openai import AsyncOpenAI

    ws_port, http_port = closed_port(), closed_port()
    token = "backend-token-for-process-test"
    (tmp_path / "policy.toml").write_text('[default]\nmodels = ["gpt-realtime"]\n')
    (tmp_path / ".env").write_text(
        f"WS_PORT={ws_port}\nHTTP_PORT={http_port}\nLOCAL_AUDIO_PACE=0\n"
        f"BRIDGE_API_KEYS={token}\nBRIDGE_SECRET_KEY={'s' * 40}\n"
        "BRIDGE_POLICY_FILE=policy.toml\n"
    )
    async with running(tmp_path) as process:
        await ready_line(process)
        backend = AsyncOpenAI(api_key=token, base_url=f"http://127.0.0.1:{http_port}/v1")
        secret = await backend.realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": 60},
            session={"type": "realtime", "instructions": "Reply with: minted and answered"},
        )
        await backend.close()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                f"ws://127.0.0.1:{ws_port}/v1/realtime",
                protocols=["realtime", f"openai-insecure-api-key.{secret.value}"],
            ) as ws,
        ):
            assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "session.created"
            text_only = {"type": "realtime", "output_modalities": ["text"]}
            await ws.send_json({"type": "session.update", "session": text_only})
            await ws.send_json({"type": "response.create"})
            text = ""
            while True:
                event = await asyncio.wait_for(ws.receive_json(), 10)
                if event["type"] == "response.output_text.delta":
                    text += event["delta"]
                if event["type"] == "response.done":
                    break
        assert text == "minted and answered"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_the_call_simulator_hears_a_phone_call_answered(tmp_path: Path) -> None:
    """`make run` with no key, then `realtime-bridge call`: a phone call answered by the local
    upstream, in one command (the README's phone section)."""
    from realtime_bridge.audio import g711

    port = closed_port()
    async with running(tmp_path, "--ws-port", str(port), "--http-port", str(port)) as process:
        await ready_line(process)
        wav = Path(__file__).resolve().parent / "fixtures" / "speech-hello-8k-ulaw.wav"
        out = tmp_path / "answer.wav"
        call_url = f"ws://127.0.0.1:{port}/twilio"
        call = await start(tmp_path, "call", "--wav", str(wav), "--out", str(out), call_url)
        stdout, stderr = await asyncio.wait_for(call.communicate(), 60)
        assert call.returncode == 0, stderr.decode()
        assert "heard" in stdout.decode()
        blob = out.read_bytes()
        data = blob[blob.index(b"data") + 8 :]
        heard = np.frombuffer(g711.ulaw_to_pcm16(data), "<i2").astype(np.float64)
        assert len(heard) / 8000 > 1.0
        assert np.sqrt(np.mean(heard**2)) > 300
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
