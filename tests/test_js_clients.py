"""JavaScript clients against a real bridge: the OpenAI Agents SDK (``@openai/agents-realtime``,
installed from the npm registry into tests/js by ``npm ci``) connects with a client secret the
bridge minted, as its ``apiKey``."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from realtime_bridge.upstream.local.adapter import LocalUpstream
from tests.conftest import running_bridge

JS = Path(__file__).resolve().parent / "js"
TOKEN = "backend-token-for-js-clients"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """tests/js/node_modules, installed once from the lockfile."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed: `make test` installs them (ensure-system-deps.sh)")
    installed = JS / "node_modules" / "@openai" / "agents-realtime"
    if not installed.is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS,
            check=True,
            timeout=300,
        )
    return JS / "node_modules"


async def test_agents_sdk_connects_with_a_minted_secret(node_modules: Path) -> None:
    env = {"BRIDGE_API_KEYS": TOKEN, "BRIDGE_SECRET_KEY": "j" * 40}
    async with running_bridge(LocalUpstream(pace=0.0), UPSTREAM="local", **env) as bridge:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{bridge.http_port}/v1/realtime/client_secrets",
                json={
                    "expires_after": {"anchor": "created_at", "seconds": 60},
                    "session": {"instructions": "Reply with: pinned by the backend"},
                },
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response,
        ):
            secret = (await response.json())["value"]
        process = await asyncio.create_subprocess_exec(
            "node",
            str(JS / "agents_sdk_client.mjs"),
            f"ws://127.0.0.1:{bridge.ws_port}/v1/realtime",
            secret,
            cwd=JS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert result["text"] == "pinned by the backend"  # the secret's session, applied and locked
    assert result["errors"] == ["session_field_locked"]  # the agent's own instructions, refused
