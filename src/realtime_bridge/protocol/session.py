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

import base64
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from realtime_bridge.audio.convert import Converter, audio_b64_size, decode_audio_b64
from realtime_bridge.audio.formats import (
    PCM16_24K,
    AudioFormat,
    parse_ga_format,
    parse_query_format,
)
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.events import (
    dumps,
    error_event_text,
    parse_client_event,
    peek_type,
    peek_type_prefix,
)
from realtime_bridge.protocol.translate import beta_to_ga, ga_to_beta, is_beta_client_event

Frame = str | bytes
_NO_FRAMES: tuple[Frame, ...] = ()

APPEND = "input_audio_buffer.append"
COMMIT = "input_audio_buffer.commit"
CLEAR = "input_audio_buffer.clear"
SESSION_UPDATE = "session.update"
AUDIO_DELTA = "response.output_audio.delta"
AUDIO_DONE = "response.output_audio.done"
RESPONSE_DONE = "response.done"
SESSION_EVENTS = frozenset({"session.created", "session.updated"})
_USAGE_EVENTS = frozenset({RESPONSE_DONE})
ITEM_CREATE = "conversation.item.create"
RESPONSE_CREATE = "response.create"
ITEM_EVENTS = frozenset(
    {"conversation.item.added", "conversation.item.done", "conversation.item.retrieved"}
)
#: How an audio delta from the API starts: its type, closing quote included (so no longer name
#: matches). Audio deltas are never among the parsed types; they only ever pass through here.
_AUDIO_DELTA_HEAD = b'{"type":"' + AUDIO_DELTA.encode() + b'"'
assert AUDIO_DELTA not in _USAGE_EVENTS | ITEM_EVENTS
_USAGE_FIELDS = ("input_tokens", "output_tokens", "total_tokens")
_USAGE_DETAILS = (
    ("input_token_details", ("text_tokens", "audio_tokens", "cached_tokens")),
    ("output_token_details", ("text_tokens", "audio_tokens")),
)


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


@dataclass(frozen=True, slots=True)
class HandshakeOptions:
    """What the client declared when it connected (query parameters, headers, subprotocols)."""

    input_format: AudioFormat = PCM16_24K
    output_format: AudioFormat = PCM16_24K
    binary_audio: bool = False
    beta: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, beta: bool = False) -> HandshakeOptions:
        """Parse ``input_audio_format``, ``output_audio_format`` and ``audio=binary``.

        Raises ``ClientError(unsupported_audio_format)`` for a format the bridge cannot serve.
        """
        fmt_in = query.get("input_audio_format")
        fmt_out = query.get("output_audio_format")
        return cls(
            input_format=parse_query_format(fmt_in, param="input_audio_format")
            if fmt_in
            else PCM16_24K,
            output_format=parse_query_format(fmt_out, param="output_audio_format")
            if fmt_out
            else PCM16_24K,
            binary_audio=query.get("audio") == "binary",
            beta=beta,
        )


