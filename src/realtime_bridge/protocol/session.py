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
from dataclasses import dataclass
from typing import Any

import orjson

from realtime_bridge.audio.convert import Converter, audio_b64_size, decode_audio_b64
from realtime_bridge.audio.formats import AudioFormat, parse_ga_format
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.policy.locks import SessionLock, deep_merge
from realtime_bridge.protocol.audio_events import (
    APPEND,
    AUDIO_DELTA,
    append_event,
    b64_duration_ms,
    convert_item_audio,
    delta_frame,
    delta_size,
    show_client_formats,
)
from realtime_bridge.protocol.events import (
    dumps,
    error_event_text,
    parse_client_event,
    peek_type,
    peek_type_prefix,
)
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.slicing import AppendSlicer, needs_slicing
from realtime_bridge.protocol.startup import SessionStartup
from realtime_bridge.protocol.translate import beta_to_ga, ga_to_beta, is_beta_client_event
from realtime_bridge.protocol.turns import ERROR, TURN_EVENTS, TurnKeeper, TurnOutput, TurnSettings
from realtime_bridge.protocol.usage import add_usage

Frame = str | bytes
_NO_FRAMES: tuple[Frame, ...] = ()

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
ITEM_EVENTS = frozenset(
    {"conversation.item.added", "conversation.item.done", "conversation.item.retrieved"}
)
#: Upstream events always parsed, even on the pass-through path: usage, the session's
#: configuration, and what the turn keeper follows. All rare next to audio deltas.
_ALWAYS_PARSED = frozenset({RESPONSE_DONE}) | SESSION_EVENTS | TURN_EVENTS
#: How an audio delta from the API starts: its type, closing quote included (so no longer name
#: matches). Audio deltas are never among the parsed types; they only ever pass through here.
_AUDIO_DELTA_HEAD = b'{"type":"' + AUDIO_DELTA.encode() + b'"'
assert AUDIO_DELTA not in _ALWAYS_PARSED | ITEM_EVENTS


@dataclass(slots=True)
class Routed:
    """Frames to send on after one input frame: some upstream, some back to the client.

    Client frames are ``str`` (a JSON text frame) or ``bytes`` (binary audio, ``?audio=binary``).
    """

    to_upstream: tuple[str, ...] = ()
    to_client: tuple[Frame, ...] = _NO_FRAMES
    event_type: str | None = None
    error: ClientError | None = None  # the error the bridge answered the frame with, if any
    dropped_fields: tuple[str, ...] = ()  # beta fields GA has no place for (debug-logged)
    tokens_used: int = 0  # a response.done's total_tokens (budgets are charged from it)


