"""What an upstream is: something that opens one duplex text-event channel per client session.

The relay only ever sees :class:`UpstreamConnection`; the OpenAI and Azure upstreams differ only
in URL and headers, and the local upstream implements the same channel in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What the bridge knows about a client session when it opens the upstream."""

    session_id: str
    model: str
    #: ``transcription`` for a transcription session (``?intent=transcription``): the upstream
    #: is asked for one, with no model in its URL (the model is the session's transcriber).
    intent: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamClosed:
    """How the upstream ended: its close code and reason (``code`` None when it just vanished,
    or when the bridge dropped it for breaking the WebSocket protocol: ``protocol_error``)."""

    code: int | None
    reason: str = ""
    protocol_error: bool = False


class UpstreamSink(Protocol):
    """Where an upstream connection delivers what happens on it (the bridge session).

    Calls are made from the event loop's callbacks, synchronously and in the order things
    happened, so the relay never pays a task switch per event.
    """

    def upstream_text(self, text: str) -> None:
        """One event (a JSON text frame) from the upstream."""
        ...

    def upstream_passthrough(self, payload: bytes) -> bool:
        """One event still in bytes (UTF-8 JSON): True if it was taken as it is (the hot path),
        False if it must come again, decoded, through :meth:`upstream_text`."""
        ...

    def upstream_burst(self) -> None:
        """More events follow at once (they came in one read): what the session sends the
        client meanwhile can go out together."""
        ...

    def upstream_closed(self, closed: UpstreamClosed) -> None:
        """The upstream ended (called once, and never after the bridge's own ``close``)."""
        ...

    def upstream_writable(self, writable: bool) -> None:
        """Backpressure: False when the upstream stopped taking data, True when it resumed."""
        ...


class UpstreamConnection(Protocol):
    """One open upstream session: a duplex channel of text events, driven by callbacks."""

    def attach(self, sink: UpstreamSink) -> None:
        """Start delivering to ``sink``; what arrived before is delivered first, in order."""
        ...

    def send(self, text: str) -> None:
        """Send one event (a JSON text frame). Raises UpstreamError if the channel is gone."""
        ...

    def send_payload(self, payload: bytes | memoryview) -> None:
        """Send one event already encoded (UTF-8 JSON), as :meth:`send` does for a ``str``."""
        ...

    def hold_writes(self) -> None:
        """A hint that more events are about to be sent right away: send them together, as
        soon as the current round of event-loop callbacks is done (may do nothing)."""
        ...

    def pause_reading(self) -> None:
        """Stop delivering events (the client is not keeping up); they wait upstream."""
        ...

    def resume_reading(self) -> None:
        """Deliver events again after :meth:`pause_reading`."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the channel; idempotent, never raises."""
        ...


class Upstream(Protocol):
    """A kind of upstream, shared by all sessions of one server."""

    @property
    def kind(self) -> str:
        """``openai``, ``azure`` or ``local``."""
        ...

    @property
    def url(self) -> str:
        """The endpoint, for ``/info`` and logs (never contains a secret)."""
        ...

    async def connect(self, request: UpstreamRequest) -> UpstreamConnection:
        """Open one session. Raises UpstreamUnavailable when that fails or times out."""
        ...

    async def aclose(self) -> None:
        """Release shared resources (HTTP client sessions) at server shutdown."""
        ...
