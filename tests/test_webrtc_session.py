"""A WebRTC call is one more client kind of the same session core: server tools, resumption,
limits and metrics apply to it; its media can be reached where the settings say; five calls at
once lose no audio."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.webrtc import ice
from tests import server_tool_impls
from tests.conftest import running_bridge
from tests.test_resume import bridge_on_simulator, drop
from tests.webrtc_caller import Caller, silence, speech_48k

pytestmark = pytest.mark.timeout(120)

CALL_ENV = {"UPSTREAM": "local", "WEBRTC_PUBLIC_ADDRESS": "127.0.0.1"}


async def open_call(server: BridgeServer, **call: Any) -> Caller:
    caller = Caller()
    answer = await caller.call(f"http://127.0.0.1:{server.http_port}/v1/realtime/calls", **call)
    assert answer.status == 201, answer.body
    await caller.wait_for("session.created")
    return caller


async def typed_turn(caller: Caller, text: str) -> str:
    """A typed user turn on the data channel; the answer's transcript."""
    first = len(caller.events)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    caller.send({"type": "conversation.item.create", "item": item})
    caller.send({"type": "response.create"})
    while True:
        done = await caller.wait_for("response.done", after=first, within_s=15)
        first = caller.events.index(done) + 1
        output = done["response"]["output"]
        messages = [o for o in output if o.get("type") == "message"]
        if messages:
            return str(messages[0]["content"][0].get("transcript", ""))


