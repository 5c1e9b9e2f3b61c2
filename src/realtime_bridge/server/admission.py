"""Who may open a client session: the origin and token checks done at the upgrade (SPEC §8).

Pure functions over plain values (headers, query, offered subprotocols, settings), so they are
tested without sockets. The server calls :func:`admit` before anything else happens for an
upgrade — in particular before any upstream connection is opened — and turns a refusal into an
HTTP 403 (``forbidden_origin``) or 401 (``unauthorized``).

Tokens are compared with :func:`hmac.compare_digest` against *every* configured key, so the time
taken depends neither on which key matched nor on how much of a wrong token was right. A token is
never logged; :func:`token_fingerprint` gives a short hash to tell clients apart in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.http_exceptions import HttpProcessingError
from pydantic import SecretStr

from realtime_bridge.errors import ClientError, ErrorCode

#: Subprotocol prefix the official SDKs use to carry a key from a browser (SPEC §4).
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
#: Hostnames under which the bridge's own demo page is always reachable on this machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class Admitted:
    """A client that passed the checks; ``token_id`` is a log-safe fingerprint (or None)."""

    token_id: str | None


def normalise_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case with default ports dropped; None if malformed."""
    text = origin.strip().rstrip("/").lower()
    if text == "null":
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    if port is None or port == default:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def own_origins(http_url: str, bind_host: str, request_host: str | None) -> frozenset[str]:
    """The origins of the bridge's own demo page, which are always allowed.

    The page is served by the HTTP listener (``http_url``, e.g. ``http://127.0.0.1:3000``); a
    browser may have loaded it as ``localhost`` or ``127.0.0.1``, under the configured bind host,
    or under the IP address it used to reach the bridge (the request's ``Host``, e.g. a LAN
    address when bound to 0.0.0.0). A DNS name from ``Host`` is *not* trusted: with DNS
    rebinding an attacker's page can present its own name as both ``Origin`` and ``Host``.
    A bridge reached by a DNS name lists its page origin in ``ALLOWED_ORIGINS``.
    """
    try:
        parts = urlsplit(http_url)
        port = parts.port
    except ValueError:
        return frozenset()
    if port is None:
        return frozenset()
    hosts = set(LOOPBACK_HOSTS)
    if parts.hostname:
        hosts.add(f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname)
    if bind_host not in _WILDCARD_HOSTS:
        hosts.add(bind_host)
    if request_host:
        try:
            name = urlsplit(f"//{request_host}").hostname
        except ValueError:
            name = None
        if name and _is_ip_literal(name):
            hosts.add(f"[{name}]" if ":" in name else name)
    found = {
        normalise_origin(f"{scheme}://{h}:{port}") for scheme in ("http", "https") for h in hosts
    }
    return frozenset(origin for origin in found if origin is not None)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str | None, allowed: Iterable[str], own: Iterable[str] = ()) -> bool:
    """SPEC §8: no ``Origin`` header (not a browser) passes; an empty list allows any origin;
    ``*`` in the list allows any; the bridge's own page origins always pass."""
    if origin is None:
        return True
    allowed = tuple(allowed)
    if not allowed or "*" in allowed:
        return True
    candidate = normalise_origin(origin)
    if candidate is None:
        return False
    permitted = {normalise_origin(entry) for entry in allowed} | set(own)
    return candidate in permitted


def presented_tokens(
    headers: Mapping[str, str], query: Mapping[str, str], protocols: Iterable[str]
) -> list[str]:
    """Every token the client presented: ``Authorization: Bearer``, ``?token=``, and the
    ``openai-insecure-api-key.<token>`` subprotocol (in that order)."""
    tokens: list[str] = []
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    token = query.get("token")
    if token:
        tokens.append(token)
    for protocol in protocols:
        protocol = protocol.strip()
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX) and len(protocol) > len(
            KEY_SUBPROTOCOL_PREFIX
        ):
            tokens.append(protocol[len(KEY_SUBPROTOCOL_PREFIX) :])
    return tokens


def offered_subprotocols(header: str | None) -> list[str]:
    """The subprotocols a ``Sec-WebSocket-Protocol`` header offers."""
    if not header:
        return []
    return [part.strip() for part in header.split(",") if part.strip()]


def token_matches(token: str, keys: Iterable[SecretStr]) -> bool:
    """Constant-time check of ``token`` against every key (no early exit on a match)."""
    presented = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key.get_secret_value().encode())
    return matched


def token_fingerprint(token: str) -> str:
    """A short, log-safe fingerprint of a token (first 12 hex digits of its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def admit(
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    api_keys: tuple[SecretStr, ...],
    allowed_origins: tuple[str, ...],
    own: Iterable[str] = (),
) -> Admitted:
    """Check origin, then token (SPEC §8). Raises :class:`ClientError` with ``forbidden_origin``
    or ``unauthorized``; the messages never contain what the client presented."""
    if not origin_allowed(headers.get("Origin"), allowed_origins, own):
        raise ClientError(
            ErrorCode.FORBIDDEN_ORIGIN, "This origin is not allowed to connect to the bridge."
        )
    if not api_keys:
        return Admitted(token_id=None)
    protocols = offered_subprotocols(headers.get("Sec-WebSocket-Protocol"))
    tokens = presented_tokens(headers, query, protocols)
    if not tokens:
        raise ClientError(
            ErrorCode.UNAUTHORIZED,
            "A bridge token is required: send 'Authorization: Bearer <token>', the 'token' "
            "query parameter, or the 'openai-insecure-api-key.<token>' subprotocol.",
        )
    # Check every presented token (no early exit) so timing does not tell which one was right.
    good = [token for token in tokens if token_matches(token, api_keys)]
    if not good:
        raise ClientError(ErrorCode.UNAUTHORIZED, "The bridge token is not valid.")
    return Admitted(token_id=token_fingerprint(good[0]))


class BadRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line over the limit, garbage) at ERROR
    with a traceback. That is the client's fault and anyone can cause it, so it is logged at
    INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "bad HTTP request: %s", (str(exc).splitlines()[0][:120],)
            record.exc_info = record.exc_text = None
        return True


def install_log_filters() -> None:
    """Install :class:`BadRequestFilter` on aiohttp's server logger (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
