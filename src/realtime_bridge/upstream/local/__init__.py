"""The built-in local upstream: an offline imitation of the OpenAI Realtime API (GA protocol).

``core`` is the sans-I/O state machine; ``adapter`` plugs it into the bridge in-process;
``server`` serves it on its own WebSocket port (``realtime-bridge simulator``).
"""

from __future__ import annotations

from .adapter import LocalConnection, LocalUpstream
from .core import Outgoing, RealtimeCore

__all__ = ["LocalConnection", "LocalUpstream", "Outgoing", "RealtimeCore"]
