"""WebRTC calls with ``WORKERS=2``: a call lives in the worker that answered its offer, yet its
sideband and its page's hangup work whichever worker the kernel hands them to."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest

from realtime_bridge.webrtc import ice
from tests.test_workers import serving
from tests.webrtc_caller import Caller

pytestmark = pytest.mark.timeout(90)

TOKEN = "backend-token-for-webrtc-workers"
#: Each sideband lands on a worker chosen by the kernel: enough tries to meet both.
ATTEMPTS = 16


async def test_sidebands_and_hangups_reach_the_call_from_any_worker(tmp_path: Path) -> None:
    ice.install(ice.IceSettings(public_address="127.0.0.1"))  # this process's caller
    env = {"WEBRTC_PUBLIC_ADDRESS": "127.0.0.1", "BRIDGE_API_KEYS": TOKEN}
    async with serving(tmp_path, **env) as served, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"session": {"type": "realtime"}}
        async with http.post(
            f"{served.http}/v1/realtime/client_secrets", json=body, headers=auth
        ) as minted:
            secret = (await minted.json())["value"]
        caller = Caller()
        answer = await caller.call(f"{served.http}/v1/realtime/calls", token=secret)
        assert answer.status == 201, answer.body
        await caller.wait_for("session.created")
        for attempt in range(ATTEMPTS):
            url = f"{served.ws}?call_id={answer.call_id}"
            async with http.ws_connect(url, headers=auth) as sideband:
                reply = f"answer {attempt}"
                update = {"type": "realtime", "instructions": f"Reply with: {reply}"}
                await sideband.send_str(
                    orjson.dumps({"type": "session.update", "session": update}).decode()
                )
                async with asyncio.timeout(10):
                    while True:
                        event = orjson.loads(await sideband.receive_str())
                        if event["type"] == "session.updated":
                            break
                assert event["session"]["instructions"] == f"Reply with: {reply}"
        relayed = served.log.read_text().count("sideband relayed")
        attached = served.log.read_text().count("sideband attached")
        assert attached == ATTEMPTS  # each attached where the call lives, relayed or not
        assert 1 <= relayed < ATTEMPTS  # the kernel spread them: some were relayed (1 in 65536 not)
        # The page hangs up with its own secret, on whichever worker the request lands.
        hangup = f"{served.http}/v1/realtime/calls/{answer.call_id}/hangup"
        async with http.post(hangup, headers={"Authorization": f"Bearer {secret}"}) as response:
            assert response.status == 200, await response.text()
        await caller.close()
