"""Builders for server events: ``type`` first (the relay peeks at it), then a fresh ``event_id``."""

from __future__ import annotations

from typing import Any

from realtime_bridge.protocol.events import new_event_id


def event(type_: str, **fields: Any) -> dict[str, Any]:
    """A server event of ``type_`` with ``fields`` (in the order given)."""
    return {"type": type_, "event_id": new_event_id(), **fields}


def error(
    code: str, message: str, param: str | None, client_event_id: str | None
) -> dict[str, Any]:
    """An ``error`` event in the API's shape."""
    return event(
        "error",
        error={
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )
