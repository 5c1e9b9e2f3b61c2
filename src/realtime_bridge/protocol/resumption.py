"""What a session's protocol does when it moves to a fresh upstream connection.

The client must see one session. So the fresh connection's own ``session.created``, the
``session.updated`` that answers the replayed configuration, and the ``conversation.item.*``
events of the replayed items (the client has them already, under the same ids) are the
bridge's, not the client's; so are errors about replay events (logged by the caller, since an
item the upstream refused is conversation lost). Pure.
"""

from __future__ import annotations

from typing import Any

from realtime_bridge.protocol.memory import REPLAY_EVENT_PREFIX

_ITEM_EVENTS = frozenset(
    {"conversation.item.added", "conversation.item.done", "conversation.item.created"}
)


class ResumeFilter:
    """Hides the upstream's answers to one replay (see the module docstring)."""

    def __init__(self, item_ids: set[str], *, session_update_sent: bool) -> None:
        self._pending_items = set(item_ids)
        self._replayed = frozenset(item_ids)
        self._session_created = False
        self._session_updated = not session_update_sent

    @property
    def done(self) -> bool:
        """Every answer to the replay has come: nothing more to hide."""
        return self._session_created and self._session_updated and not self._pending_items

    def hides(self, event_type: str, event: dict[str, Any]) -> bool:
        if event_type == "session.created" and not self._session_created:
            self._session_created = True
            return True
        if event_type == "session.updated" and not self._session_updated:
            self._session_updated = True
            return True
        if event_type in _ITEM_EVENTS:
            item = event.get("item")
            item_id = item.get("id") if isinstance(item, dict) else None
            if item_id in self._replayed:
                if event_type != "conversation.item.added":
                    self._pending_items.discard(item_id)
                return True
        return False


def is_replay_error(event: dict[str, Any]) -> bool:
    """An error the upstream sent about one of the replay's own events."""
    error = event.get("error")
    return isinstance(error, dict) and str(error.get("event_id", "")).startswith(
        REPLAY_EVENT_PREFIX
    )


__all__ = ["ResumeFilter", "is_replay_error"]
