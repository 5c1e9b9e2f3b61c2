"""The default conversation: ordered items, lookup by id, assistant audio for truncation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.audio.formats import AudioFormat

from .apierror import ApiError


@dataclass(slots=True)
class StoredItem:
    """An item plus what the server knows beyond its JSON: its audio and that audio's length."""

    item: dict[str, Any]
    audio: bytearray = field(default_factory=bytearray)
    audio_ms: float = 0.0
    fmt: AudioFormat | None = None


class Conversation:
    """Items in order; ``previous_item_id`` semantics as in the API (``root`` = the beginning)."""

    def __init__(self) -> None:
        self._items: list[StoredItem] = []

    @property
    def items(self) -> list[StoredItem]:
        return list(self._items)

    def last_id(self) -> str | None:
        return self._items[-1].item["id"] if self._items else None

    def find(self, item_id: str) -> StoredItem | None:
        for stored in self._items:
            if stored.item["id"] == item_id:
                return stored
        return None

    def get(self, item_id: str, param: str = "item_id") -> StoredItem:
        stored = self.find(item_id)
        if stored is None:
            raise ApiError("item_not_found", f"Item with item_id '{item_id}' not found.", param)
        return stored

    def add(self, stored: StoredItem, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (default: the end); returns the actual predecessor."""
        if self.find(stored.item["id"]) is not None:
            raise ApiError(
                "item_id_already_exists",
                f"Item with id '{stored.item['id']}' already exists.",
                "item.id",
            )
        if previous_item_id is None:
            before = self.last_id()
            self._items.append(stored)
            return before
        if previous_item_id == "root":
            self._items.insert(0, stored)
            return None
        index = next(
            (i for i, s in enumerate(self._items) if s.item["id"] == previous_item_id), None
        )
        if index is None:
            raise ApiError(
                "invalid_value",
                f"Item with id '{previous_item_id}' not found; "
                "previous_item_id must name an item of the conversation or be 'root'.",
                "previous_item_id",
            )
        self._items.insert(index + 1, stored)
        return previous_item_id

    def delete(self, item_id: str) -> None:
        stored = self.get(item_id)
        self._items.remove(stored)
