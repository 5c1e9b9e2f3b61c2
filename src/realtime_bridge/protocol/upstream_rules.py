"""A session's rules for what the upstream sends: pass-through on the hot path, conversion,
the client's view of its session, beta translation, and what the bridge follows itself
(start-up configuration, turns, usage). Pure; part of
:class:`~realtime_bridge.protocol.session.SessionProtocol`."""

from __future__ import annotations

from typing import Any

import orjson

from realtime_bridge.audio.convert import decode_audio_b64
from realtime_bridge.errors import ClientError
from realtime_bridge.policy.locks import deep_merge
from realtime_bridge.protocol.audio_events import (
    AUDIO_DELTA,
    b64_duration_ms,
    convert_item_audio,
    delta_frame,
    delta_size,
    show_client_formats,
)
from realtime_bridge.protocol.events import (
    dumps,
    peek_type,
    peek_type_prefix,
)
from realtime_bridge.protocol.resumption import is_replay_error
from realtime_bridge.protocol.routed import (
    AUDIO_DELTA_HEAD,
    AUDIO_DONE,
    ITEM_EVENTS,
    NO_FRAMES,
    RESPONSE_DONE,
    SESSION_CREATED,
    SESSION_EVENTS,
    Frame,
    Routed,
    SessionState,
    serialise,
)
from realtime_bridge.protocol.server_tools import CallToStart, ToolStep
from realtime_bridge.protocol.translate import ga_to_beta
from realtime_bridge.protocol.turns import ERROR, TURN_EVENTS, TurnOutput
from realtime_bridge.protocol.usage import add_usage


