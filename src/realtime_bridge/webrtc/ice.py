"""Where the bridge's WebRTC media can be reached: host addresses, a public address, a UDP port
range and STUN/TURN servers.

aiortc gathers ICE candidates through aioice, which offers every interface address but
loopback and binds ephemeral ports, with no setting for either. A bridge needs more: on a
machine whose only interface is loopback (a test runner, some containers) it must offer
127.0.0.1; behind a 1:1 NAT (a cloud VM, a Kubernetes hostPort) it must announce the public
address with the ports it bound; a firewall wants a known port range. aioice exposes these
decisions as two module-level functions, so :func:`install` replaces them for this process, in
one place, with the behaviour the settings ask for; aiortc's own code is unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import ifaddr
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer

_original_component_candidates = aioice.ice.Connection.get_component_candidates


@dataclass(frozen=True, slots=True)
class IceSettings:
    #: Announced as the host candidate; bound directly when it is one of this machine's.
    public_address: str | None = None
    #: Inclusive UDP port range for media sockets (None: ephemeral ports).
    ports: tuple[int, int] | None = None
    #: ``stun:`` / ``turn:`` / ``turns:`` URLs (aiortc uses the first of each kind).
    servers: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_password: str | None = None


def interface_addresses() -> list[str]:
    """This machine's IPv4 and global IPv6 addresses, loopback included."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif ip.ip[2] == 0 and not ipaddress.ip_address(ip.ip[0]).is_link_local:
                found.append(ip.ip[0])
    return found


def plan_addresses(public: str | None, local: Iterable[str]) -> tuple[list[str], str | None]:
    """Pure: the addresses to bind, and the address to announce instead of them (or None).

    No public address: every non-loopback address, or loopback when there is no other. A public
    address of this machine's (127.0.0.1 included): bind it alone. Any other: bind every
    non-loopback address and announce the public one (1:1 NAT keeps the ports)."""
    local = list(local)
    outside = [a for a in local if not ipaddress.ip_address(a).is_loopback]
    if public is None:
        return (outside or [a for a in local if ipaddress.ip_address(a).is_loopback]), None
    if public in local:
        return [public], None
    version = ipaddress.ip_address(public).version
    same_family = [a for a in outside if ipaddress.ip_address(a).version == version]
    return (same_family or outside), public


def rtc_configuration(settings: IceSettings) -> RTCConfiguration:
    """The peer connection's ICE servers: exactly the configured ones (aiortc would otherwise
    ask a public STUN server, which a closed network refuses after a 5 s wait)."""
    servers = [
        RTCIceServer(
            urls=url,
            username=settings.turn_username if url.startswith("turn") else None,
            credential=settings.turn_password if url.startswith("turn") else None,
        )
        for url in settings.servers
    ]
    return RTCConfiguration(iceServers=servers)


def install(settings: IceSettings) -> None:
    """Make aioice gather candidates as ``settings`` say (for every peer connection of this
    process; calling again replaces the previous settings)."""
    bind, announce = plan_addresses(settings.public_address, interface_addresses())

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in bind if (use_ipv6 if ipaddress.ip_address(a).version == 6 else use_ipv4)]

    async def component_candidates(
        self: aioice.ice.Connection,
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109
    ) -> list[aioice.Candidate]:
        if settings.ports is None:
            found = await _original_component_candidates(self, component, addresses, timeout)
        else:
            found = await _candidates_in_range(self, component, addresses, settings.ports)
            found += await _original_component_candidates(self, component, [], timeout)
        return [_announced(c, announce) for c in found] if announce else found

    aioice.ice.get_host_addresses = host_addresses
    aioice.ice.Connection.get_component_candidates = component_candidates  # type: ignore[method-assign]


def _announced(candidate: aioice.Candidate, public: str) -> aioice.Candidate:
    """A host candidate as the caller must see it: the public address, the same port (the
    socket itself stays bound where it is, so pairing still uses the local one)."""
    if candidate.type != "host":
        return candidate
    shown = copy.copy(candidate)
    shown.host = public
    return shown


async def _candidates_in_range(
    connection: aioice.ice.Connection,
    component: int,
    addresses: list[str],
    ports: tuple[int, int],
) -> list[aioice.Candidate]:
    """Host candidates on ports of the range (and their STUN reflections), as aioice makes them
    on ephemeral ports."""
    loop = asyncio.get_running_loop()
    found: list[aioice.Candidate] = []
    protocols: list[Any] = []
    for address in addresses:
        bound = await _bind_in_range(
            loop, lambda: aioice.ice.StunProtocol(connection), address, ports
        )
        if bound is None:
            continue
        protocol = bound
        host, port = protocol.transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = aioice.Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        protocols.append(protocol)
        found.append(protocol.local_candidate)
    connection._protocols += protocols
    if connection.stun_server:
        reflexive = [
            aioice.ice.server_reflexive_candidate(p, connection.stun_server)
            for p in protocols
            if ipaddress.ip_address(p.local_candidate.host).version == 4
        ]
        for result in await asyncio.gather(*reflexive, return_exceptions=True):
            if isinstance(result, tuple):
                found.append(result[0])
    return found


async def _bind_in_range(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], Any],
    address: str,
    ports: tuple[int, int],
) -> Any | None:
    """A datagram endpoint on a free port of the range (tried from a random start), or None
    when every port is taken."""
    first, last = ports
    count = last - first + 1
    start = random.randrange(count)  # noqa: S311 (spreads calls over the range)
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    for step in range(count):
        port = first + (start + step) % count
        try:
            _transport, protocol = await loop.create_datagram_endpoint(
                factory, local_addr=(address, port), family=family
            )
        except OSError:
            continue
        return protocol
    return None


__all__ = [
    "IceSettings",
    "install",
    "interface_addresses",
    "plan_addresses",
    "rtc_configuration",
]
