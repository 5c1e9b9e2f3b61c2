"""Every example in the README runs as written: its Python blocks as scripts, its shell blocks'
``curl`` lines, and its JavaScript blocks in a real page, against a real bridge process on the
local upstream. Only the addresses change (the README's default ports become the test's)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import REPO, BridgeProcess, playwright_sync, run_bridge

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
