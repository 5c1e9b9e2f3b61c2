"""The ``oai-events`` data channel's rules: what a WebRTC caller sends and gets that a WebSocket
client would not. Pure functions on events.

- The caller's audio is its track, so the formats in its ``session.update`` mean nothing to the
  bridge (the track is Opus, turned into PCM16 by the bridge): they are left out.
- The caller gets the WebRTC-only ``output_audio_buffer.started`` / ``.stopped`` / ``.cleared``.
- No message may exceed the caller's ``a=max-message-size``: one larger message closes the
  channel, and with it the call. An event that would is shortened: base64 audio inside it is
  replaced by ``""`` with ``"<key>_omitted_by_bridge": <characters left out>`` beside it
  (``audio_omitted_by_bridge`` for an item's input audio);
  if it is still too large, every string over 1 KiB is emptied the same way
  (``"<key>_omitted_by_bridge"``); an event that still does not fit becomes an ``error`` event
  ``event_too_large`` naming it.
"""

from __future__ import annotations

from typing import Any

import orjson

from realtime_bridge.protocol.events import error_event, new_event_id

#: Content keys that hold base64 audio in items, parts and deltas.
AUDIO_KEYS = ("audio", "delta")
OMITTED = "_omitted_by_bridge"
#: Past audio, strings longer than this are emptied when an event still does not fit.
LONG_STRING = 1024
BUFFER_EVENTS = ("started", "stopped", "cleared")


def strip_client_formats(event: dict[str, Any]) -> bool:
    """Leave the audio formats out of a caller's ``session.update`` (GA and beta shapes); True
    if something was left out."""
    session = event.get("session")
    if event.get("type") != "session.update" or not isinstance(session, dict):
        return False
    changed = False
    for key in ("input_audio_format", "output_audio_format"):
        if key in session:
            del session[key]
            changed = True
    audio = session.get("audio")
    if isinstance(audio, dict):
        for side in ("input", "output"):
            part = audio.get(side)
            if isinstance(part, dict) and "format" in part:
                del part["format"]
                changed = True
    return changed


def buffer_event(kind: str, response_id: str | None) -> str:
    """``output_audio_buffer.<kind>`` as the API sends it over WebRTC."""
    assert kind in BUFFER_EVENTS
    return orjson.dumps(
        {
            "type": f"output_audio_buffer.{kind}",
            "event_id": new_event_id(),
            "response_id": response_id,
        }
    ).decode()


def fit_to_channel(payload: bytes, limit: int) -> bytes:
    """``payload`` if it fits in a message of ``limit`` bytes (0: any), else the event shortened
    as the module says."""
    if limit <= 0 or len(payload) <= limit:
        return payload
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        return _too_large(None, len(payload))
    _empty_strings(event, lambda key, value: key in AUDIO_KEYS and len(value) > 0)
    shortened = orjson.dumps(event)
    if len(shortened) <= limit:
        return shortened
    _empty_strings(event, lambda key, value: key != "type" and len(value) > LONG_STRING)
    shortened = orjson.dumps(event)
    if len(shortened) <= limit:
        return shortened
    return _too_large(event.get("type"), len(payload))


def _empty_strings(node: object, empty: Any) -> None:
    """Empty, in place, every string ``empty(key, value)`` picks, noting its length beside it."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if isinstance(value, str) and not key.endswith(OMITTED) and empty(key, value):
                node[key] = ""
                node[key + OMITTED] = len(value)
            else:
                _empty_strings(value, empty)
    elif isinstance(node, list):
        for value in node:
            _empty_strings(value, empty)


def _too_large(event_type: object, size: int) -> bytes:
    what = f"A {event_type} event" if isinstance(event_type, str) else "An event"
    error = error_event(
        "event_too_large",
        f"{what} of {size} bytes does not fit the data channel and could not be shortened.",
        error_type="server_error",
    )
    return orjson.dumps(error)


__all__ = [
    "BUFFER_EVENTS",
    "buffer_event",
    "fit_to_channel",
    "strip_client_formats",
]
