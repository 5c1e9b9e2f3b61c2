"""One exception tree and one table of close codes and error codes.

Handlers catch these, never library exceptions: library errors are mapped into this tree where
they enter the bridge (the upstream clients, the config loader), and mapped out to protocol error
events and WebSocket close codes here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """WebSocket close codes the bridge itself uses (RFC 6455 §7.4.1 and IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


class ErrorCode(StrEnum):
    """Codes of the error events the bridge raises itself (SPEC §4)."""

    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_AUDIO = "invalid_audio"
    UNSUPPORTED_AUDIO_FORMAT = "unsupported_audio_format"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    SESSION_LIMIT_REACHED = "session_limit_reached"
    SESSION_IDLE_TIMEOUT = "session_idle_timeout"
    SESSION_EXPIRED = "session_expired"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_CLOSED = "upstream_closed"
    SERVER_SHUTTING_DOWN = "server_shutting_down"
    INTERNAL_ERROR = "internal_error"
    SESSION_FIELD_LOCKED = "session_field_locked"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_SESSIONS = "too_many_sessions"
    QUOTA_EXCEEDED = "quota_exceeded"
    INVALID_OFFER = "invalid_offer"
    CALL_NOT_FOUND = "call_not_found"


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What an error code means at each boundary: the close code that follows it (None = the
    session goes on) and the HTTP status when it is raised before the upgrade."""

    close_code: CloseCode | None
    http_status: int


ERROR_POLICY: dict[ErrorCode, ErrorPolicy] = {
    ErrorCode.INVALID_JSON: ErrorPolicy(None, 400),
    ErrorCode.INVALID_EVENT: ErrorPolicy(None, 400),
    ErrorCode.MESSAGE_TOO_LARGE: ErrorPolicy(CloseCode.MESSAGE_TOO_BIG, 413),
    ErrorCode.INVALID_AUDIO: ErrorPolicy(None, 400),
    ErrorCode.UNSUPPORTED_AUDIO_FORMAT: ErrorPolicy(None, 400),
    ErrorCode.UNAUTHORIZED: ErrorPolicy(CloseCode.POLICY_VIOLATION, 401),
    ErrorCode.FORBIDDEN_ORIGIN: ErrorPolicy(CloseCode.POLICY_VIOLATION, 403),
    ErrorCode.SESSION_LIMIT_REACHED: ErrorPolicy(CloseCode.TRY_AGAIN_LATER, 503),
    ErrorCode.SESSION_IDLE_TIMEOUT: ErrorPolicy(CloseCode.NORMAL, 408),
    ErrorCode.SESSION_EXPIRED: ErrorPolicy(CloseCode.NORMAL, 410),
    ErrorCode.UPSTREAM_UNAVAILABLE: ErrorPolicy(CloseCode.BAD_GATEWAY, 502),
    ErrorCode.UPSTREAM_CLOSED: ErrorPolicy(CloseCode.BAD_GATEWAY, 502),
    ErrorCode.SERVER_SHUTTING_DOWN: ErrorPolicy(CloseCode.GOING_AWAY, 503),
    ErrorCode.INTERNAL_ERROR: ErrorPolicy(CloseCode.INTERNAL_ERROR, 500),
    ErrorCode.SESSION_FIELD_LOCKED: ErrorPolicy(None, 400),
    ErrorCode.MODEL_NOT_ALLOWED: ErrorPolicy(CloseCode.POLICY_VIOLATION, 403),
    ErrorCode.RATE_LIMITED: ErrorPolicy(CloseCode.TRY_AGAIN_LATER, 429),
    ErrorCode.TOO_MANY_SESSIONS: ErrorPolicy(CloseCode.TRY_AGAIN_LATER, 429),
    ErrorCode.QUOTA_EXCEEDED: ErrorPolicy(CloseCode.POLICY_VIOLATION, 429),
    ErrorCode.INVALID_OFFER: ErrorPolicy(None, 400),
    ErrorCode.CALL_NOT_FOUND: ErrorPolicy(None, 404),
}


class BridgeError(Exception):
    """Root of every exception the bridge raises on purpose."""


class ConfigError(BridgeError):
    """A configuration value is missing or invalid; start-up stops with exit code 2."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class ClientError(BridgeError):
    """Something the client sent or did; becomes an error event (and maybe a close)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id

    @property
    def close_code(self) -> CloseCode | None:
        return ERROR_POLICY[self.code].close_code

    @property
    def http_status(self) -> int:
        return ERROR_POLICY[self.code].http_status


class UpstreamError(BridgeError):
    """The upstream failed; messages never carry credentials."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, refused the upgrade, or was too slow to answer.

    ``cause`` says why for the operator's log (``timeout``, ``dns``, ``refused``, ``tls``,
    ``http_401``, …; an exception's class name otherwise), ``host`` where; neither ever carries
    a credential."""

    def __init__(self, message: str, *, cause: str = "unknown", host: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.host = host


def is_sendable_close_code(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 §7.4: 1005, 1006, 1015 never may)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )
