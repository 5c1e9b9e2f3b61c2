"""Per-session protocol rules: what the bridge forwards as is, rewrites, or answers itself.

Pure and synchronous: the relay hands every frame to a :class:`SessionProtocol` and sends what
it returns. A frame the bridge has no reason to change comes back as the very same ``str``
object, so it is forwarded byte for byte, never re-serialised.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.events import error_event_text, parse_client_event, peek_type

_NO_FRAMES: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Routed:
    """Frames to send on after one input frame: some upstream, some back to the client."""

    to_upstream: tuple[str, ...] = _NO_FRAMES
    to_client: tuple[str, ...] = _NO_FRAMES
    event_type: str | None = None


@dataclass(slots=True)
class SessionProtocol:
    """The protocol state of one client session."""

    errors_sent: int = 0

    def from_client_text(self, text: str) -> Routed:
        """A text frame from the client: validate it, then forward it unchanged."""
        try:
            event = parse_client_event(text)
        except ClientError as error:
            return self._client_error(error)
        event_type: str = event["type"]
        return Routed(to_upstream=(text,), event_type=event_type)

    def from_client_binary(self, data: bytes) -> Routed:
        """A binary frame from the client: raw audio (wired in by the audio layer)."""
        return self._client_error(
            ClientError(
                ErrorCode.INVALID_EVENT,
                "Binary frames carry audio; this session has no audio conversion configured.",
            )
        )

    def from_upstream_text(self, text: str) -> Routed:
        """A text frame from the upstream: forwarded unchanged."""
        return Routed(to_client=(text,), event_type=peek_type(text))

    def _client_error(self, error: ClientError) -> Routed:
        self.errors_sent += 1
        return Routed(to_client=(error_event_text(error),), event_type=None)
