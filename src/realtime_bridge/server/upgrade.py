"""What a WebSocket upgrade request says, and the answers to it that are not a session yet.

Pure over the request's headers and query (no sockets): which paths and model names are valid,
what the client declared (formats, beta), whether the upgrade itself is well-formed (RFC 6455
§4.2.1), and the refusals and 101 answers in picows' shapes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from picows import WSListener, WSUpgradeResponse, WSUpgradeResponseWithListener

from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.translate import is_beta_header_value, offers_beta_subprotocol
from realtime_bridge.server.admission import offered_subprotocols
from realtime_bridge.server.http import error_document

#: The paths a client session may be opened on.
SESSION_PATHS = ("/", "/v1/realtime")
#: What a model (or Azure deployment) name looks like; anything else is refused at the upgrade,
#: so it never reaches the logs or the upstream's URL.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: Subprotocols the bridge may select, and only when the client offered them.
SELECTABLE_SUBPROTOCOLS = ("realtime",)


def refusal(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(
        status,
        json.dumps(error_document(code, message)).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )
    return WSUpgradeResponseWithListener(response, None)


def is_websocket_upgrade(headers: Mapping[str, str]) -> bool:
    return headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in (
        token.strip() for token in headers.get("Connection", "").lower().split(",")
    )


def upgrade_problem(headers: Mapping[str, str]) -> str | None:
    """What makes a WebSocket upgrade request invalid (RFC 6455 §4.2.1), or None."""
    if headers.get("Sec-WebSocket-Version") != "13":
        return "Sec-WebSocket-Version must be 13."
    try:
        key = base64.b64decode(headers.get("Sec-WebSocket-Key", "").encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        key = b""
    if len(key) != 16:
        return "Sec-WebSocket-Key must be 16 bytes in base64."
    return None


def handshake_options(headers: Mapping[str, str], query: Mapping[str, str]) -> HandshakeOptions:
    """Formats, binary audio and protocol version as the client declared them when connecting."""
    offered = offered_subprotocols(headers.get("Sec-WebSocket-Protocol"))
    beta = is_beta_header_value(headers.get("OpenAI-Beta")) or offers_beta_subprotocol(offered)
    return HandshakeOptions.from_query(query, beta=beta)


def switching(
    headers: Mapping[str, str], session_id: str, listener: WSListener
) -> WSUpgradeResponseWithListener:
    """The 101: the session's id, and ``realtime`` as the subprotocol if the client offered it."""
    response_headers = {"X-Bridge-Session-Id": session_id}
    offered = offered_subprotocols(headers.get("Sec-WebSocket-Protocol"))
    chosen = next((p for p in SELECTABLE_SUBPROTOCOLS if p in offered), None)
    if chosen is not None:
        response_headers["Sec-WebSocket-Protocol"] = chosen
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_101_response(response_headers), listener
    )


__all__ = [
    "MODEL_NAME",
    "SESSION_PATHS",
    "handshake_options",
    "is_websocket_upgrade",
    "refusal",
    "switching",
    "upgrade_problem",
]
