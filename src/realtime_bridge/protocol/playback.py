"""What the far end has really heard of the assistant's audio, and barge-in from it.

One piece for every client kind that plays audio the bridge hands it: a phone acknowledges each
chunk it played with a Twilio ``mark``; a WebRTC track is paced by the bridge itself, so what
left on the track is what was played. Either way the bridge knows, per assistant item, how much
audio it passed on (*sent*) and how much was heard (*played*). When the caller speaks over the
answer (``input_audio_buffer.speech_started``), the item is truncated at what was heard (never
more than was sent: the API refuses that) and a response still running is cancelled, so the
model's memory matches what the user heard.

Pure: fed calls with millisecond counts, returns the Realtime client events to send upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BargeIn:
    """What a barge-in did: the events for the upstream, and what was heard of the item."""

    events: list[dict[str, Any]]
    item_id: str | None
    heard_ms: int


class Playback:
    """The assistant audio of one session, as passed on and as heard."""

    def __init__(self, *, event_id_prefix: str = "") -> None:
        self._event_id_prefix = event_id_prefix
        self._events_made = 0
        self.item_id: str | None = None  # the assistant item whose audio is being passed on
        self.sent_ms = 0.0  # of that item
        self.played_ms = 0.0  # of that item
        self.response_running = False
        #: Items cut by a barge-in: what the upstream still sends of them is not played.
        self._silenced: set[str] = set()

    # ------------------------------------------------------------------ the upstream's side

    def response_created(self) -> None:
        self.response_running = True

    def response_done(self) -> None:
        self.response_running = False

    def audio(self, item_id: object, ms: float) -> bool:
        """Audio of ``item_id`` is about to be passed on: False if it must not be (its item was
        cut by a barge-in). A new item starts its own timeline."""
        if item_id in self._silenced:
            return False
        if item_id != self.item_id:
            self.item_id = item_id if isinstance(item_id, str) else None
            self.sent_ms = self.played_ms = 0.0
        self.sent_ms += ms
        return True

    # ------------------------------------------------------------------ the far end's side

    def played(self, item_id: str | None, up_to_ms: float) -> None:
        """The far end has heard ``item_id`` up to ``up_to_ms`` (a mark came back, or the
        pacer put that much on the track)."""
        if item_id is not None and item_id == self.item_id:
            self.played_ms = min(max(self.played_ms, up_to_ms), self.sent_ms)

    @property
    def unplayed_ms(self) -> float:
        return self.sent_ms - self.played_ms if self.item_id is not None else 0.0

    # ------------------------------------------------------------------ barge-in

    def barge_in(self) -> BargeIn | None:
        """The user spoke (or asked playback to stop): truncate the item at what was heard and
        cancel a running response, or None when nothing was playing or running."""
        if self.unplayed_ms <= 0 and not self.response_running:
            return None
        events: list[dict[str, Any]] = []
        item_id = self.item_id
        heard = int(min(self.played_ms, self.sent_ms))
        if item_id is not None:
            self._silenced.add(item_id)
            events.append(
                self._event(
                    {
                        "type": "conversation.item.truncate",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": heard,
                    }
                )
            )
        if self.response_running:
            events.append(self._event({"type": "response.cancel"}))
            self.response_running = False
        self.item_id = None
        self.sent_ms = self.played_ms = 0.0
        return BargeIn(events, item_id, heard)

    def owns(self, event_id: object) -> bool:
        """Whether ``event_id`` is one of the events this playback made (the upstream's error
        about a cancel that came too late is the bridge's business, not the client's)."""
        return (
            bool(self._event_id_prefix)
            and isinstance(event_id, str)
            and event_id.startswith(self._event_id_prefix)
        )

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        if self._event_id_prefix:
            self._events_made += 1
            event["event_id"] = f"{self._event_id_prefix}{self._events_made}"
        return event


__all__ = ["BargeIn", "Playback"]
