"""Twilio Media Streams' JSON messages, read and written (PROTOCOL §6). Nothing else here: the
call logic (marks, barge-in, greeting, DTMF) is carrier-neutral, in :mod:`.call`.

From Twilio: ``connected``, ``start`` (``streamSid``, ``start.callSid``, ``customParameters``,
``mediaFormat``), ``media`` (``media.payload``: base64 µ-law 8 kHz), ``mark`` (the echo of one the
bridge sent, once played), ``dtmf`` (``dtmf.digit``), ``stop``. To Twilio: ``media``, ``mark``,
``clear``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


class TwilioMessageError(ValueError):
    """A message that is not Twilio's (logged; the call goes on)."""


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class Media:
    payload: str  # base64 µ-law, passed on as it is
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Other:
    """``connected`` and anything Twilio may add later: nothing to do."""

    event: str


Message = Start | Media | Mark | Dtmf | Stop | Other


def parse(text: str | bytes) -> Message:
    """One message from Twilio; raises :class:`TwilioMessageError` for anything malformed."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise TwilioMessageError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise TwilioMessageError("no event name")
    event: str = data["event"]
    try:
        if event == "media":
            media = data["media"]
            payload = media["payload"]
            if not isinstance(payload, str):
                raise TypeError
            track = media.get("track", "inbound")
            if track != "inbound":
                return Other(f"media:{track}")
            ts = media.get("timestamp")
            return Media(payload, int(ts) if ts is not None else None)
        if event == "start":
            start = data["start"]
            params = start.get("customParameters") or {}
            fmt = start.get("mediaFormat") or {}
            return Start(
                stream_sid=str(data.get("streamSid") or start["streamSid"]),
                call_sid=str(start.get("callSid", "")),
                custom_parameters={str(k): str(v) for k, v in dict(params).items()},
                encoding=str(fmt.get("encoding", "audio/x-mulaw")),
                sample_rate=int(fmt.get("sampleRate", 8000)),
            )
        if event == "mark":
            return Mark(str(data["mark"]["name"]))
        if event == "dtmf":
            return Dtmf(str(data["dtmf"]["digit"]))
        if event == "stop":
            return Stop()
    except (KeyError, TypeError, ValueError):
        raise TwilioMessageError(f"malformed {event!r} message") from None
    return Other(event)


def media(stream_sid: str, payload: str) -> str:
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return _dumps({"event": "clear", "streamSid": stream_sid})


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


__all__ = [
    "Dtmf",
    "Mark",
    "Media",
    "Message",
    "Other",
    "Start",
    "Stop",
    "TwilioMessageError",
    "clear",
    "mark",
    "media",
    "parse",
]
