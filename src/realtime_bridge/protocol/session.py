"""Per-session protocol rules: what the bridge forwards as is, rewrites, or answers itself.

Pure and synchronous: the relay hands every frame to a :class:`SessionProtocol` and sends what it
returns. A frame the bridge has no reason to change comes back as the very same ``str`` object,
so it is forwarded byte for byte, never re-serialised. The bridge changes a frame only to

- convert audio between the client's declared formats and the formats the upstream supports
  (``input_audio_buffer.append``, ``response.output_audio.delta``, the formats inside
  ``session.update`` / ``session.created`` / ``session.updated``), and
- translate the beta protocol to GA and back, for clients that speak beta.

Durations are never rewritten: conversion keeps the audio's duration, so ``audio_start_ms``,
``audio_end_ms`` and truncation offsets mean the same on both sides.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from realtime_bridge.audio.convert import Converter
from realtime_bridge.audio.formats import AudioFormat
from realtime_bridge.policy.locks import SessionLock, deep_merge
from realtime_bridge.protocol.audio_events import (
    APPEND,
    append_event,
)
from realtime_bridge.protocol.client_rules import ClientRules
from realtime_bridge.protocol.events import dumps
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.memory import MEMORY_EVENTS, REPLAY_EVENT_PREFIX, ConversationMemory
from realtime_bridge.protocol.resumption import ResumeFilter
from realtime_bridge.protocol.routed import (
    ALWAYS_PARSED,
    ITEM_EVENTS,
    Routed,
)
from realtime_bridge.protocol.server_tools import TOOL_EVENTS, ServerTools
from realtime_bridge.protocol.slicing import AppendSlicer
from realtime_bridge.protocol.startup import SessionStartup
from realtime_bridge.protocol.translate import ga_to_beta
from realtime_bridge.protocol.turns import TurnKeeper, TurnSettings
from realtime_bridge.protocol.upstream_rules import UpstreamRules


class SessionProtocol(ClientRules, UpstreamRules):
    """The protocol state of one client session.

    ``now`` arguments are ``time.monotonic()`` seconds: the turn keeper's clock (silence fill,
    the answer after a commit). The caller asks :meth:`next_deadline` when to call :meth:`tick`.
    """

    def __init__(
        self,
        options: HandshakeOptions | None = None,
        *,
        turns: TurnSettings | None = None,
        lock: SessionLock | None = None,
        tools: ServerTools | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        options = options or HandshakeOptions()
        self.binary_audio = options.binary_audio
        self._beta = options.beta
        self._protocol_decided = options.beta
        self.error_codes: Counter[str] = Counter()
        self.audio_ms_in = 0.0
        self.audio_ms_out = 0.0
        self.usage: dict[str, int] = {}
        self._tokens_used = 0
        self.turns = TurnKeeper(turns)
        #: A large append being converted a slice at a time (the caller runs it).
        self.slicer: AppendSlicer | None = None
        #: Fields the operator set (policy, client secret): told upstream first, then locked.
        self.lock = lock
        fields = options.upstream_session_fields()
        if lock is not None and lock.upstream_fields():
            fields = deep_merge(fields or {}, lock.upstream_fields())
        #: The operator's tools, run by the bridge (see :mod:`.server_tools`); told upstream
        #: with the start-up configuration, beside any the operator pinned.
        self.tools = tools if tools is not None and options.intent is None else None
        if self.tools is not None:
            fields = dict(fields or {})
            pinned = fields.get("tools")
            fields["tools"] = [
                *(pinned if isinstance(pinned, list) else []),
                *self.tools.definitions,
            ]
        #: What a fresh upstream connection needs to continue the session (None: no resumption).
        self.memory = memory
        self._resume_filter: ResumeFilter | None = None
        #: Formats declared at the upgrade, told to the upstream before the client's events.
        self.startup = SessionStartup(fields, self.turns.new_event_id()) if fields else None
        self._set_input(options.input_format)
        self._set_output(options.output_format)

    # ----------------------------------------------------------------- formats

    @property
    def protocol_name(self) -> str:
        return "beta" if self.beta else "ga"

    @property
    def input_format(self) -> AudioFormat:
        return self._in.src

    @property
    def output_format(self) -> AudioFormat:
        return self._out.dst

    def _set_input(self, fmt: AudioFormat) -> None:
        self._in = Converter(fmt, fmt.upstream_format())
        self.turns.upstream_format = self._in.dst
        self._refresh_passthrough()
        # Items the upstream reports carry input audio in the upstream's format.
        self._parsed_types = (
            ALWAYS_PARSED if self._in.is_passthrough else ALWAYS_PARSED | ITEM_EVENTS
        )
        if self.tools is not None:
            self._parsed_types |= TOOL_EVENTS
        if self.memory is not None:
            self._parsed_types |= MEMORY_EVENTS

    def _set_output(self, fmt: AudioFormat) -> None:
        self._out = Converter(fmt.upstream_format(), fmt)
        self._refresh_passthrough()

    def _refresh_passthrough(self) -> None:
        """Frames go on untouched (the common, fast case) unless audio or the protocol version
        differ, each way, or client frames are being held; recomputed when one of those
        changes, not per frame."""
        out = getattr(self, "_out", None)
        self._upstream_passthrough = (
            not self._beta and out is not None and out.is_passthrough and not self.binary_audio
        )
        inp = getattr(self, "_in", None)
        self._client_passthrough = (
            not self._beta
            and inp is not None
            and inp.is_passthrough
            and (self.startup is None or self.startup.done)
            and getattr(self, "slicer", None) is None
        )

    @property
    def holding_over_limit(self) -> bool:
        """Client frames held for the upstream's start-up are past their bound: stop reading
        the client until they are released."""
        startup = self.startup
        return startup is not None and startup.holding and startup.over_limit

    # ----------------------------------------------------------------- the clock

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (None: nothing pending)."""
        due = self.turns.deadline()
        startup = self.startup
        if startup is not None:
            confirm = startup.deadline()
            if confirm is not None:
                due = confirm if due is None else min(due, confirm)
        return due

    def tick(self, now: float) -> Routed:
        """What is due at ``now``: silence fill, a response after a commit, held frames of an
        upstream that never confirmed the start-up configuration."""
        to_upstream: list[str] = []
        startup = self.startup
        if startup is not None and startup.holding and startup.timed_out(now):
            to_upstream.extend(self._release_held())
        out = self.turns.poll(now)
        if out.fill_started:
            tail = self._in.flush()  # the client's last audio goes before the silence
            if tail:
                to_upstream.append(append_event(tail, None))
        to_upstream.extend(out.to_upstream)
        routed = Routed(to_upstream=tuple(to_upstream), to_client=self._bridge_events(out))
        return self._hold_if_starting(routed)

    def tool_finished(self, call_id: str, output: str) -> Routed:
        """A server tool call returned: its output for the upstream, then maybe the follow-up
        response (see :mod:`.server_tools`)."""
        assert self.tools is not None
        routed = Routed(to_upstream=tuple(self.tools.finished(call_id, output)))
        return self._hold_if_starting(routed)

    # ----------------------------------------------------------- a fresh upstream

    def upstream_lost(self, now: float) -> Routed:
        """The upstream connection is gone and a fresh one will follow: a response that was
        under way is reported to the client as ended (``cancelled``), so its state stays
        consistent; output audio held in the resampler is dropped with it."""
        assert self.memory is not None
        response = self.memory.lost()
        self._out.flush()
        self._resume_filter = None
        if response is None:
            return Routed()
        done: dict[str, Any] = {
            "type": "response.done",
            "event_id": self.turns.new_event_id(),
            "response": {
                **response,
                "status": "cancelled",
                "status_details": {"type": "cancelled"},
            },
        }
        self.turns.upstream_event("response.done", done, now)
        if self.beta:
            return Routed(to_client=tuple(dumps(event) for event in ga_to_beta(done)))
        return Routed(to_client=(dumps(done),))

    def resume_frames(self) -> tuple[str, ...]:
        """What a fresh upstream connection is told first: the confirmed session, then the
        conversation (see :mod:`.memory`); the upstream's answers to them are hidden."""
        assert self.memory is not None
        update = self.memory.session_update(f"{REPLAY_EVENT_PREFIX}session")
        items, ids = self.memory.replay()
        self._resume_filter = ResumeFilter(ids, session_update_sent=update is not None)
        return (update, *items) if update is not None else tuple(items)

    def _resume_hides(self, event_type: str, event: dict[str, Any]) -> bool:
        """Whether an upstream event answers the replay (and so is not the client's)."""
        resume = self._resume_filter
        if resume is None:
            return False
        hidden = resume.hides(event_type, event)
        if resume.done:
            self._resume_filter = None
        return hidden

    def _release_held(self) -> list[str]:
        assert self.startup is not None
        held = self.startup.confirmed()
        self._refresh_passthrough()
        return held

    def _hold_if_starting(self, routed: Routed) -> Routed:
        startup = self.startup
        if startup is not None and startup.holding and routed.to_upstream:
            startup.hold(routed.to_upstream)
            routed.to_upstream = ()
        return routed

    # ----------------------------------------------------------- client → upstream


__all__ = ["APPEND", "HandshakeOptions", "Routed", "SessionProtocol"]
