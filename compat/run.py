"""`make compat`: each framework, unchanged, in its own venv, against a real bridge process.

For every framework under ``compat/<name>/`` (a pinned ``requirements.txt`` and a ``check.py``):
install it into ``.venv-compat/<name>`` from the registries, then run its check against a bridge
on the local upstream, once open and once with ``BRIDGE_API_KEYS`` (its own key accepted, a
wrong one refused). A check fails on any error event (the check's own exit code) and on any
ERROR line or traceback in the bridge's log.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"
RECORDING = ROOT.parent / "shared" / "audio" / "speech-hello-24k.wav"
BRIDGE = Path(sys.executable).parent / "realtime-bridge"
STARTUP_TIMEOUT_S = 30.0
CHECK_TIMEOUT_S = 300.0
GOOD_KEY = "compat-key-7d1e"
WRONG_KEY = "compat-key-wrong"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def framework_python(name: str) -> Path:
    """The framework's own venv, reinstalled only when its pins change."""
    requirements = COMPAT / name / "requirements.txt"
    venv = ROOT / ".venv-compat" / name
    marker = venv / ".installed"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if not (marker.exists() and marker.read_text() == digest):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", "-r", str(requirements)], check=True)
        marker.write_text(digest)
    return python


@contextmanager
def bridge(api_keys: str) -> Iterator[tuple[str, Path]]:
    """A bridge process on the local upstream; yields its base URL and its log file."""
    ws_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "WS_PORT": str(ws_port),
        "HTTP_PORT": str(http_port),
        "OPENAI_API_KEY": "",
        "BRIDGE_API_KEYS": api_keys,
        "LOG_LEVEL": "INFO",
    }
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "bridge.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BRIDGE)], env=env, cwd=scratch, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                wait_healthy(http_port, process)
                yield f"http://127.0.0.1:{ws_port}/v1", log
            finally:
                process.terminate()
                process.wait(timeout=30)


def wait_healthy(http_port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bridge exited with {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)  # polling a process that is starting; not a test-timing sleep
    raise SystemExit("bridge did not become healthy")


def log_problems(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if " ERROR " in line or "Traceback" in line]


def run_check(python: Path, name: str, base_url: str, key: str, what: str) -> bool:
    script = COMPAT / name / "check.py"
    print(f"--- {name}: {what} ({'key ' + key})", flush=True)
    result = subprocess.run(
        [str(python), str(script), base_url, key, what], timeout=CHECK_TIMEOUT_S, check=False
    )
    return result.returncode == 0


def check_framework(name: str) -> list[str]:
    python = framework_python(name)
    failures: list[str] = []
    with bridge("") as (base_url, log):
        if not run_check(python, name, base_url, "sk-any-key", str(RECORDING)):
            failures.append(f"{name}: turns on an open bridge")
        failures += [f"{name}: bridge log: {line}" for line in log_problems(log)]
    with bridge(GOOD_KEY) as (base_url, log):
        if not run_check(python, name, base_url, GOOD_KEY, str(RECORDING)):
            failures.append(f"{name}: turns with its own BRIDGE_API_KEYS key")
        if not run_check(python, name, base_url, WRONG_KEY, "--refused"):
            failures.append(f"{name}: a wrong key was not refused")
        failures += [f"{name}: bridge log: {line}" for line in log_problems(log)]
    return failures


def main() -> int:
    names = sys.argv[1:] or sorted(p.parent.name for p in COMPAT.glob("*/check.py"))
    failures = [failure for name in names for failure in check_framework(name)]
    for failure in failures:
        print("FAIL", failure)
    print(f"compat: {len(names)} framework(s), {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
