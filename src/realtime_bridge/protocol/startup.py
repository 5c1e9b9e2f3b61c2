"""What the bridge tells the upstream itself before the client's first event.

A client that declares its formats at the upgrade (``?input_audio_format=g711_ulaw``, a phone
endpoint) never sends the ``session.update`` that would tell the upstream, and G.711 goes up as
it came: unless the upstream is told ``audio/pcmu``, it reads µ-law as PCM16 noise. So right
after the upstream's ``session.created``, the bridge sends its own ``session.update``, and holds
everything the client sends (in order, bounded) until the upstream confirms it with
``session.updated``. That confirmation is the bridge's, not the client's: it is not shown to the
client, which never asked for it and already saw its own formats in ``session.created``.

Pure: fed the upstream's events and a clock value; the caller sends what it returns.
"""

from __future__ import annotations

from typing import Any

from realtime_bridge.protocol.events import dumps

#: Held client frames beyond this many bytes make the caller stop reading the client.
HOLD_LIMIT_BYTES = 4 * 1024 * 1024
#: An upstream that never confirms is not waited for longer than this (seconds).
CONFIRM_TIMEOUT_S = 10.0


class SessionStartup:
    """One session's start-up configuration, from ``session.created`` to its confirmation."""

    def __init__(self, session_fields: dict[str, Any], event_id: str) -> None:
        self._fields = session_fields
        self.event_id = event_id
        self._sent_at: float | None = None
        self.done = False
        self._held: list[str] = []
        self.held_bytes = 0

    @property
    def holding(self) -> bool:
        return not self.done

    @property
    def over_limit(self) -> bool:
        return self.held_bytes > HOLD_LIMIT_BYTES

    def hold(self, frames: tuple[str, ...] | list[str]) -> None:
        """Client frames bound upstream, kept in order until the upstream is configured."""
        for frame in frames:
            self._held.append(frame)
            self.held_bytes += len(frame)

    def session_created(self, session: object, now: float) -> str | None:
        """The ``session.update`` to send (once), shaped for the session's type."""
        if self._sent_at is not None or self.done:
            return None
        self._sent_at = now
        kind = session.get("type") if isinstance(session, dict) else None
        fields = {"type": kind if isinstance(kind, str) else "realtime", **self._fields}
        return dumps({"type": "session.update", "event_id": self.event_id, "session": fields})

    @property
    def fields(self) -> dict[str, Any]:
        """The session fields the upstream is being told (GA shape)."""
        return self._fields

    def confirmed(self) -> list[str]:
        """The upstream answered (``session.updated``, or an error for our event): the held
        frames, to send now, in order."""
        self.done = True
        held, self._held, self.held_bytes = self._held, [], 0
        return held

    def deadline(self) -> float | None:
        if self.done or self._sent_at is None:
            return None
        return self._sent_at + CONFIRM_TIMEOUT_S

    def timed_out(self, now: float) -> bool:
        due = self.deadline()
        return due is not None and now >= due


def declared_session_fields(
    input_format: dict[str, object] | None, output_format: dict[str, object] | None
) -> dict[str, Any] | None:
    """The GA ``session`` fields that tell the upstream formats declared at the upgrade."""
    audio: dict[str, Any] = {}
    if input_format is not None:
        audio["input"] = {"format": input_format}
    if output_format is not None:
        audio["output"] = {"format": output_format}
    return {"audio": audio} if audio else None


__all__ = ["CONFIRM_TIMEOUT_S", "HOLD_LIMIT_BYTES", "SessionStartup", "declared_session_fields"]
