"""TRUSTED_PROXIES: behind a proxy, the client's address comes from X-Forwarded-For, and only
from a proxy the operator named; a client cannot write its way out of the throttle."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import aiohttp
import orjson
import pytest

from realtime_bridge.server.client_address import client_address
from tests.test_attacks import bridge

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # A direct client: its header is its own claim, never believed.
        ("198.51.100.9", ["203.0.113.5"], "198.51.100.9"),
        # One trusted proxy in front: the address it appended.
        ("10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
        # What the client wrote itself (left of what the proxy appended) is ignored.
        ("10.0.0.2", ["1.2.3.4, 203.0.113.5"], "203.0.113.5"),
        # A chain of trusted proxies is walked back to the first address that is not one.
        ("10.0.0.2", ["203.0.113.5, 10.1.1.1, 10.2.2.2"], "203.0.113.5"),
        # Several headers count as one list, in order.
        ("10.0.0.2", ["1.2.3.4", "203.0.113.5, 10.1.1.1"], "203.0.113.5"),
        # No header, or only proxies in it: the last proxy is the client as far as is known.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["10.9.9.9"], "10.9.9.9"),
        # A malformed entry stops the walk: nothing left of it can be trusted.
        ("10.0.0.2", ["203.0.113.5, unknown"], "10.0.0.2"),
        ("10.0.0.2", ["203.0.113.5, bogus, 10.1.1.1"], "10.1.1.1"),
        # Ports and brackets as proxies write them; IPv6; IPv4-mapped peers.
        ("10.0.0.2", ["203.0.113.5:51234"], "203.0.113.5"),
        ("fd00::7", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("fd00::7", ["2001:db8::2"], "2001:db8::2"),
        ("::ffff:10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
        # Empty entries are skipped, not taken for a client.
        ("10.0.0.2", ["203.0.113.5, ,"], "203.0.113.5"),
    ],
)
def test_the_client_address_is_read_only_through_trusted_proxies(
    peer: str, headers: list[str], expected: str
) -> None:
    assert client_address(peer, headers, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.0.0.2", ["203.0.113.5"], ()) == "10.0.0.2"
    assert client_address(None, ["203.0.113.5"], PROXIES) is None


async def _refused_status(http: aiohttp.ClientSession, port: int, token: str, xff: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(
            f"ws://127.0.0.1:{port}/v1/realtime",
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": xff},
        )
    return refused.value.status


async def test_behind_a_trusted_proxy_one_clients_failures_throttle_only_that_client(
    tmp_path: Path,
) -> None:
    async with bridge(
        tmp_path,
        BRIDGE_API_KEYS="the-right-token",
        BRIDGE_ADMIN_TOKEN="the-admin-token",
        TRUSTED_PROXIES="127.0.0.1",  # the tests' connections stand for the proxy's
    ) as served:
        async with aiohttp.ClientSession() as http:
            attacker = "203.0.113.5"
            statuses = [
                await _refused_status(http, served.ws_port, f"guess-{n}", attacker)
                for n in range(11)
            ]
            assert statuses == [401] * 10 + [429]
            # Writing another address in front of the proxy's entry does not help.
            spoofed = f"198.51.100.77, {attacker}"
            assert await _refused_status(http, served.ws_port, "guess-x", spoofed) == 429
            # A WebRTC call from the attacker is throttled as well: the same address.
            async with http.post(
                f"http://127.0.0.1:{served.http_port}/v1/realtime/calls",
                data=b"v=0\r\n",
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": "Bearer the-right-token",
                    "X-Forwarded-For": attacker,
                },
            ) as call:
                assert call.status == 429
            # Another client behind the same proxy is not punished, and is named in /sessions.
            async with http.ws_connect(
                f"ws://127.0.0.1:{served.ws_port}/v1/realtime",
                headers={
                    "Authorization": "Bearer the-right-token",
                    "X-Forwarded-For": "198.51.100.9",
                },
            ) as ws:
                created = orjson.loads((await ws.receive(timeout=10)).data)
                assert created["type"] == "session.created"
                async with http.get(
                    f"http://127.0.0.1:{served.http_port}/sessions",
                    headers={"Authorization": "Bearer the-admin-token"},
                ) as listing:
                    sessions = (await listing.json())["sessions"]
                assert [s["client"] for s in sessions] == ["198.51.100.9"]
    logs = served.logs()
    assert "client=203.0.113.5" in logs or '"client": "203.0.113.5"' in logs


async def test_without_trusted_proxies_a_forwarded_header_changes_nothing(
    tmp_path: Path,
) -> None:
    async with bridge(tmp_path, BRIDGE_API_KEYS="the-right-token") as served:
        async with aiohttp.ClientSession() as http:
            statuses = [
                await _refused_status(http, served.ws_port, f"guess-{n}", f"203.0.113.{n}")
                for n in range(11)
            ]
            # Every attempt is the connection's own address, whatever the header says.
            assert statuses == [401] * 10 + [429]
