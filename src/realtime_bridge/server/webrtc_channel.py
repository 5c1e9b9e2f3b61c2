"""A WebRTC call as one more client kind of the same relay session.

The bridge session talks to a call as to any Realtime client: it gets client events (from the
``oai-events`` data channel) and the caller's audio (from the track, as binary PCM16 at 48 kHz,
which the session resamples like any client's), and it sends server events and binary output
audio. This adapter turns that into what a WebRTC caller expects, as the API does over WebRTC:

- the output audio goes on the paced track, never as ``response.output_audio.delta`` events;
- ``output_audio_buffer.started`` / ``.stopped`` / ``.cleared`` say when the track plays;
- barge-in (``input_audio_buffer.speech_started``) stops the track at once and truncates the
  item at what left on it (:class:`~realtime_bridge.protocol.playback.Playback`, the same
  bookkeeping as a phone call's marks); ``output_audio_buffer.clear`` does the same on request;
- no data channel message exceeds the caller's ``a=max-message-size`` (:mod:`..webrtc.events`);
- an operator's backend attached as a sideband sees the call's events and may send its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from typing import Any

import orjson

from realtime_bridge.audio.formats import parse_query_format
from realtime_bridge.observability import get_logger
from realtime_bridge.protocol.events import dumps, peek_type, peek_type_prefix
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.playback import Playback
from realtime_bridge.server.channel import ClientConnection, ClientGone, ClientSink
from realtime_bridge.webrtc.events import buffer_event, fit_to_channel, strip_client_formats
from realtime_bridge.webrtc.ice import IceSettings
from realtime_bridge.webrtc.media import BYTES_PER_MS, Tag
from realtime_bridge.webrtc.peer import CallPeer
from realtime_bridge.webrtc.sdp import Offer

log = get_logger("webrtc")

_PCM_48K = parse_query_format("pcm16@48000", param="webrtc")
#: A call's audio is PCM16 at 48 kHz both ways (Opus's rate), as binary frames; the track is
#: continuous, silence included, so the session needs no silence fill.
CALL_OPTIONS = HandshakeOptions(
    input_format=_PCM_48K, output_format=_PCM_48K, binary_audio=True, silence_fill=False
)
#: ICE and DTLS must be done within this long of the answer, or the call ends.
CONNECT_TIMEOUT_S = 30.0
#: Caller audio kept while the upstream connects (48 kHz PCM16: 20 s), and events.
MAX_EARLY_AUDIO_BYTES = 20 * 1000 * BYTES_PER_MS
MAX_EARLY_EVENTS = 1000
#: Events for the caller kept until its data channel opens.
MAX_PENDING_EVENTS = 1000
#: How long the last events get to leave before the peer connection is closed.
FLUSH_TIMEOUT_S = 0.5
#: How long a call ended before its data channel opened waits for it, to say why.
EARLY_END_WAIT_S = 2.0
#: Events whose fields the adapter reads (everything else passes as it came).
_WATCHED = frozenset(
    {
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.done",
        "input_audio_buffer.speech_started",
        "error",
        "response.output_audio.delta",
    }
)


class WebRTCConnection(ClientConnection):
    """The caller's side of one WebRTC call."""

    def __init__(
        self,
        max_message_bytes: int,
        max_unsent_bytes: int,
        *,
        call_id: str,
        ice: IceSettings,
        offer: Offer,
    ) -> None:
        super().__init__(max_message_bytes, max_unsent_bytes)
        self.call_id = call_id
        self.session_id = ""
        self._offer = offer
        self.playback = Playback(event_id_prefix=f"bridge_rtc{secrets.token_hex(4)}_")
        self._peer = CallPeer(
            ice,
            on_event=self._from_caller,
            on_audio=self._caller_audio,
            on_played=self._played,
            on_open=self._channel_open,
            on_gone=self._peer_gone,
        )
        self._early_events: deque[tuple[str, str | bytes]] = deque()
        self._early_audio_bytes = 0
        self._pending: deque[bytes] = deque(maxlen=MAX_PENDING_EVENTS)
        self._audio_tag: Tag = (None, None)  # what the next output audio belongs to
        self._audio_done: set[str] = set()  # responses whose audio has all arrived
        self._playing: str | None = None  # the response on the track
        self._played_item: str | None = None
        self._played_item_ms = 0.0
        self.sidebands: set[ClientConnection] = set()
        #: Set when the call is over (its sidebands close then).
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.audio_in_ms = 0.0
        self.audio_out_ms = 0.0
        self.barge_ins = 0
        self.dropped_audio_bytes = 0
        self._release: asyncio.Task[None] | None = None

    async def answer(self) -> str:
        """The SDP answer; the session may start once it is given."""
        answer = await self._peer.answer(self._offer.sdp)
        loop = asyncio.get_running_loop()
        loop.call_later(CONNECT_TIMEOUT_S, self._check_connected)
        if not self.on_connected.done():
            self.on_connected.set_result(None)
        return answer

    def summary(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "barge_ins": self.barge_ins,
            "caller_audio_s": round(self.audio_in_ms / 1000, 3),
            "played_audio_s": round(self.audio_out_ms / 1000, 3),
        }

    # -- the session's side ---------------------------------------------------------------------

    def attach(self, sink: ClientSink) -> None:
        self._sink = sink
        early, self._early_events = self._early_events, deque()
        self._early_audio_bytes = 0
        for kind, data in early:
            if kind == "audio":
                sink.client_binary(data)  # type: ignore[arg-type]
            elif kind == "own":
                sink.own_text(data)  # type: ignore[arg-type]
            else:
                sink.client_text(data)  # type: ignore[arg-type]
        if self._gone is not None:
            sink.client_gone(self._gone)

    @property
    def closed(self) -> bool:
        return self._closing or self._gone is not None

    @property
    def write_buffer_size(self) -> int:
        return self._peer.buffered_bytes

    def ping(self) -> None:
        """ICE consent checks keep a call alive; there is nothing to ping."""

    def send_text(self, text: str) -> None:
        self._from_session(text.encode())

    def send_text_payload(self, payload: bytes | memoryview) -> None:
        self._from_session(bytes(payload))

    def send_bytes(self, data: bytes) -> None:
        """Output audio (PCM16 48 kHz): onto the track, unless its item was cut."""
        ms = len(data) / BYTES_PER_MS
        if not self.playback.audio(self._audio_tag[0], ms):
            return
        self.audio_out_ms += ms
        self._peer.outbound.push(data, self._audio_tag)

    async def close(self, code: int, reason: str = "") -> None:
        """End the call: the last events leave first, then sidebands and the peer close.

        A call that ends before its data channel opened (its upstream refused at once) waits
        a little for the channel, so the caller learns why instead of hearing nothing."""
        self._sink = None
        self._closing = True
        if self._pending and self._gone is None:
            await self._peer.opened(EARLY_END_WAIT_S)
        await self._peer.flush(FLUSH_TIMEOUT_S)
        self._set_ended()
        if self._release is None:
            self._release = asyncio.get_running_loop().create_task(self._peer.close())
        await self._release

    def abort(self) -> None:
        self._sink = None
        self._closing = True
        self._set_ended()
        if self._release is None:
            self._release = asyncio.get_running_loop().create_task(self._peer.close())

    def _set_ended(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    def hangup(self) -> None:
        self._gone_with(ClientGone(1000, "the call was hung up"))

    # -- sidebands ------------------------------------------------------------------------------

    def sideband_event(self, text: str) -> None:
        """A client event from the operator's backend: the bridge's own, so the call's locks
        (which bind the page) do not apply to it."""
        sink = self._sink
        if sink is None:
            self._keep("own", text)
        else:
            sink.own_text(text)

    # -- the caller → the session ---------------------------------------------------------------

    def _from_caller(self, text: str) -> None:
        kind = peek_type(text)
        if kind == "output_audio_buffer.clear":
            self._cut(asked=True)
            return
        if kind == "session.update":
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(text)
                if isinstance(event, dict) and strip_client_formats(event):
                    text = dumps(event)
        sink = self._sink
        if sink is None:
            self._keep("text", text)
        else:
            sink.client_text(text)

    def _caller_audio(self, pcm: bytes) -> None:
        self.audio_in_ms += len(pcm) / BYTES_PER_MS
        sink = self._sink
        if sink is not None:
            sink.client_binary(pcm)
        elif self._early_audio_bytes + len(pcm) <= MAX_EARLY_AUDIO_BYTES:
            self._early_audio_bytes += len(pcm)
            self._early_events.append(("audio", pcm))
        else:
            self.dropped_audio_bytes += len(pcm)

    def _keep(self, kind: str, text: str) -> None:
        if not self._closing and len(self._early_events) < MAX_EARLY_EVENTS:
            self._early_events.append((kind, text))

    # -- the session → the caller ---------------------------------------------------------------

    def _from_session(self, payload: bytes) -> None:
        kind = peek_type_prefix(payload) or peek_type(payload.decode(errors="replace"))
        if kind in _WATCHED:
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                event = None
            if isinstance(event, dict) and not self._watched(kind, event):
                return
            if kind == "input_audio_buffer.speech_started":
                self._to_caller(payload)
                self._cut(asked=False)
                return
        self._to_caller(payload)

    def _watched(self, kind: str | None, event: dict[str, Any]) -> bool:
        """Bookkeeping on an event the adapter reads; False if the caller must not get it."""
        if kind == "response.output_audio.delta":
            return False  # the audio is on the track
        if kind == "error":
            error = event.get("error")
            event_id = error.get("event_id") if isinstance(error, dict) else None
            if self.playback.owns(event_id):
                log.info("upstream refused the bridge's own event", extra=self._ids())
                return False
            return True
        response_id = event.get("response_id")
        if kind == "response.created":
            response = event.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            self.playback.response_created()
            self._audio_tag = (None, rid if isinstance(rid, str) else None)
        elif kind == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "message":
                self._set_audio_tag(item.get("id"), response_id)
        elif kind == "response.content_part.added":
            part = event.get("part")
            if isinstance(part, dict) and part.get("type") in ("audio", "output_audio"):
                self._set_audio_tag(event.get("item_id"), response_id)
        elif kind == "response.output_audio.done":
            self._peer.outbound.finish()
            if isinstance(response_id, str):
                self._audio_done.add(response_id)
                self._maybe_stopped()
        elif kind == "response.done":
            self._peer.outbound.finish()
            self.playback.response_done()
            response = event.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            if isinstance(rid, str):
                self._audio_done.add(rid)
                self._maybe_stopped()
        return True

    def _set_audio_tag(self, item_id: object, response_id: object) -> None:
        self._audio_tag = (
            item_id if isinstance(item_id, str) else None,
            response_id if isinstance(response_id, str) else self._audio_tag[1],
        )

    def _to_caller(self, payload: bytes) -> None:
        for sideband in self.sidebands:
            sideband.send_text_payload(payload)
        data = fit_to_channel(payload, self._offer.max_message_size)
        if not self._peer.open:
            if not self._closing:
                self._pending.append(data)
            return
        self._peer.send(data.decode())

    def _own_event(self, text: str) -> None:
        self._to_caller(text.encode())

    # -- the track ------------------------------------------------------------------------------

    def _played(self, taken: list[tuple[Tag, int]], empty: bool) -> None:
        """The pacer put audio on the track: the caller hears it now."""
        for (item_id, response_id), size in taken:
            if response_id is not None and response_id != self._playing:
                if self._playing is not None:
                    self._own_event(buffer_event("stopped", self._playing))
                self._playing = response_id
                self._own_event(buffer_event("started", response_id))
            if item_id is not None:
                if item_id != self._played_item:
                    self._played_item, self._played_item_ms = item_id, 0.0
                self._played_item_ms += size / BYTES_PER_MS
                self.playback.played(item_id, self._played_item_ms)
        if empty:
            self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        playing = self._playing
        if (
            playing is not None
            and playing in self._audio_done
            and not self._peer.outbound.queued_bytes
        ):
            self._playing = None
            self._own_event(buffer_event("stopped", playing))

    def _cut(self, *, asked: bool) -> None:
        """Barge-in (or the caller's ``output_audio_buffer.clear``): the track stops now, the
        item is truncated at what was played, a running response is cancelled."""
        cut = self.playback.barge_in()
        dropped = self._peer.outbound.clear()
        playing = self._playing or self._audio_tag[1]
        if cut is None and not dropped and not asked:
            return
        self._playing = None
        self._own_event(buffer_event("cleared", playing))
        if cut is None:
            return
        self.barge_ins += 1
        log.info(
            "barge-in" if not asked else "playback cleared",
            extra={**self._ids(), "item_id": cut.item_id, "heard_ms": cut.heard_ms},
        )
        sink = self._sink
        if sink is not None:
            for event in cut.events:
                sink.own_text(dumps(event))

    # -- the peer connection --------------------------------------------------------------------

    def _channel_open(self) -> None:
        pending, self._pending = self._pending, deque(maxlen=MAX_PENDING_EVENTS)
        for data in pending:
            self._peer.send(data.decode())

    def _peer_gone(self, why: str) -> None:
        self._gone_with(ClientGone(1000, why))

    def _check_connected(self) -> None:
        if not self._peer.connected.done() and not self._closing:
            self._gone_with(ClientGone(1006, "ICE and DTLS did not connect in time"))

    def _gone_with(self, gone: ClientGone) -> None:
        """The caller hung up or vanished: the session learns it, and the peer connection is
        released here (the session does not close a client that is gone)."""
        if self._gone is not None or self._closing:
            return
        self._gone = gone
        if self._sink is not None:
            self._sink.client_gone(gone)
        self._set_ended()
        self._release = asyncio.get_running_loop().create_task(self._peer.close())

    def _ids(self) -> dict[str, str]:
        return {"session_id": self.session_id, "call_id": self.call_id}


__all__ = ["CALL_OPTIONS", "WebRTCConnection"]
