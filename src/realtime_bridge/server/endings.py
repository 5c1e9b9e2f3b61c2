"""How a relay session ends: the endings, and the pure rules that pick them (a stalled peer,
an upstream that closed). The session (``server/bridge.py``) applies them; the first one
reported wins."""

from __future__ import annotations

from dataclasses import dataclass

from realtime_bridge.errors import (
    ERROR_POLICY,
    ClientError,
    CloseCode,
    ErrorCode,
    is_sendable_close_code,
)
from realtime_bridge.upstream.base import UpstreamClosed

CLIENT_STALLED = "client_stalled"


@dataclass(frozen=True, slots=True)
class Ending:
    """Why a session ends and how the client is told."""

    reason: str
    close_code: int
    close_message: str = ""
    error: ClientError | None = None
    client_gone: bool = False


def ending_for_error(error: ClientError, reason: str) -> Ending:
    code = ERROR_POLICY[error.code].close_code or CloseCode.NORMAL
    return Ending(reason, int(code), error.code.value, error=error)


def stall_check(
    now: float,
    client_since: float | None,
    upstream_since: float | None,
    client_timeout_s: float,
    upstream_timeout_s: float,
) -> tuple[Ending | None, float]:
    """A stalled peer's ending (or None), and when to check next. ``*_since``: since when each
    peer has not been taking data (None: it is)."""
    if client_since is not None and now - client_since >= client_timeout_s:
        message = f"client too slow: took no frame for {client_timeout_s:g} s"
        ending = Ending(CLIENT_STALLED, int(CloseCode.TRY_AGAIN_LATER), message, client_gone=True)
        return ending, now
    if upstream_since is not None and now - upstream_since >= upstream_timeout_s:
        message = f"The upstream took no message for {upstream_timeout_s:g} s."
        error = ClientError(ErrorCode.UPSTREAM_UNAVAILABLE, message)
        return ending_for_error(error, "upstream_stalled"), now
    client_check = (
        client_since + client_timeout_s if client_since is not None else now + client_timeout_s / 2
    )
    upstream_check = (
        upstream_since + upstream_timeout_s
        if upstream_since is not None
        else now + upstream_timeout_s / 2
    )
    return None, min(client_check, upstream_check)


def upstream_ending(closed: UpstreamClosed) -> Ending:
    """The ending an upstream's close means for the client (SPEC §9)."""
    if closed.protocol_error:
        error = ClientError(
            ErrorCode.UPSTREAM_CLOSED,
            f"The upstream broke the WebSocket protocol ({closed.reason}).",
        )
        return ending_for_error(error, "upstream_protocol_error")
    if closed.code is None:
        error = ClientError(
            ErrorCode.UPSTREAM_CLOSED, "The upstream connection ended without a close frame."
        )
        return ending_for_error(error, "upstream_lost")
    if not is_sendable_close_code(closed.code):
        return Ending("upstream_closed", int(CloseCode.NORMAL), closed.reason)
    return Ending("upstream_closed", closed.code, closed.reason)


__all__ = ["CLIENT_STALLED", "Ending", "ending_for_error", "stall_check", "upstream_ending"]
