"""What the bridge remembers of a session to rebuild it on a fresh upstream connection.

The upstream's events say everything needed: the session as the upstream last confirmed it
(``session.created`` / ``session.updated``) and the conversation's items as they complete
(``conversation.item.done``, with transcripts filled in by the transcription events). On a new
connection the session is re-applied with one ``session.update`` and the items replayed, oldest
first, as ``conversation.item.create`` events that keep their ids, so ids the client already
holds still name the same items.

What a replay cannot carry: audio. A user's spoken message comes back as its transcript, an
assistant's spoken answer as its transcript, as text; an item with no transcript comes back as
``[audio without a transcript]``. Images come back as ``[image]``. Bounded by
:class:`MemoryLimits`: past either limit the oldest items are forgotten first (a function call's
output goes with its call). Pure: events in, events out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from realtime_bridge.protocol.events import dumps

#: Event ids of the bridge's replay; errors about them are the bridge's own.
REPLAY_EVENT_PREFIX = "evt_bridge_resume_"
#: Fields of a session object the upstream sets itself, never sent back in an update.
_READ_ONLY = frozenset({"id", "object", "expires_at", "client_secret", "model"})
NO_TRANSCRIPT = "[audio without a transcript]"

MEMORY_EVENTS = frozenset(
    {
        "conversation.item.done",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.deleted",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.done",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    }
)


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    """How much of a conversation one session keeps for a resumption."""

    max_items: int = 500
    max_bytes: int = 1024 * 1024


class ConversationMemory:
    """One session's remembered configuration and conversation (see the module docstring)."""

    def __init__(self, limits: MemoryLimits | None = None) -> None:
        self.limits = limits or MemoryLimits()
        self.session: dict[str, Any] | None = None
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0
        self.forgotten = 0
        #: The response the upstream is producing (its ``response.created`` object), if any.
        self.response: dict[str, Any] | None = None
        #: The upstream's VAD heard speech that has not ended yet.
        self.speaking = False

    @property
    def items(self) -> int:
        return len(self._items)

    @property
    def quiet(self) -> bool:
        """No response under way and nobody speaking: a moment to move to a new connection."""
        return self.response is None and not self.speaking

    # -- reading the upstream -----------------------------------------------------------------

    def upstream_event(self, event_type: str, event: dict[str, Any]) -> None:
        if event_type in ("session.created", "session.updated"):
            session = event.get("session")
            if isinstance(session, dict):
                self.session = session
        elif event_type in (
            "conversation.item.done",
            "conversation.item.added",
            "conversation.item.created",
        ):
            item = event.get("item")
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._remember(item)
        elif event_type == "conversation.item.input_audio_transcription.completed":
            self._transcript(event)
        elif event_type == "conversation.item.deleted":
            self._forget(str(event.get("item_id")))
        elif event_type == "response.created":
            response = event.get("response")
            self.response = response if isinstance(response, dict) else {}
        elif event_type == "response.done":
            self.response = None
        elif event_type == "input_audio_buffer.speech_started":
            self.speaking = True
        elif event_type in ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"):
            self.speaking = False

    def lost(self) -> dict[str, Any] | None:
        """The connection is gone: the response that was under way (None if none), which the
        client must be told ended; nobody is speaking on the next connection yet."""
        response, self.response = self.response, None
        self.speaking = False
        return response

    # -- rebuilding ---------------------------------------------------------------------------

    def session_update(self, event_id: str) -> str | None:
        """The ``session.update`` that re-applies the confirmed session (None: none seen)."""
        if self.session is None:
            return None
        fields = {k: v for k, v in self.session.items() if k not in _READ_ONLY}
        return dumps({"type": "session.update", "event_id": event_id, "session": fields})

    def replay(self) -> tuple[list[str], set[str]]:
        """The items as ``conversation.item.create`` events, oldest first, and their ids."""
        frames = [
            dumps(
                {
                    "type": "conversation.item.create",
                    "event_id": f"{REPLAY_EVENT_PREFIX}{index}",
                    "item": item,
                }
            )
            for index, item in enumerate(self._items.values())
        ]
        return frames, set(self._items)

    # -- inside -------------------------------------------------------------------------------

    def _remember(self, item: dict[str, Any]) -> None:
        if item.get("status") == "in_progress":
            return  # remembered when done: a response cut off mid-item is not replayed
        replayable = _replayable(item)
        if replayable is None:
            return
        item_id = replayable["id"]
        size = len(dumps(replayable))
        if item_id in self._items:
            self.bytes -= self._sizes[item_id]
        self._items[item_id] = replayable
        self._sizes[item_id] = size
        self.bytes += size
        while self._items and (
            len(self._items) > self.limits.max_items or self.bytes > self.limits.max_bytes
        ):
            oldest = next(iter(self._items))
            self._forget(oldest)
            self.forgotten += 1

    def _forget(self, item_id: str) -> None:
        item = self._items.pop(item_id, None)
        if item is None:
            return
        self.bytes -= self._sizes.pop(item_id)
        if item.get("type") == "function_call":  # its output cannot stand alone
            call_id = item.get("call_id")
            for other_id, other in list(self._items.items()):
                if other.get("type") == "function_call_output" and other.get("call_id") == call_id:
                    self._forget(other_id)

    def _transcript(self, event: dict[str, Any]) -> None:
        item = self._items.get(str(event.get("item_id")))
        transcript = event.get("transcript")
        if item is None or not isinstance(transcript, str) or item.get("role") != "user":
            return
        content = item.get("content")
        if isinstance(content, list) and content and content[0].get("text") == NO_TRANSCRIPT:
            item["content"] = [{"type": "input_text", "text": transcript}]


def _replayable(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item as a client may create it again: text in place of audio (see the module)."""
    kind = item.get("type")
    item_id = item["id"]
    if kind == "function_call":
        return {
            "id": item_id,
            "type": "function_call",
            "call_id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": item.get("arguments") or "{}",
        }
    if kind == "function_call_output":
        return {
            "id": item_id,
            "type": "function_call_output",
            "call_id": item.get("call_id"),
            "output": item.get("output") or "",
        }
    if kind != "message":
        return None
    role = item.get("role")
    if role not in ("user", "assistant", "system"):
        return None
    texts = [_text_of(part) for part in item.get("content") or () if isinstance(part, dict)]
    text = "\n".join(t for t in texts if t)
    if not text:
        if role != "user":
            return None  # an assistant message with nothing said: nothing to remember
        text = NO_TRANSCRIPT
    part_type = "output_text" if role == "assistant" else "input_text"
    return {
        "id": item_id,
        "type": "message",
        "role": role,
        "content": [{"type": part_type, "text": text}],
    }


def _text_of(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return str(part.get("text") or "")
    if kind in ("input_audio", "output_audio", "audio"):
        transcript = part.get("transcript")
        return transcript if isinstance(transcript, str) else ""
    if kind == "input_image":
        return "[image]"
    return ""


__all__ = [
    "MEMORY_EVENTS",
    "NO_TRANSCRIPT",
    "REPLAY_EVENT_PREFIX",
    "ConversationMemory",
    "MemoryLimits",
]