async def test_a_server_tool_runs_for_a_call(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(server_tool_impls.WEATHER_TOOL_TOML)
    server_tool_impls.CALLS.clear()
    async with running_bridge(
        LocalUpstream(pace=0), **CALL_ENV, BRIDGE_POLICY_FILE=str(policy)
    ) as server:
        caller = await open_call(server)
        answer = await typed_turn(caller, "What is the weather in Paris?")
        assert server_tool_impls.CALLS == [{"city": "Paris"}]
        assert "sunny in Paris" in answer
        assert not [e for e in caller.events if "function_call" in str(e.get("type"))]
        assert "error" not in caller.types()
        await caller.close()


async def test_a_call_survives_an_upstream_drop() -> None:
    async with (
        bridge_on_simulator(WEBRTC_PUBLIC_ADDRESS="127.0.0.1") as (server, simulator),
        aiohttp.ClientSession() as http,
    ):
        caller = await open_call(server)
        assert "apples" in await typed_turn(caller, "I like apples")
        await drop(http, simulator)
        answer = await typed_turn(caller, "What did I say first?")
        assert answer == 'You first said: "I like apples"'
        assert caller.types().count("session.created") == 1
        assert "error" not in caller.types()
        # The track goes on too: the caller's speech still reaches the new upstream.
        first = len(caller.events)
        caller.say(speech_48k() + silence(1.0))
        await caller.wait_for("input_audio_buffer.speech_started", after=first, within_s=20)
        async with http.get(f"http://127.0.0.1:{server.http_port}/metrics") as response:
            metrics = await response.text()
        assert 'realtime_bridge_sessions_started_total{client_kind="webrtc"} 1.0' in metrics
        await caller.close()


async def test_limits_refuse_a_call_before_its_upstream() -> None:
    async with running_bridge(LocalUpstream(pace=0), **CALL_ENV, MAX_SESSIONS="1") as server:
        caller = await open_call(server)
        second = Caller()
        refused = await second.call(f"http://127.0.0.1:{server.http_port}/v1/realtime/calls")
        assert refused.status == 503
        assert refused.json()["error"]["code"] == "session_limit_reached"
        await second.close()
        await caller.close()


def candidates(sdp: str) -> list[tuple[str, int]]:
    found = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", sdp)
    return [(host, int(port)) for host, port in found]


async def test_media_is_bound_in_the_port_range_and_announced_at_the_public_address() -> None:
    async with running_bridge(
        LocalUpstream(pace=0), **CALL_ENV, WEBRTC_UDP_PORTS="47000-47009"
    ) as server:
        caller = await open_call(server)  # reachable: a call connects through the range
        assert caller.answer is not None
        found = candidates(caller.answer.body)
        assert found
        assert all(host == "127.0.0.1" and 47000 <= port <= 47009 for host, port in found)
        await caller.close()
    # Every port of the range taken: the next call is refused before its upstream. (The
    # callers, in this process, gather their candidates first, outside the range.)
    callers = [Caller(), Caller()]
    for each in callers:
        await each.pc.setLocalDescription(await each.pc.createOffer())
    async with running_bridge(
        LocalUpstream(pace=0), **CALL_ENV, WEBRTC_UDP_PORTS="47010-47010"
    ) as server:
        caller, second = callers
        answer = await caller.call(f"http://127.0.0.1:{server.http_port}/v1/realtime/calls")
        assert answer.status == 201, answer.body
        await caller.wait_for("session.created")
        refused = await second.call(f"http://127.0.0.1:{server.http_port}/v1/realtime/calls")
        assert refused.status == 503
        assert refused.json()["error"]["code"] == "webrtc_unavailable"
        assert len(server.registry) == 1
        await second.close()
        await caller.close()
    # A public address that is not this machine's (a 1:1 NAT) is announced, with the ports
    # bound on the interfaces behind it. The offer is made first (candidates on loopback), and
    # never answered by the caller: nothing is sent beyond this machine.
    ice.install(ice.IceSettings(public_address="127.0.0.1"))  # the probe's own candidates
    probe = Caller()
    await probe.pc.setLocalDescription(await probe.pc.createOffer())
    offer = probe.pc.localDescription.sdp
    await probe.close()
    try:
        async with (
            running_bridge(
                LocalUpstream(pace=0), UPSTREAM="local", WEBRTC_PUBLIC_ADDRESS="203.0.113.7"
            ) as server,
            aiohttp.ClientSession() as http,
        ):
            url = f"http://127.0.0.1:{server.http_port}/v1/realtime/calls"
            sdp = {"Content-Type": "application/sdp"}
            behind_nat = ice.plan_addresses("203.0.113.7", ice.interface_addresses())[0]
            async with http.post(url, data=offer, headers=sdp) as response:
                if not behind_nat:  # only loopback here: no interface to put behind a NAT
                    assert response.status == 503
                    assert (await response.json())["error"]["code"] == "webrtc_unavailable"
                    return
                assert response.status == 201, await response.text()
                answer, location = await response.text(), response.headers["Location"]
            found = candidates(answer)
            assert found
            assert {host for host, _ in found} == {"203.0.113.7"}
            assert {port for _, port in found} <= set(range(1024, 65536))
            async with http.post(f"http://127.0.0.1:{server.http_port}{location}/hangup"):
                pass
            assert await server.registry.wait_for_count(0, 5.0)
    finally:
        ice.install(ice.IceSettings(public_address="127.0.0.1"))  # this process's later calls


async def inbound_packets(call: Any) -> tuple[int, int]:
    """The bridge's side of a call: RTP packets received and lost on the caller's track."""
    stats = await call._peer._pc.getStats()
    inbound = [s for s in stats.values() if s.type == "inbound-rtp"]
    return inbound[0].packetsReceived, inbound[0].packetsLost


async def outbound_packets(caller: Caller) -> int:
    """The caller's side: RTP packets its sender has sent."""
    stats = await caller.pc.getStats()
    return int(next(s for s in stats.values() if s.type == "outbound-rtp").packetsSent)


async def test_five_calls_at_once_lose_no_audio_frame() -> None:
    async with running_bridge(LocalUpstream(), **CALL_ENV, LOG_LEVEL="info") as server:
        callers = [await open_call(server) for _ in range(5)]
        for caller in callers:
            caller.say(speech_48k() + silence(1.0))
        for caller in callers:
            await caller.wait_for("response.done", within_s=60)
        # Each caller stops sending; every packet it sent reached the bridge, none was lost,
        # and every frame decoded went to the session (none dropped while it started).
        for caller in callers:
            caller.track.stop()
        calls = list(server.state.calls.values())
        assert len(calls) == 5
        for caller in callers:
            assert caller.answer is not None
            call = server.state.calls[caller.answer.call_id]
            # The caller's sender may still send the frame it held when the track stopped, so
            # both counts are read afresh until they agree twice in a row.
            deadline = time.monotonic() + 10
            agreed = 0
            while agreed < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # RTCP-free counting: the packets are in flight
                sent = await outbound_packets(caller)
                received, lost = await inbound_packets(call)
                agreed = agreed + 1 if received == sent else 0
            assert received == sent
            assert lost == 0
            assert call.dropped_audio_bytes == 0
            # Decoded frames: all but the few the receiver's jitter buffer still holds.
            decoded = call.audio_in_ms / 20
            assert received - 5 <= decoded <= received
            record = server.registry.get(call.session_id)
            assert record is not None
            assert abs(record.audio_seconds["client_to_upstream"] * 1000 - call.audio_in_ms) < 1
            assert record.audio_seconds["upstream_to_client"] > 1.0  # each got its answer
        for caller in callers:
            await caller.close()
