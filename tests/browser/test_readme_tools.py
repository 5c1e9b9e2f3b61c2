"""The README's "Server-side tools" example runs as written: its policy file, its Python tool
and its webhook receiver in files, a bridge process started as the section says, and its
client script, which must print the answers stating both tools' outputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.browser.conftest import REPO, free_port, run_bridge

FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def section_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    start = text.index("## Server-side tools")
    section = text[start : text.index("\n## ", start + 1)]
    return [(m["lang"], m["code"]) for m in FENCE.finditer(section)]


def test_the_server_tools_example_runs_as_written(tmp_path: Path) -> None:
    (lang, policy), (_, tool), (_, receiver), (_, client) = section_blocks()
    assert lang == "toml"
    port = str(free_port())
    (tmp_path / "policy.toml").write_text(policy.replace("127.0.0.1:9000", f"127.0.0.1:{port}"))
    (tmp_path / "acme_tools.py").write_text(tool)
    (tmp_path / "crm_webhook.py").write_text(receiver.replace("port=9000", f"port={port}"))
    key = {"CRM_WEBHOOK_KEY": "a-key-the-operator-chose"}
    webhook = subprocess.Popen(
        [sys.executable, "crm_webhook.py"],
        cwd=tmp_path,
        env={"PATH": "", "PYTHONUNBUFFERED": "1", **key},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert webhook.stdout is not None
        assert "Running on" in webhook.stdout.readline()  # aiohttp's line once it listens
        with run_bridge(tmp_path, BRIDGE_POLICY_FILE="policy.toml", **key) as bridge:
            script = tmp_path / "client.py"
            script.write_text(client.replace("127.0.0.1:8080", bridge.ws_url.removeprefix("ws://")))
            result = subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, timeout=60
            )
            log = bridge.log()
    finally:
        webhook.terminate()
        webhook.wait(timeout=10)
        assert webhook.stdout is not None
        webhook.stdout.close()
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert "sunny" in first
    assert "shipped" in second
    assert " ERROR " not in log
    assert "tool call" in log  # logged, by tool and outcome