class SessionProtocol:
    """The protocol state of one client session."""

    def __init__(self, options: HandshakeOptions | None = None) -> None:
        options = options or HandshakeOptions()
        self.binary_audio = options.binary_audio
        self._beta = options.beta
        self._protocol_decided = options.beta
        self.error_codes: Counter[str] = Counter()
        self.audio_ms_in = 0.0
        self.audio_ms_out = 0.0
        self.usage: dict[str, int] = {}
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
        self._refresh_passthrough()
        # Items the upstream reports carry input audio in the upstream's format.
        self._parsed_types = (
            _USAGE_EVENTS if self._in.is_passthrough else _USAGE_EVENTS | ITEM_EVENTS
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
        differ, each way; recomputed when either changes, not per frame."""
        out = getattr(self, "_out", None)
        self._upstream_passthrough = (
            not self._beta and out is not None and out.is_passthrough and not self.binary_audio
        )
        inp = getattr(self, "_in", None)
        self._client_passthrough = not self._beta and inp is not None and inp.is_passthrough

    # ----------------------------------------------------------- client → upstream

    def from_client_text(self, text: str) -> Routed:
        """A text frame from the client."""
        try:
            event = parse_client_event(text)
            return self._route_client_event(text, event)
        except ClientError as error:
            return self._client_error(error)

    def passthrough_client(self, payload: bytes | memoryview) -> bool:
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
        self.audio_ms_in += src.duration_ms(size)
        return True

    def from_client_binary(self, data: bytes) -> Routed:
        """A binary frame from the client: raw audio in its input format (an append)."""
        try:
            if self._in.src.bytes_per_sample == 2 and len(data) % 2:
                raise ClientError(
                    ErrorCode.INVALID_AUDIO,
                    f"PCM16 audio must have an even number of bytes, got {len(data)}",
                )
            converted = self._in.convert(data)
        except ClientError as error:
            return self._client_error(error)
        self.audio_ms_in += self._in.src.duration_ms(len(data))
        return Routed(to_upstream=(_append_event(converted, None),), event_type=APPEND)

    def _route_client_event(self, text: str, event: dict[str, Any]) -> Routed:
        event_type: str = event["type"]
        if not self._protocol_decided and event_type != APPEND:  # appends look alike in both
            if is_beta_client_event(event):
                self.beta = True
                self._protocol_decided = True
            elif event_type == SESSION_UPDATE:
                self._protocol_decided = True
        if not self.beta:
            return self._route_ga_event(text, event, event_type, changed=False)
        result = beta_to_ga(event)
        if result.changed:
            event = result.event
        routed = self._route_ga_event(text, event, event["type"], changed=result.changed)
        routed.dropped_fields = result.dropped_fields
        return routed

    def _route_ga_event(
        self, text: str, event: dict[str, Any], event_type: str, *, changed: bool
    ) -> Routed:
        """A client event in GA shape: audio and format rules, then the frame to forward."""
        if event_type == APPEND:
            return self._append(text, event, changed)
        if event_type == SESSION_UPDATE:
            changed = self._session_update(event) or changed
        elif event_type == RESPONSE_CREATE:
            changed = self._response_output_format(event) or changed
        elif event_type == ITEM_CREATE and not self._in.is_passthrough:
            event_id = event.get("event_id")
            changed = (
                self._convert_item_audio(
                    event.get("item"),
                    up=True,
                    event_id=event_id if isinstance(event_id, str) else None,
                )
                or changed
            )
        frame = dumps(event) if changed else text
        if event_type == COMMIT:
            # The resampler holds back a few tens of ms: the turn's end must reach the upstream.
            tail = self._in.flush()
            if tail:
                return Routed(to_upstream=(_append_event(tail, None), frame), event_type=COMMIT)
        elif event_type == CLEAR:
            self._in.flush()
        return Routed(to_upstream=(frame,), event_type=event_type)

    def _append(self, text: str, event: dict[str, Any], changed: bool) -> Routed:
        event_id = event.get("event_id")
        client_event_id = event_id if isinstance(event_id, str) else None
        audio = event.get("audio")
        if self._in.is_passthrough:
            size = audio_b64_size(audio, self._in.src, event_id=client_event_id)
            self.audio_ms_in += self._in.src.duration_ms(size)
            return Routed(to_upstream=(dumps(event) if changed else text,), event_type=APPEND)
        data = decode_audio_b64(audio, self._in.src, event_id=client_event_id)
        self.audio_ms_in += self._in.src.duration_ms(len(data))
        converted = self._in.convert(data)
        return Routed(to_upstream=(_append_event(converted, client_event_id),), event_type=APPEND)

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
            self.audio_ms_out += self._out.dst.duration_ms(_delta_size(payload))
            return AUDIO_DELTA
        event_type = peek_type_prefix(payload)
        if event_type is None or event_type in self._parsed_types:
            return None
        if event_type == AUDIO_DELTA:
            self.audio_ms_out += self._out.dst.duration_ms(_delta_size(payload))
        return event_type

    def from_upstream_text(self, text: str) -> Routed:
        """A text frame from the upstream: forwarded unchanged unless audio or protocol differ."""
        event_type = peek_type(text)
        if self._upstream_passthrough and event_type not in self._parsed_types:
            if event_type == AUDIO_DELTA:
                self.audio_ms_out += _b64_duration_ms(text, self._out.dst)
            return Routed(to_client=(text,), event_type=event_type)
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return Routed(to_client=(text,), event_type=None)
        if not isinstance(event, dict):
            return Routed(to_client=(text,), event_type=None)
        frames, changed = self._upstream_event(event, event_type)
        if not self.beta:
            out: tuple[Frame, ...] = tuple(
                text if (f is event and not changed) else _serialise(f) for f in frames
            )
            return Routed(to_client=out, event_type=event_type)
        beta_frames: list[Frame] = []
        for frame in frames:
            if isinstance(frame, bytes):
                beta_frames.append(frame)
                continue
            for translated in ga_to_beta(frame):
                original = translated is event and not changed
                beta_frames.append(text if original else dumps(translated))
        return Routed(to_client=tuple(beta_frames), event_type=event_type)

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
                frames.append(self._delta_frame(tail, event))
            frames.append(event)
            return frames, False
        if event_type in SESSION_EVENTS:
            return [event], self._client_view_of_session(event)
        if event_type in ITEM_EVENTS and not (self._in.is_passthrough and self._out.is_passthrough):
            return [event], self._convert_item_audio(event.get("item"), up=False)
        if event_type == RESPONSE_DONE:
            self._add_usage(event)
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
        return [self._delta_frame(converted, event)]

    def _delta_frame(self, audio: bytes, like: dict[str, Any]) -> dict[str, Any] | bytes:
        if self.binary_audio:
            return audio
        fields = {k: v for k, v in like.items() if k not in ("type", "delta", "event_id")}
        return {
            "type": AUDIO_DELTA,
            "event_id": like.get("event_id", ""),
            **fields,
            "delta": base64.b64encode(audio).decode(),
        }

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

    def _convert_item_audio(self, item: object, *, up: bool, event_id: str | None = None) -> bool:
        """Audio inside conversation items is in the sender's format too: an item a client
        creates carries audio in its input format, and items the upstream reports carry audio in
        the formats the upstream was told. Each clip is converted whole (a fresh converter,
        flushed). Returns whether anything changed; invalid client audio raises ``invalid_audio``.
        """
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(content, list):
            return False
        changed = False
        for index, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("audio"), str):
                continue
            is_input = part.get("type") == "input_audio"
            client_fmt = self._in.src if is_input else self._out.dst
            upstream_fmt = client_fmt.upstream_format()
            if client_fmt == upstream_fmt:
                continue
            src, dst = (client_fmt, upstream_fmt) if up else (upstream_fmt, client_fmt)
            try:
                data = decode_audio_b64(
                    part["audio"], src, param=f"item.content[{index}].audio", event_id=event_id
                )
            except ClientError:
                if up:
                    raise
                continue  # the upstream's own audio: not ours to judge
            converter = Converter(src, dst)
            clip = converter.convert(data) + converter.flush()
            content[index] = {**part, "audio": base64.b64encode(clip).decode()}
            changed = True
        return changed

    def _client_view_of_session(self, event: dict[str, Any]) -> bool:
        """Show the client the formats it declared, not the ones the upstream was told."""
        session = event.get("session")
        audio = session.get("audio") if isinstance(session, dict) else None
        if not isinstance(audio, dict):
            return False
        changed = False
        for direction, fmt in (("input", self._in.src), ("output", self._out.dst)):
            part = audio.get(direction)
            if fmt.upstream_format() != fmt and isinstance(part, dict) and "format" in part:
                audio[direction] = {**part, "format": fmt.to_ga()}
                changed = True
        return changed

    def _add_usage(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        if not isinstance(usage, dict):
            return
        totals = self.usage
        for name in _USAGE_FIELDS:
            value = usage.get(name)
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
        for group, names in _USAGE_DETAILS:
            details = usage.get(group)
            if not isinstance(details, dict):
                continue
            prefix = group.split("_", 1)[0]
            for name in names:
                value = details.get(name)
                if isinstance(value, int):
                    key = f"{prefix}_{name}"
                    totals[key] = totals.get(key, 0) + value

    def _client_error(self, error: ClientError) -> Routed:
        self.error_codes[error.code.value] += 1
        return Routed(to_client=(error_event_text(error),), event_type=None, error=error)


def _append_event(audio: bytes, event_id: str | None) -> str:
    event: dict[str, Any] = {"type": APPEND}
    if event_id is not None:
        event["event_id"] = event_id
    event["audio"] = base64.b64encode(audio).decode()
    return dumps(event)


def _serialise(frame: dict[str, Any] | bytes) -> Frame:
    return frame if isinstance(frame, bytes) else dumps(frame)


def _b64_duration_ms(text: str, fmt: AudioFormat) -> float:
    """Duration of an audio delta from its base64 length, without decoding it."""
    start = text.find('"delta":"')
    end = text.find('"', start + 9)
    if start < 0 or end < 0:
        return 0.0
    padding = text.count("=", max(start + 9, end - 2), end)
    return fmt.duration_ms((end - start - 9) * 3 // 4 - padding)


def _delta_size(payload: bytes) -> int:
    """Decoded size of an audio delta event's base64 ``delta``, without decoding it: the
    same as :func:`_b64_duration_ms` on the frame's bytes, written for the hot path."""
    start = payload.find(b'"delta":"')
    if start < 0:
        return 0
    begin = start + 9
    end = payload.find(b'"', begin)
    if end < 0:
        return 0
    # Padding is one or two '=' (61) at the end; the bytes before the value are never '='.
    padding = (payload[end - 1] == 61) + (payload[end - 2] == 61 and end - 2 >= begin)
    return (end - begin) * 3 // 4 - padding


__all__ = ["HandshakeOptions", "Routed", "SessionProtocol"]
