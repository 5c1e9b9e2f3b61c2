"""``WORKERS=N``: a real supervisor process and its workers on shared ports. Sessions land on
more than one worker, the HTTP API answers for the whole server, a killed worker is replaced
while the others' sessions go on, and SIGTERM drains them all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.test_deploy import image_env
from tests.test_process import COMMAND, READY, clean_env

ADMIN = "admin-token-for-workers"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
TIMEOUT = 20.0
STARTED_10 = 'realtime_bridge_sessions_started_total{client_kind="realtime"} 10.0'


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Await a condition the server reaches on its own clock (the workers' snapshots are a
    second apart): asked again at each answer, bounded by the timeout."""

    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.1)  # asking a server again; the bound is the timeout

    try:
        await asyncio.wait_for(loop(), TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"not reached within {TIMEOUT} s: {what}") from None


def run_dir(served: Served) -> Path:
    found = re.search(r"run directory (\S+)\)", served.log.read_text())
    assert found is not None
    return Path(found.group(1))


async def snapshot_shows(served: Served, index: int, sessions: int) -> None:
    """Wait until worker ``index``'s snapshot (what the supervisor counts when it dies) shows
    its sessions: snapshots are written once a second."""

    async def written() -> bool:
        try:
            data = orjson.loads((run_dir(served) / f"worker-{index}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return False
        return bool(data.get("session_count") == sessions)

    await until(written, f"worker {index}'s snapshot with its {sessions} sessions")


async def snapshots_show(served: Served, total: int) -> None:
    """Wait until every worker's snapshot is in step with its sessions (``total`` in all), so
    that whichever worker answers a request sees the same whole server."""

    async def in_step() -> bool:
        count = 0
        for path in run_dir(served).glob("worker-*.json"):
            try:
                count += int(orjson.loads(path.read_bytes()).get("session_count", 0))
            except (OSError, orjson.JSONDecodeError):
                return False
        return count == total

    await until(in_step, f"the workers' snapshots showing {total} sessions")


class Served:
    log: Path

    def __init__(self, process: asyncio.subprocess.Process, ws: int, http: int) -> None:
        self.process = process
        self.ws = f"ws://127.0.0.1:{ws}/v1/realtime"
        self.http = f"http://127.0.0.1:{http}"

    async def get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(self.http + path, headers=HEADERS) as response:
            return await response.json()

    async def text(self, session: aiohttp.ClientSession, path: str) -> str:
        async with session.get(self.http + path, headers=HEADERS) as response:
            return await response.text()


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **extra: str) -> AsyncIterator[Served]:
    """A supervisor with two workers on loopback, until the block ends."""
    env = {
        "WORKERS": "2",
        "WS_PORT": "0",
        "HTTP_PORT": "0",
        "LOCAL_AUDIO_PACE": "0",
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        "SHUTDOWN_GRACE_S": "2",
        "MAX_SESSIONS": "12",
        **extra,
    }
    log = tmp_path / "bridge.log"
    with log.open("wb") as errors:  # a file, not a pipe: nobody has to keep reading the logs
        process = await asyncio.create_subprocess_exec(
            COMMAND,
            cwd=tmp_path,
            env=clean_env(**env),
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        match = READY.search(line)
        assert match, line + log.read_text()
        assert line.strip().endswith("workers=2")
        served = Served(process, int(match.group(2)), int(match.group(4)))
        served.log = log
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as running:
        yield running


async def open_sessions(
    http: aiohttp.ClientSession, served: Served, count: int
) -> tuple[list[aiohttp.ClientWebSocketResponse], list[dict[str, Any]]]:
    """``count`` sessions, each with its first event read."""
    clients = [await http.ws_connect(served.ws) for _ in range(count)]
    firsts = [orjson.loads((await ws.receive()).data) for ws in clients]
    return clients, firsts


async def on_both_workers(http: aiohttp.ClientSession, served: Served, total: int) -> None:
    """Wait until the snapshots count ``total`` sessions and each worker holds some."""

    async def both_busy() -> bool:
        workers = (await served.get(http, "/health"))["workers"]
        return len(workers) == 2 and all(w["sessions"] > 0 for w in workers)

    await snapshots_show(served, total)
    await until(both_busy, "sessions on both workers")


async def typed_turn(ws: aiohttp.ClientWebSocketResponse, text: str) -> str:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await ws.send_str('{"type":"response.create","response":{"output_modalities":["text"]}}')
    said = ""
    while True:
        event = orjson.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
        if event["type"] == "response.output_text.delta":
            said += event["delta"]
        if event["type"] == "response.done":
            return said


async def test_sessions_spread_over_workers_and_the_api_sees_them_all(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        clients, firsts = await open_sessions(http, served, 10)
        assert [event["type"] for event in firsts] == ["session.created"] * 10

        async def all_counted() -> bool:
            health = await served.get(http, "/health")
            return health["sessions"] == 10 and len(health["workers"]) == 2

        await snapshots_show(served, 10)
        await until(all_counted, "/health counts the ten sessions of both workers")
        health = await served.get(http, "/health")
        per_worker = [worker["sessions"] for worker in health["workers"]]
        listed = (await served.get(http, "/sessions"))["sessions"]
        info = await served.get(http, "/info")
        metrics = ""

        async def metrics_summed() -> bool:  # the others' metrics are written every 5 s
            nonlocal metrics
            metrics = await served.text(http, "/metrics")
            return STARTED_10 in metrics

        await until(metrics_summed, "/metrics summing both workers' sessions")
        for ws in clients:
            await ws.close()
    assert all(count > 0 for count in per_worker), per_worker  # both workers took sessions
    assert sum(per_worker) == 10
    assert len(listed) == 10
    assert {session["worker"] for session in listed} == {0, 1}
    assert STARTED_10 in metrics  # summed over the workers
    assert info["sessions"]["active"] == 10
    assert info["workers"] == 2


async def test_a_session_on_another_worker_can_be_ended_from_any(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        clients, _ = await open_sessions(http, served, 8)

        async def listed_all() -> bool:
            return len((await served.get(http, "/sessions"))["sessions"]) == 8

        await snapshots_show(served, 8)
        await until(listed_all, "every session listed")
        sessions = (await served.get(http, "/sessions"))["sessions"]
        # Whichever worker answers the DELETE, every session is ended, each by its own worker.
        for session in sessions:
            async with http.delete(f"{served.http}/sessions/{session['id']}", headers=HEADERS) as r:
                assert r.status == 200, await r.text()
        codes = []
        for ws in clients:
            while (message := await asyncio.wait_for(ws.receive(), TIMEOUT)).type is (
                aiohttp.WSMsgType.TEXT
            ):
                pass
            codes.append(message.data)
    assert codes == [1000] * 8


async def test_a_killed_worker_is_replaced_and_the_others_sessions_go_on(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        clients, _ = await open_sessions(http, served, 10)
        await on_both_workers(http, served, 10)
        sessions = (await served.get(http, "/sessions"))["sessions"]
        victim = (await served.get(http, "/health"))["workers"][0]
        await snapshot_shows(served, victim["index"], victim["sessions"])
        os.kill(victim["pid"], signal.SIGKILL)
        survivors = [s["id"] for s in sessions if s["worker"] != victim["index"]]
        # The other worker's sessions are untouched: each still answers a turn.
        alive = []
        for ws in clients:
            try:
                alive.append(await typed_turn(ws, "still here?"))
            except (TimeoutError, aiohttp.ClientError, TypeError, orjson.JSONDecodeError):
                continue
        assert len(alive) == len(survivors)

        async def replaced() -> bool:
            workers = (await served.get(http, "/health"))["workers"]
            pids = {w["pid"] for w in workers}
            return len(workers) == 2 and victim["pid"] not in pids

        await until(replaced, "a new worker in place of the killed one")
        metrics = await served.text(http, "/metrics")
        for ws in clients:
            await ws.close()
    assert "realtime_bridge_worker_restarts_total 1.0" in metrics
    lost = re.search(r"^realtime_bridge_worker_lost_sessions_total (\S+)$", metrics, re.M)
    assert lost is not None
    assert float(lost.group(1)) == 10 - len(survivors)


async def test_sigterm_drains_every_worker(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        clients, _ = await open_sessions(http, served, 6)
        served.process.send_signal(signal.SIGTERM)
        codes = []
        for ws in clients:
            while (message := await asyncio.wait_for(ws.receive(), TIMEOUT)).type is (
                aiohttp.WSMsgType.TEXT
            ):
                pass
            codes.append(message.data)
        assert await asyncio.wait_for(served.process.wait(), TIMEOUT) == 0
    assert codes == [1001] * 6  # ended by the drain (SHUTDOWN_GRACE_S=2), each by its worker


async def test_max_sessions_counts_every_worker(served: Served) -> None:
    """MAX_SESSIONS=12 for the whole server: with 12 sessions spread over both workers, each
    holding fewer than 12, a new one is refused (once the workers' snapshots are in)."""
    async with aiohttp.ClientSession() as http:
        clients, _ = await open_sessions(http, served, 12)
        refused: list[int] = []

        async def refuses() -> bool:
            try:
                extra = await http.ws_connect(served.ws)
            except aiohttp.WSServerHandshakeError as error:
                refused.append(error.status)
                return True
            await extra.close()  # admitted on a view a tick old: let it go and ask again
            return False

        await until(refuses, "a 13th session refused")
        per_worker = [w["sessions"] for w in (await served.get(http, "/health"))["workers"]]
        for ws in clients:
            await ws.close()
    assert refused == [503]
    assert max(per_worker) < 12  # no worker was full on its own: the limit is the server's


async def test_a_failing_worker_ends_its_sessions_with_1011_and_is_replaced(
    served: Served,
) -> None:
    """A worker that can no longer keep its place among the others (here: its snapshot cannot
    be written) ends its sessions with 1011 and exits; the supervisor counts them and starts a
    new worker. The other worker's sessions go on."""
    async with aiohttp.ClientSession() as http:
        clients, _ = await open_sessions(http, served, 10)
        await on_both_workers(http, served, 10)
        failing = (await served.get(http, "/health"))["workers"][0]
        await snapshot_shows(served, failing["index"], failing["sessions"])
        blocker = run_dir(served) / f"worker-{failing['index']}.sessions.tmp"
        blocker.mkdir()  # where the worker writes its next snapshot: it cannot any more

        async def told(ws: aiohttp.ClientWebSocketResponse) -> int:
            """The error event, then the close code."""
            event = orjson.loads((await ws.receive()).data)
            assert event["error"]["code"] == "internal_error"
            return int((await ws.receive()).data)

        waiting = [asyncio.ensure_future(told(ws)) for ws in clients]
        ended: list[int] = []
        for finished in asyncio.as_completed(waiting, timeout=TIMEOUT):
            ended.append(await finished)
            if len(ended) == failing["sessions"]:
                break
        for task in waiting:  # the other worker's clients are told nothing
            task.cancel()
        blocker.rmdir()

        async def replaced() -> bool:
            workers = (await served.get(http, "/health"))["workers"]
            return len(workers) == 2 and failing["pid"] not in {w["pid"] for w in workers}

        await until(replaced, "a new worker in place of the failed one")
        metrics = await served.text(http, "/metrics")
        for ws in clients:
            await ws.close()
    assert ended == [1011] * failing["sessions"]
    lost = re.search(r"^realtime_bridge_worker_lost_sessions_total (\S+)$", metrics, re.M)
    assert lost is not None
    assert float(lost.group(1)) == failing["sessions"]


async def test_workers_do_not_outlive_a_killed_supervisor(served: Served) -> None:
    """A supervisor killed outright (SIGKILL: it cannot drain) takes its workers with it
    within a tick or two, instead of leaving them serving on their own."""
    async with aiohttp.ClientSession() as http:
        pids = [w["pid"] for w in (await served.get(http, "/health"))["workers"]]
    served.process.kill()
    await served.process.wait()

    async def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") for pid in pids)

    await until(gone, "the workers exiting after their supervisor")


async def test_the_images_settings_start_every_worker(tmp_path: Path) -> None:
    """The Dockerfile's environment (WEBRTC_UDP_PORTS, LOG_FORMAT=json, …) reaches each worker
    intact: the supervisor once wrote WEBRTC_UDP_PORTS back as "40000,40099", and the image's
    workers refused to start. Loopback and two workers here instead of 0.0.0.0 and ``auto``."""
    image = image_env()
    assert image["WEBRTC_UDP_PORTS"]  # what broke the workers
    ours = ("PATH", "HOST", "WORKERS", "WS_PORT", "HTTP_PORT")  # set by ``serving``
    kept = {k: v for k, v in image.items() if k not in ours}
    async with serving(tmp_path, **kept) as served, aiohttp.ClientSession() as http:
        health = await served.get(http, "/health")
        assert sorted(int(w["index"]) for w in health["workers"]) == [0, 1]
        async with http.ws_connect(served.ws, headers=HEADERS) as ws:
            assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "session.created"
            assert await typed_turn(ws, "hello from the image")
    # LOG_FORMAT=json reached the workers: every line is JSON, the session's own among them.
    lines = [orjson.loads(line) for line in served.log.read_bytes().splitlines() if line]
    assert "session start" in {line["message"] for line in lines}
