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


@dataclass(frozen=True, slots=True)
class UpstreamClosed:
    """How the upstream ended: its close code and reason (``code`` None when it just vanished)."""

    code: int | None
    reason: str = ""


class UpstreamConnection(Protocol):
    """One open upstream session: send text events, receive text events until it closes."""

    async def send(self, text: str) -> None:
        """Send one event (a JSON text frame). Raises UpstreamError if the channel is gone."""
        ...

    async def receive(self) -> str | UpstreamClosed:
        """The next event from the upstream, or how it closed (then every later call too)."""
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