class SessionProtocol:
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
            _ALWAYS_PARSED if self._in.is_passthrough else _ALWAYS_PARSED | ITEM_EVENTS
        )

    def _set_output(self, fmt: AudioFormat) -> None:
        self._out = Converter(fmt.upstream_format(), fmt)
        self._refresh_passthrough()

    @property
    def beta(self) -> bool:
        return self._beta

    @beta.setter
    def beta(self, value: bool) -> None:
        self._beta = value
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

    def from_client_text(self, text: str, now: float = 0.0) -> Routed:
        """A text frame from the client."""
        try:
            event = parse_client_event(text)
            routed = self._route_client_event(text, event, now)
        except ClientError as error:
            return self._client_error(error)
        return self._hold_if_starting(routed)

    def from_bridge_text(self, text: str, now: float = 0.0) -> Routed:
        """An event the bridge itself sends on the client's behalf (a phone call's greeting):
        routed as a client event, but the operator's locks are the bridge's own to bend."""
        lock, self.lock = self.lock, None
        try:
            return self.from_client_text(text, now)
        finally:
            self.lock = lock

    def passthrough_client(self, payload: bytes | memoryview, now: float = 0.0) -> bool:
        """The hot path, for a text frame still in bytes: True when it is a valid audio append
        that goes upstream unchanged (the caller forwards ``payload`` as it is; the audio is
        counted), False when it must go through :meth:`from_client_text` instead.

        Most client frames are such appends, and this spares them the decode to ``str``, the
        encode back and the routing objects. orjson checks the UTF-8 and the JSON."""
        if not self._client_passthrough:
            return False
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if type(event) is not dict or event.get("type") != APPEND:
            return False
        src = self._in.src
        try:
            size = audio_b64_size(event.get("audio"), src)
        except ClientError:
            return False
        ms = src.duration_ms(size)
        self.audio_ms_in += ms
        self.turns.client_audio(now, ms)
        return True

    def from_client_binary(self, data: bytes, now: float = 0.0) -> Routed:
        """A binary frame from the client: raw audio in its input format (an append)."""
        try:
            if self._in.src.bytes_per_sample == 2 and len(data) % 2:
                raise ClientError(
                    ErrorCode.INVALID_AUDIO,
                    f"PCM16 audio must have an even number of bytes, got {len(data)}",
                )
        except ClientError as error:
            return self._client_error(error)
        ms = self._in.src.duration_ms(len(data))
        self.audio_ms_in += ms
        self.turns.client_audio(now, ms)
        if needs_slicing(self._in, len(data)):
            return self._sliced(data, None)
        converted = self._in.convert(data)
        routed = Routed(to_upstream=(append_event(converted, None),), event_type=APPEND)
        return self._hold_if_starting(routed)

    def _sliced(self, data: bytes, event_id: str | None) -> Routed:
        """A large append to convert a slice per loop turn (see :mod:`.slicing`); the caller
        runs :attr:`slicer` and holds later client frames until it is done."""
        self.slicer = AppendSlicer(self._in, data, event_id)
        self._refresh_passthrough()
        return Routed(event_type=APPEND)

    def next_slice(self) -> str | None:
        """The running slicer's next append (None, and the slicer gone, once it is done)."""
        slicer = self.slicer
        if slicer is None:
            return None
        frame = slicer.next_frame()
        if slicer.done:
            self.slicer = None
            self._refresh_passthrough()
        startup = self.startup
        if frame is not None and startup is not None and startup.holding:
            startup.hold((frame,))  # the upstream is still being told the session's formats
            return None
        return frame

    def _route_client_event(self, text: str, event: dict[str, Any], now: float) -> Routed:
        event_type: str = event["type"]
        if not self._protocol_decided and event_type != APPEND:  # appends look alike in both
            if is_beta_client_event(event):
                self.beta = True
                self._protocol_decided = True
            elif event_type == SESSION_UPDATE:
                self._protocol_decided = True
        if not self.beta:
            return self._route_ga_event(text, event, event_type, changed=False, now=now)
        result = beta_to_ga(event)
        if result.changed:
            event = result.event
        routed = self._route_ga_event(text, event, event["type"], changed=result.changed, now=now)
        routed.dropped_fields = result.dropped_fields
        return routed

    def _route_ga_event(
        self, text: str, event: dict[str, Any], event_type: str, *, changed: bool, now: float
    ) -> Routed:
        """A client event in GA shape: audio, format and turn rules, then the frame to forward."""
        if event_type == APPEND:
            return self._append(text, event, changed, now)
        refused: list[str] = []
        if event_type == SESSION_UPDATE:
            if self.lock is not None:
                refused = self.lock.session_update(event)
            changed = self._session_update(event) or bool(refused) or changed
        elif event_type == RESPONSE_CREATE:
            if self.lock is not None:
                refused = self.lock.response_create(event)
            changed = self._response_output_format(event) or bool(refused) or changed
            self.turns.client_response_create()
        elif event_type == ITEM_CREATE and not self._in.is_passthrough:
            event_id = event.get("event_id")
            check_item_audio_size(event.get("item"), self._in.src, event_id)
            changed = (
                convert_item_audio(
                    event.get("item"),
                    client_input=self._in.src,
                    client_output=self._out.dst,
                    up=True,
                    event_id=event_id if isinstance(event_id, str) else None,
                )
                or changed
            )
        elif event_type == COMMIT:
            answered = self.turns.client_commit()
            if answered.swallow:  # the VAD already took this turn: the bridge answers
                return Routed(to_client=self._bridge_events(answered), event_type=COMMIT)
        frame = dumps(event) if changed else text
        if refused:
            return self._refused_fields(frame, event, event_type, refused)
        if event_type == COMMIT:
            # The resampler holds back a few tens of ms: the turn's end must reach the upstream.
            tail = self._in.flush()
            if tail:
                return Routed(to_upstream=(append_event(tail, None), frame), event_type=COMMIT)
        elif event_type == CLEAR:
            self._in.flush()
            self.turns.client_clear()
        return Routed(to_upstream=(frame,), event_type=event_type)

    def _refused_fields(
        self, frame: str, event: dict[str, Any], event_type: str, refused: list[str]
    ) -> Routed:
        """The event goes on without the locked fields; the client is told which."""
        event_id = event.get("event_id")
        error = ClientError(
            ErrorCode.SESSION_FIELD_LOCKED,
            f"Set by the operator for this session, so not changed: {', '.join(refused)}. "
            "The rest of the event was applied.",
            param=refused[0],
            event_id=event_id if isinstance(event_id, str) else None,
        )
        self.error_codes[error.code.value] += 1
        return Routed(
            to_upstream=(frame,),
            to_client=(error_event_text(error),),
            event_type=event_type,
            error=error,
        )

    def _append(self, text: str, event: dict[str, Any], changed: bool, now: float) -> Routed:
        event_id = event.get("event_id")
        client_event_id = event_id if isinstance(event_id, str) else None
        audio = event.get("audio")
        src = self._in.src
        if self._in.is_passthrough:
            size = audio_b64_size(audio, src, event_id=client_event_id)
            ms = src.duration_ms(size)
            self.audio_ms_in += ms
            self.turns.client_audio(now, ms)
            return Routed(to_upstream=(dumps(event) if changed else text,), event_type=APPEND)
        data = decode_audio_b64(audio, src, event_id=client_event_id)
        ms = src.duration_ms(len(data))
        self.audio_ms_in += ms
        self.turns.client_audio(now, ms)
        if needs_slicing(self._in, len(data)):
            return self._sliced(data, client_event_id)
        converted = self._in.convert(data)
        return Routed(to_upstream=(append_event(converted, client_event_id),), event_type=APPEND)

    def _session_update(self, event: dict[str, Any]) -> bool:
        """Learn the client's formats from a GA ``session.update``; tell the upstream what it
        supports instead. Returns whether the event changed. Formats are validated before
        anything is remembered, so a rejected update changes nothing."""
        session = event.get("session")
        audio = session.get("audio") if isinstance(session, dict) else None
        if not isinstance(audio, dict):
            return False
        new_in = new_out = None
        for direction in ("input", "output"):
            part = audio.get(direction)
            if isinstance(part, dict) and "format" in part:
                fmt = parse_ga_format(part["format"], param=f"session.audio.{direction}.format")
                if direction == "input":
                    new_in = fmt
                else:
                    new_out = fmt
        changed = False
        if new_in is not None:
            if new_in != self._in.src:
                self._set_input(new_in)
            if new_in.upstream_format() != new_in:
                audio["input"] = {**audio["input"], "format": new_in.upstream_format().to_ga()}
                changed = True
        if new_out is not None:
            if new_out != self._out.dst:
                self._set_output(new_out)
            if new_out.upstream_format() != new_out:
                audio["output"] = {**audio["output"], "format": new_out.upstream_format().to_ga()}
                changed = True
        return changed

    # ----------------------------------------------------------- upstream → client

    def passthrough_upstream(self, payload: bytes) -> str | None:
        """The hot path, for an upstream text frame still in bytes: its event type when it goes
        to the client unchanged (the caller forwards ``payload`` as it is; audio is counted),
        None when it must go through :meth:`from_upstream_text` instead.

        Only ASCII frames take this path (audio deltas and nearly every event are ASCII), so
        nothing invalid as UTF-8 skips the decode of the general path."""
        if not self._upstream_passthrough or not payload.isascii():  # nearly free; keeps
            return None  # the client from ever getting invalid UTF-8 from the bridge
        if payload.startswith(_AUDIO_DELTA_HEAD):  # most upstream events: skip the peek
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
        bridge_events: tuple[Frame, ...] = _NO_FRAMES
        hide = False
        if event_type in SESSION_EVENTS or event_type in TURN_EVENTS:
            assert event_type is not None
            hide, to_upstream, bridge_events = self._follow(event_type, event, now)
        self._tokens_used = 0
        frames, changed = ([], False) if hide else self._upstream_event(event, event_type)
        if not self.beta:
            out: tuple[Frame, ...] = tuple(
                text if (f is event and not changed) else _serialise(f) for f in frames
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
        )

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
            return hide, tuple(to_upstream), _NO_FRAMES
        if event_type == ERROR and startup is not None and startup.holding:
            error = event.get("error")
            if isinstance(error, dict) and error.get("event_id") == startup.event_id:
                # The formats the client declared were refused: it is told (not hidden).
                return False, tuple(self._release_held()), _NO_FRAMES
        out = self.turns.upstream_event(event_type, event, now)
        return out.swallow, tuple(out.to_upstream), self._bridge_events(out)

    def _bridge_events(self, out: TurnOutput) -> tuple[Frame, ...]:
        """Events the bridge answers the client with itself, in the client's protocol."""
        if not out.to_client:
            return _NO_FRAMES
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

    def _response_output_format(self, event: dict[str, Any]) -> bool:
        """A per-response ``audio.output.format``: the bridge converts one output stream per
        session, so the override must name the session's output format; it is then told to the
        upstream in a format the upstream supports. Returns whether the event changed."""
        response = event.get("response")
        audio = response.get("audio") if isinstance(response, dict) else None
        output = audio.get("output") if isinstance(audio, dict) else None
        if not isinstance(output, dict) or "format" not in output:
            return False
        event_id = event.get("event_id")
        param = "response.audio.output.format"
        fmt = parse_ga_format(output["format"], param=param)
        if fmt.upstream_format() == fmt and self._out.is_passthrough and not self.binary_audio:
            return False  # nothing to convert either way: the upstream handles it as the API does
        if fmt != self._out.dst:
            raise ClientError(
                ErrorCode.UNSUPPORTED_AUDIO_FORMAT,
                f"A response's output format must be the session's ({self._out.dst}); "
                f"change it with session.update instead of {fmt}.",
                param=param,
                event_id=event_id if isinstance(event_id, str) else None,
            )
        if fmt.upstream_format() == fmt:
            return False
        assert isinstance(audio, dict)
        audio["output"] = {**output, "format": fmt.upstream_format().to_ga()}
        return True

    def _client_error(self, error: ClientError) -> Routed:
        self.error_codes[error.code.value] += 1
        return Routed(to_client=(error_event_text(error),), event_type=None, error=error)


