"""A session's rules for what the client sends: validation, audio conversion, beta
translation, the operator's locks, turns, and the frames that go upstream. Pure; part of
:class:`~realtime_bridge.protocol.session.SessionProtocol`."""

from __future__ import annotations

from typing import Any

import orjson

from realtime_bridge.audio.convert import audio_b64_size, decode_audio_b64
from realtime_bridge.audio.formats import parse_ga_format
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.audio_events import (
    APPEND,
    append_event,
    check_item_audio_size,
    convert_item_audio,
    splice,
)
from realtime_bridge.protocol.events import (
    dumps,
    error_event_text,
    parse_client_event,
)
from realtime_bridge.protocol.large_events import LargeEvent, LargeEventReader
from realtime_bridge.protocol.routed import (
    CLEAR,
    COMMIT,
    ITEM_CREATE,
    RESPONSE_CANCEL,
    RESPONSE_CREATE,
    SESSION_UPDATE,
    Routed,
    SessionState,
)
from realtime_bridge.protocol.slicing import AppendSlicer, needs_slicing
from realtime_bridge.protocol.translate import beta_to_ga, is_beta_client_event


class ClientRules(SessionState):
    """Client → upstream."""

    def from_client_text(self, text: str, now: float = 0.0) -> Routed:
        """A text frame from the client."""
        try:
            event = parse_client_event(text)
            routed = self._route_client_event(text, event, now)
        except ClientError as error:
            return self._client_error(error)
        return self._hold_if_starting(routed)

    def large_event_reader(self, text: str) -> LargeEventReader:
        """A reader for a text frame over :data:`LARGE_EVENT_CHARS`: the caller steps it, holding
        the session's later frames, then routes its result with :meth:`from_large_event`."""
        return LargeEventReader(
            text,
            client_input=self._in.src,
            client_output=self._out.dst,
            convert=not self._in.is_passthrough,
        )

    def from_large_event(self, read: LargeEvent | ClientError, now: float = 0.0) -> Routed:
        """A large text frame from the client, read by :meth:`large_event_reader`."""
        if isinstance(read, ClientError):
            return self._client_error(read)
        try:
            routed = self._route_client_event(read.text, read.event, now, read)
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
        if needs_slicing(self._in, len(data), encoded_here=True):
            return self._sliced(data, None)
        converted = self._in.convert(data)
        if not converted:  # all held back by the resampler: nothing to send yet
            return Routed(event_type=APPEND)
        routed = Routed(to_upstream=(append_event(converted, None),), event_type=APPEND)
        return self._hold_if_starting(routed)

    def _sliced(self, data: bytes | list[bytes], event_id: str | None) -> Routed:
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

    def _route_client_event(
        self, text: str, event: dict[str, Any], now: float, read: LargeEvent | None = None
    ) -> Routed:
        event_type: str = event["type"]
        if not self._protocol_decided and event_type != APPEND:  # appends look alike in both
            if is_beta_client_event(event):
                self.beta = True
                self._protocol_decided = True
            elif event_type == SESSION_UPDATE:
                self._protocol_decided = True
        if not self.beta:
            return self._route_ga_event(text, event, event_type, changed=False, now=now, read=read)
        result = beta_to_ga(event)
        if result.changed:
            event = result.event
        routed = self._route_ga_event(
            text, event, event["type"], changed=result.changed, now=now, read=read
        )
        routed.dropped_fields = result.dropped_fields
        return routed

    def _route_ga_event(
        self,
        text: str,
        event: dict[str, Any],
        event_type: str,
        *,
        changed: bool,
        now: float,
        read: LargeEvent | None = None,
    ) -> Routed:
        """A client event in GA shape: audio, format and turn rules, then the frame to forward.
        ``read`` is a large event's long audio work, already done in steps."""
        if event_type == APPEND:
            return self._append(text, event, changed, now, read)
        refused: list[str] = []
        if event_type == SESSION_UPDATE:
            if self.lock is not None:
                refused = self.lock.session_update(event)
            changed = self._merge_server_tools(event.get("session"), refused) or changed
            changed = self._session_update(event) or bool(refused) or changed
        elif event_type == RESPONSE_CREATE:
            if self.lock is not None:
                refused = self.lock.response_create(event)
            changed = self._merge_server_tools(event.get("response"), refused) or changed
            changed = self._response_output_format(event) or bool(refused) or changed
            self.turns.client_response_create()
        elif event_type == RESPONSE_CANCEL and self.tools is not None:
            self.tools.client_cancelled()
        elif event_type == ITEM_CREATE and read is not None and read.spliced is not None:
            changed = True  # converted while it was read; spliced into the frame below
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
        if read is not None and read.spliced:
            frame = splice(frame, read.spliced)
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

    def _merge_server_tools(self, fields: object, refused: list[str]) -> bool:
        """The server's tools added to a client's ``tools`` (session or response); a client
        tool named like one of them is refused (added to ``refused``). Whether it changed."""
        if self.tools is None or not isinstance(fields, dict) or "tools" not in fields:
            return False
        refused += [f"tools.{name}" for name in self.tools.merge_client_tools(fields)]
        return True

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

    def _append(
        self, text: str, event: dict[str, Any], changed: bool, now: float, read: LargeEvent | None
    ) -> Routed:
        event_id = event.get("event_id")
        client_event_id = event_id if isinstance(event_id, str) else None
        audio = event.get("audio")
        src = self._in.src
        if self._in.is_passthrough:
            size = (
                read.audio_size
                if read is not None and read.audio_size is not None
                else audio_b64_size(audio, src, event_id=client_event_id)
            )
            ms = src.duration_ms(size)
            self.audio_ms_in += ms
            self.turns.client_audio(now, ms)
            return Routed(to_upstream=(dumps(event) if changed else text,), event_type=APPEND)
        if read is not None and read.audio is not None and read.audio_size is not None:
            ms = src.duration_ms(read.audio_size)
            self.audio_ms_in += ms
            self.turns.client_audio(now, ms)
            return self._sliced(read.audio, client_event_id)  # large: sliced, whatever its length
        data = decode_audio_b64(audio, src, event_id=client_event_id)
        ms = src.duration_ms(len(data))
        self.audio_ms_in += ms
        self.turns.client_audio(now, ms)
        if needs_slicing(self._in, len(data)):
            return self._sliced(data, client_event_id)
        converted = self._in.convert(data)
        if not converted:  # all held back by the resampler: an empty append would be refused
            return Routed(event_type=APPEND)
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


__all__ = ["ClientRules"]