class UpstreamRules(SessionState):
    """Upstream → client."""

    def _resume_hides(self, event_type: str, event: dict[str, Any]) -> bool:
        raise NotImplementedError  # SessionProtocol

    def passthrough_upstream(self, payload: bytes) -> str | None:
        """The hot path, for an upstream text frame still in bytes: its event type when it goes
        to the client unchanged (the caller forwards ``payload`` as it is; audio is counted),
        None when it must go through :meth:`from_upstream_text` instead.

        Only ASCII frames take this path (audio deltas and nearly every event are ASCII), so
        nothing invalid as UTF-8 skips the decode of the general path."""
        if not self._upstream_passthrough or not payload.isascii():  # nearly free; keeps
            return None  # the client from ever getting invalid UTF-8 from the bridge
        if payload.startswith(AUDIO_DELTA_HEAD):  # most upstream events: skip the peek
            self.audio_ms_out += self._out.dst.duration_ms(delta_size(payload))
            return AUDIO_DELTA
        event_type = peek_type_prefix(payload)
        if event_type is None or event_type in self._parsed_types:
            return None
        if event_type == AUDIO_DELTA:
            self.audio_ms_out += self._out.dst.duration_ms(delta_size(payload))
        return event_type

    def from_upstream_text(self, text: str, now: float = 0.0) -> Routed:
        """A text frame from the upstream: forwarded unchanged unless audio or protocol differ,
        or the bridge itself follows it (start-up configuration, turns)."""
        event_type = peek_type(text)
        if self._upstream_passthrough and event_type not in self._parsed_types:
            if event_type == AUDIO_DELTA:
                self.audio_ms_out += b64_duration_ms(text, self._out.dst)
            return Routed(to_client=(text,), event_type=event_type)
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return Routed(to_client=(text,), event_type=None)
        if not isinstance(event, dict):
            return Routed(to_client=(text,), event_type=None)
        to_upstream: tuple[str, ...] = ()
        bridge_events: tuple[Frame, ...] = NO_FRAMES
        hide = False
        if event_type in SESSION_EVENTS or event_type in TURN_EVENTS:
            assert event_type is not None
            hide, to_upstream, bridge_events = self._follow(event_type, event, now)
        replay_error = False
        if self.memory is not None and event_type is not None:
            self.memory.upstream_event(event_type, event)
            replay_error = event_type == ERROR and is_replay_error(event)
            hide = hide or replay_error or self._resume_hides(event_type, event)
        self._tokens_used = 0
        tool_calls: tuple[CallToStart, ...] = ()
        tools_changed = False
        if self.tools is not None and not hide and event_type is not None:
            step = self._server_tools_step(event_type, event)
            hide, tools_changed, tool_calls = step.hide, step.changed, tuple(step.start)
            to_upstream += tuple(step.to_upstream)
        frames, changed = ([], False) if hide else self._upstream_event(event, event_type)
        changed = changed or tools_changed
        if not self.beta:
            out: tuple[Frame, ...] = tuple(
                text if (f is event and not changed) else serialise(f) for f in frames
            )
        else:
            beta_frames: list[Frame] = []
            for frame in frames:
                if isinstance(frame, bytes):
                    beta_frames.append(frame)
                    continue
                for translated in ga_to_beta(frame):
                    original = translated is event and not changed
                    beta_frames.append(text if original else dumps(translated))
            out = tuple(beta_frames)
        return Routed(
            to_upstream=to_upstream,
            to_client=out + bridge_events,
            event_type=event_type,
            tokens_used=self._tokens_used,
            tool_calls=tool_calls,
            replay_error=event.get("error") if replay_error else None,
        )

    def _server_tools_step(self, event_type: str, event: dict[str, Any]) -> ToolStep:
        """What the server's tools make of an upstream event (see :mod:`.server_tools`); their
        definitions never reach the client."""
        assert self.tools is not None
        if event_type in SESSION_EVENTS:
            return ToolStep()  # their definitions are taken out after the start-up merge
        return self.tools.upstream_event(event_type, event)

    def _follow(
        self, event_type: str, event: dict[str, Any], now: float
    ) -> tuple[bool, tuple[str, ...], tuple[Frame, ...]]:
        """The bridge's own reading of an upstream event: whether to hide it from the client,
        frames for the upstream, extra events for the client."""
        to_upstream: list[str] = []
        hide = False
        startup = self.startup
        if event_type in SESSION_EVENTS:
            self.turns.configure(event.get("session"))
            if startup is not None and startup.holding:
                if event_type == SESSION_CREATED:
                    update = startup.session_created(event.get("session"), now)
                    if update is not None:
                        to_upstream.append(update)
                else:  # the answer to the bridge's own update: not the client's business
                    hide = True
                    to_upstream.extend(self._release_held())
            return hide, tuple(to_upstream), NO_FRAMES
        if event_type == ERROR and startup is not None and startup.holding:
            error = event.get("error")
            if isinstance(error, dict) and error.get("event_id") == startup.event_id:
                # The formats the client declared were refused: it is told (not hidden).
                return False, tuple(self._release_held()), NO_FRAMES
        out = self.turns.upstream_event(event_type, event, now)
        return out.swallow, tuple(out.to_upstream), self._bridge_events(out)

    def _bridge_events(self, out: TurnOutput) -> tuple[Frame, ...]:
        """Events the bridge answers the client with itself, in the client's protocol."""
        if not out.to_client:
            return NO_FRAMES
        if not self.beta:
            return tuple(dumps(event) for event in out.to_client)
        return tuple(dumps(beta) for event in out.to_client for beta in ga_to_beta(event))

    def _upstream_event(
        self, event: dict[str, Any], event_type: str | None
    ) -> tuple[list[dict[str, Any] | bytes], bool]:
        """Audio conversion and format bookkeeping on one GA upstream event."""
        if event_type == AUDIO_DELTA:
            converted = self._audio_delta(event)
            return converted, converted[0] is not event
        if event_type == AUDIO_DONE:
            tail = self._out.flush()
            frames: list[dict[str, Any] | bytes] = []
            if tail:
                frames.append(delta_frame(tail, event, binary=self.binary_audio))
            frames.append(event)
            return frames, False
        if event_type in SESSION_EVENTS:
            startup = self.startup
            shown = False
            session = event.get("session")
            if event_type == SESSION_CREATED and startup is not None and isinstance(session, dict):
                # What the session is from the client's first event on, not the upstream's
                # defaults it is being told to change.
                event["session"] = deep_merge(session, startup.fields)
                shown = True
            if self.tools is not None and self.tools.hide_definitions(event.get("session")):
                shown = True
            return [event], show_client_formats(event, self._in.src, self._out.dst) or shown
        if event_type in ITEM_EVENTS and not (self._in.is_passthrough and self._out.is_passthrough):
            changed = convert_item_audio(
                event.get("item"), client_input=self._in.src, client_output=self._out.dst, up=False
            )
            return [event], changed
        if event_type == RESPONSE_DONE:
            self._tokens_used = add_usage(self.usage, event)
        return [event], False

    def _audio_delta(self, event: dict[str, Any]) -> list[dict[str, Any] | bytes]:
        upstream_fmt = self._out.src
        delta = event.get("delta")
        if self._out.is_passthrough and not self.binary_audio:
            if isinstance(delta, str):
                self.audio_ms_out += upstream_fmt.duration_ms(len(delta) * 3 // 4)
            return [event]
        try:
            data = decode_audio_b64(delta, upstream_fmt, param="delta")
        except ClientError:
            return [event]  # not ours to judge: the client gets the upstream's event as is
        converted = self._out.convert(data)
        self.audio_ms_out += self._out.dst.duration_ms(len(converted))
        return [delta_frame(converted, event, binary=self.binary_audio)]


__all__ = ["UpstreamRules"]
