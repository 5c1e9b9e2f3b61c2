"""Who a client is, by address, when a proxy stands between it and the bridge.

Behind nginx, Envoy or a cloud load balancer every connection comes from the proxy, so the
throttle on failed authentications (keyed by address) would punish every client for one
client's bad tokens, and logs and ``/sessions`` would name the proxy. The proxy appends the
address it saw to ``X-Forwarded-For``; that header is believed only when the connection comes
from an address in ``TRUSTED_PROXIES``, and then only as far back as the chain of trusted
proxies reaches: the client address is the rightmost entry that is not itself a trusted proxy.
Entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.7:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address: ``peer`` itself unless it is a trusted proxy; then the rightmost
    ``X-Forwarded-For`` entry (over every such header, in order) that is not a trusted proxy.
    A malformed entry stops the walk there (what lies left of it cannot be trusted), as does
    running out of entries: the last trusted hop found is the answer."""
    if peer is None or not trusted:
        return peer
    here = _address(peer)
    if here is None or not _trusted(here, trusted):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        here = address
        if not _trusted(address, trusted):
            break
    return str(here)


__all__ = ["Network", "client_address"]