#: The API takes at most 15 MiB of base64 audio in one append.
MAX_UPSTREAM_APPEND_B64 = 15 * 1024 * 1024


def check_item_audio_size(item: object, src: AudioFormat, event_id: object) -> None:
    """An item's input audio, converted whole, must fit the API's limit too."""
    content = item.get("content") if isinstance(item, dict) else None
    for part in content if isinstance(content, list) else ():
        audio = part.get("audio") if isinstance(part, dict) else None
        if isinstance(audio, str):
            check_converted_size(
                src, len(audio) * 3 // 4, event_id if isinstance(event_id, str) else None
            )


def check_converted_size(src: AudioFormat, nbytes: int, event_id: str | None) -> None:
    """Refuse audio whose converted append would exceed what the API accepts in one event
    (an 8 kHz client's audio triples in size at 24 kHz): ``invalid_audio``, session goes on."""
    upstream = src.upstream_format()
    converted = upstream.bytes_for_ms(src.duration_ms(nbytes))
    if (converted + 2) // 3 * 4 > MAX_UPSTREAM_APPEND_B64:
        limit_s = MAX_UPSTREAM_APPEND_B64 * 3 // 4 / upstream.bytes_for_ms(1000)
        raise ClientError(
            ErrorCode.INVALID_AUDIO,
            f"Too much audio in one append: at most {limit_s:.0f} s once converted for the "
            "upstream (the API takes 15 MiB per append); send it in smaller appends.",
            param="audio",
            event_id=event_id,
        )


def _serialise(frame: dict[str, Any] | bytes) -> Frame:
    return frame if isinstance(frame, bytes) else dumps(frame)


__all__ = ["APPEND", "HandshakeOptions", "Routed", "SessionProtocol"]
