"""Event names, ids, the error-event builder and cheap peeking at an event's ``type``.

The relay forwards most frames untouched, so it must learn a frame's type without parsing the
whole frame: :func:`peek_type` reads it from the frame's prefix when the type is the first key
(as the API always sends it) and falls back to a full parse otherwise.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.event_types import KNOWN_EVENT_TYPES

_TYPE_PREFIX = '{"type":"'


def new_event_id(prefix: str = "event") -> str:
    """An id in the API's style (``event_`` + 22 url-safe characters)."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An ``error`` server event in the protocol's own shape."""
    return {
        "type": "error",
        "event_id": new_event_id(),
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def error_event_text(error: ClientError) -> str:
    """The serialised error event for a :class:`ClientError`."""
    return dumps(
        error_event(
            error.code.value, error.message, param=error.param, client_event_id=error.event_id
        )
    )


def dumps(event: dict[str, Any]) -> str:
    """Serialise an event the bridge built itself (compact JSON, UTF-8)."""
    return orjson.dumps(event).decode()


def peek_type(text: str) -> str | None:
    """The top-level ``type`` of a JSON event, cheaply; None if it has none or is not JSON."""
    if text.startswith(_TYPE_PREFIX):
        end = text.find('"', len(_TYPE_PREFIX))
        if end > 0:
            candidate = text[len(_TYPE_PREFIX) : end]
            if "\\" not in candidate:
                return candidate
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict):
        value = parsed.get("type")
        if isinstance(value, str):
            return value
    return None


_TYPE_PREFIX_BYTES = _TYPE_PREFIX.encode()
_KNOWN_TYPES_BY_BYTES = {name.encode(): name for name in KNOWN_EVENT_TYPES}


def peek_type_prefix(payload: bytes) -> str | None:
    """The ``type`` of a JSON event from its first bytes, when the event starts with it (the API
    always puts it first); None otherwise. Does not check that the rest is valid JSON."""
    if payload.startswith(_TYPE_PREFIX_BYTES):
        start = len(_TYPE_PREFIX_BYTES)
        end = payload.find(b'"', start, start + 128)
        if end > 0:
            candidate = payload[start:end]
            known = _KNOWN_TYPES_BY_BYTES.get(candidate)  # the usual case: no decode
            if known is not None:
                return known
            if b"\\" not in candidate and candidate.isascii():
                return candidate.decode()
    return None


def parse_client_event(text: str | bytes) -> dict[str, Any]:
    """Parse and validate a client event: a JSON object with a string ``type``.

    Raises :class:`ClientError` with ``invalid_json`` or ``invalid_event``.
    """
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ClientError(ErrorCode.INVALID_JSON, f"The message is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ClientError(
            ErrorCode.INVALID_EVENT,
            f"An event must be a JSON object, not {type(parsed).__name__}.",
        )
    event_id = parsed.get("event_id")
    client_event_id = event_id if isinstance(event_id, str) else None
    event_type = parsed.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ClientError(
            ErrorCode.INVALID_EVENT,
            "An event must have a non-empty string 'type'.",
            param="type",
            event_id=client_event_id,
        )
    return parsed
