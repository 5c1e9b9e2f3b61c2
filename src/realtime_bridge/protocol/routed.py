"""What every part of a session's protocol rules shares: the result of routing one frame, the
event names they look for, and the state they all read (declared once, kept by
:class:`~realtime_bridge.protocol.session.SessionProtocol`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from realtime_bridge.audio.convert import Converter
from realtime_bridge.audio.formats import AudioFormat
from realtime_bridge.errors import ClientError
from realtime_bridge.policy.locks import SessionLock
from realtime_bridge.protocol.audio_events import AUDIO_DELTA
from realtime_bridge.protocol.events import dumps
from realtime_bridge.protocol.memory import ConversationMemory
from realtime_bridge.protocol.server_tools import CallToStart, ServerTools
from realtime_bridge.protocol.slicing import AppendSlicer
from realtime_bridge.protocol.startup import SessionStartup
from realtime_bridge.protocol.turns import TURN_EVENTS, TurnKeeper, TurnOutput

Frame = str | bytes
NO_FRAMES: tuple[Frame, ...] = ()

COMMIT = "input_audio_buffer.commit"
CLEAR = "input_audio_buffer.clear"
SESSION_UPDATE = "session.update"
SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
AUDIO_DONE = "response.output_audio.done"
RESPONSE_DONE = "response.done"
SESSION_EVENTS = frozenset({SESSION_CREATED, SESSION_UPDATED})
ITEM_CREATE = "conversation.item.create"
RESPONSE_CREATE = "response.create"
RESPONSE_CANCEL = "response.cancel"
ITEM_EVENTS = frozenset(
    {"conversation.item.added", "conversation.item.done", "conversation.item.retrieved"}
)
#: Upstream events always parsed, even on the pass-through path: usage, the session's
#: configuration, and what the turn keeper follows. All rare next to audio deltas.
ALWAYS_PARSED = frozenset({RESPONSE_DONE}) | SESSION_EVENTS | TURN_EVENTS
#: How an audio delta from the API starts: its type, closing quote included (so no longer name
#: matches). Audio deltas are never among the parsed types; they only ever pass through here.
AUDIO_DELTA_HEAD = b'{"type":"' + AUDIO_DELTA.encode() + b'"'
assert AUDIO_DELTA not in ALWAYS_PARSED | ITEM_EVENTS


@dataclass(slots=True)
class Routed:
    """Frames to send on after one input frame: some upstream, some back to the client.

    Client frames are ``str`` (a JSON text frame) or ``bytes`` (binary audio, ``?audio=binary``).
    """

    to_upstream: tuple[str, ...] = ()
    to_client: tuple[Frame, ...] = NO_FRAMES
    event_type: str | None = None
    error: ClientError | None = None  # the error the bridge answered the frame with, if any
    dropped_fields: tuple[str, ...] = ()  # beta fields GA has no place for (debug-logged)
    tokens_used: int = 0  # a response.done's total_tokens (budgets are charged from it)
    tool_calls: tuple[CallToStart, ...] = ()  # server tool calls for the session to run
    replay_error: object = None  # the upstream refused part of a resumption's replay (logged)


class SessionState:
    """The state of one session that the client-side and upstream-side rules share; the
    methods each side calls on the other are declared here, defined where they belong."""

    binary_audio: bool
    _beta: bool
    _protocol_decided: bool
    error_codes: Counter[str]
    audio_ms_in: float
    audio_ms_out: float
    usage: dict[str, int]
    _tokens_used: int
    turns: TurnKeeper
    slicer: AppendSlicer | None
    lock: SessionLock | None
    tools: ServerTools | None
    memory: ConversationMemory | None
    startup: SessionStartup | None
    _in: Converter
    _out: Converter
    _parsed_types: frozenset[str]
    _upstream_passthrough: bool
    _client_passthrough: bool

    @property
    def beta(self) -> bool:
        return self._beta

    @beta.setter
    def beta(self, value: bool) -> None:
        self._beta = value
        self._refresh_passthrough()

    def _set_input(self, fmt: AudioFormat) -> None:
        raise NotImplementedError

    def _set_output(self, fmt: AudioFormat) -> None:
        raise NotImplementedError

    def _refresh_passthrough(self) -> None:
        raise NotImplementedError

    def _release_held(self) -> list[str]:
        raise NotImplementedError

    def _hold_if_starting(self, routed: Routed) -> Routed:
        raise NotImplementedError

    def _bridge_events(self, out: TurnOutput) -> tuple[Frame, ...]:
        raise NotImplementedError


def serialise(frame: dict[str, Any] | bytes) -> Frame:
    return frame if isinstance(frame, bytes) else dumps(frame)


__all__ = ["ALWAYS_PARSED", "NO_FRAMES", "Frame", "Routed", "SessionState", "serialise"]
