"""Session fields the operator set (a policy's pinned fields, a client secret's session) are
locked: the upstream is told them before the client's first event, and a client event that
tries to change one has that field taken out; the rest of the event still applies, and the
client gets a ``session_field_locked`` error naming what was refused.

Partial application is deliberate: SDKs send one ``session.update`` with everything in it
(audio formats, VAD, voice and instructions together); refusing it whole would break the parts
the client is free to choose. A field sent with the locked value itself is not a change and is
accepted silently. The ``max_output_tokens`` cap is a bound, not a value: anything above it
(or ``"inf"``) becomes the cap.

Pure: events in, events changed in place and the refused field names out.
"""

from __future__ import annotations

from typing import Any

Path = tuple[str, ...]
#: Objects whose fields are locked one by one; any other field is locked as a whole.
_NESTED = frozenset({"audio", "input", "output"})
#: Never locked: the session's kind is the client's and the API's business.
_FREE = frozenset({"type"})
_CAP = ("max_output_tokens",)


def _leaves(fields: dict[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for key, value in fields.items():
        path = (*prefix, key)
        if key in _NESTED and isinstance(value, dict):
            out.update(_leaves(value, path))
        elif not (not prefix and key in _FREE):
            out[path] = value
    return out


def _pop(container: dict[str, Any], path: Path) -> tuple[bool, Any]:
    """Remove ``path`` from nested dicts (pruning emptied parents); (found, value)."""
    head, *rest = path
    if head not in container:
        return False, None
    if not rest:
        return True, container.pop(head)
    child = container[head]
    if not isinstance(child, dict):
        return False, None
    found, value = _pop(child, tuple(rest))
    if found and not child:
        del container[head]
    return found, value


def _get(container: dict[str, Any], path: Path) -> tuple[bool, Any]:
    node: Any = container
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _set(container: dict[str, Any], path: Path, value: Any) -> None:
    node = container
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it (nested objects merged, other values replaced)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SessionLock:
    """The locked fields of one session, and its output-token cap."""

    def __init__(
        self,
        pinned: dict[str, Any],
        max_output_tokens: int | None = None,
        *,
        model: str | None = None,
    ) -> None:
        self._pinned = dict(pinned)
        self._locked = _leaves(self._pinned)
        #: The session's model, when the operator restricts models: ``session.model`` in a
        #: client's update may not name another (SDKs send one; the URL's model was checked).
        #: It is not told upstream at the start: the connection's URL already names it.
        if model is not None:
            self._locked[("model",)] = model
        self._cap = max_output_tokens
        locked_cap = self._locked.get(_CAP)
        if isinstance(locked_cap, int) and (self._cap is None or locked_cap < self._cap):
            self._cap = locked_cap

    @property
    def fields(self) -> list[str]:
        """The locked fields, dotted (for docs, logs and errors)."""
        return [".".join(path) for path in self._locked]

    def upstream_fields(self) -> dict[str, Any]:
        """What the upstream is told at the start: the pinned fields and the cap."""
        fields = {k: v for k, v in self._pinned.items() if k not in _FREE and k != "model"}
        if self._cap is not None:
            fields["max_output_tokens"] = self._cap
        return fields

    def session_update(self, event: dict[str, Any]) -> list[str]:
        """Take locked fields out of a GA ``session.update``; the refused names."""
        session = event.get("session")
        return self._enforce(session) if isinstance(session, dict) else []

    def response_create(self, event: dict[str, Any]) -> list[str]:
        """The same for a ``response.create``'s per-response overrides."""
        response = event.get("response")
        return self._enforce(response) if isinstance(response, dict) else []

    @property
    def model(self) -> str | None:
        """The locked model, if any."""
        model = self._locked.get(("model",))
        return model if isinstance(model, str) else None

    def _enforce(self, fields: dict[str, Any]) -> list[str]:
        refused: list[str] = []
        for path, locked in self._locked.items():
            if path == _CAP:
                continue  # a bound: handled below
            present, value = _get(fields, path)
            if present and value != locked:
                _pop(fields, path)
                refused.append(".".join(path))
        if self._cap is not None:
            present, value = _get(fields, _CAP)
            if present and not (isinstance(value, int) and value <= self._cap):
                _set(fields, _CAP, self._cap)
                refused.append("max_output_tokens")
        return refused


__all__ = ["SessionLock", "deep_merge"]
