"""A Twilio Media Streams WebSocket as one more client kind of the same relay session.

The bridge session talks to this connection as it talks to a Realtime client: it gets Realtime
client events (the caller's audio as appends, DTMF, barge-in truncations) and sends Realtime
server events, which :class:`~realtime_bridge.telephony.call.CallCore` turns into what Twilio
understands (media, marks, clear). The relay, the upstreams and the policy are the same ones.
Unlike a Realtime client, Twilio is read before the session starts: its ``start`` message
(stream and call ids, custom parameters) configures the session.
"""

from __future__ import annotations

import asyncio
from collections import deque

import orjson
from picows import WSFrame, WSMsgType, WSTransport

from realtime_bridge.observability import get_logger
from realtime_bridge.server.channel import ClientConnection, ClientGone, ClientSink
from realtime_bridge.telephony import twilio
from realtime_bridge.telephony.call import CallCore, CallOutput
from realtime_bridge.wsframes import TEXT

log = get_logger("twilio")
#: What the caller sends before the session is up is kept (20 ms a message: 10 s).
MAX_EARLY_MESSAGES = 500


class TwilioConnection(ClientConnection):
    """Twilio's side of one call."""

    def __init__(
        self,
        max_message_bytes: int,
        max_unsent_bytes: int,
        *,
        dtmf: str = "off",
        dtmf_text: str = "[DTMF {digit}]",
        greeting: str | None = None,
    ) -> None:
        super().__init__(max_message_bytes, max_unsent_bytes)
        self._dtmf = dtmf
        self._dtmf_text = dtmf_text
        self._greeting = greeting
        #: Twilio's ``start``: the session is configured from it.
        self.started: asyncio.Future[twilio.Start] = asyncio.get_running_loop().create_future()
        self.call: CallCore | None = None
        self.session_id = ""
        self._to_session: deque[str] = deque(maxlen=MAX_EARLY_MESSAGES)
        self.malformed = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        # Twilio is read at once: its start message configures the session.
        self._read_blocks.discard("attach")
        transport.underlying_transport.resume_reading()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Twilio's messages are whole text frames, handled as they come (before the session
        is attached too); anything else takes the general path (close, ping, bad frames)."""
        if (
            frame.msg_type is TEXT
            and frame.fin
            and self._gone is None
            and frame.payload_size <= self._max_message_bytes
        ):
            self._deliver(TEXT, frame.get_payload_as_bytes())
            return
        super().on_ws_frame(transport, frame)

    def attach(self, sink: ClientSink) -> None:
        super().attach(sink)
        early = list(self._to_session)
        self._to_session.clear()
        if self.call is not None:
            for event in self.call.started().to_bridge:  # the greeting, when there is one
                sink.own_text(event)
        for event in early:
            sink.client_text(event)

    # -- Twilio → the session -------------------------------------------------------------------

    def _deliver(self, msg_type: WSMsgType, data: bytes) -> None:
        try:
            message = twilio.parse(data)
        except twilio.TwilioMessageError as error:
            self.malformed += 1
            log.info("malformed Twilio message ignored: %s", error, extra=self._ids())
            return
        if isinstance(message, twilio.Start):
            if self.call is None:
                self.call = CallCore(
                    message.stream_sid,
                    dtmf=self._dtmf,
                    dtmf_text=self._dtmf_text,
                    greeting=self._greeting,
                )
                if not self.started.done():
                    self.started.set_result(message)
            return
        if self.call is None:
            if not isinstance(message, twilio.Other):
                log.info(
                    "Twilio message before start ignored", extra={"event": type(message).__name__}
                )
            return
        self._apply(self.call.from_phone(message))

    def _apply(self, out: CallOutput) -> None:
        for note, fields in out.notes:
            log.info(note, extra={**self._ids(), **fields})
        for message in out.to_phone:
            ClientConnection.send_text_payload(self, message.encode())
        for event in out.to_bridge:
            sink = self._sink
            if sink is None:
                self._to_session.append(event)
            else:
                sink.client_text(event)
        if out.ended:
            self._end(ClientGone(1000, "the call ended (Twilio stop)"))

    # -- the session → Twilio -------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._from_session(text)

    def send_text_payload(self, payload: bytes | memoryview) -> None:
        self._from_session(payload)

    def send_bytes(self, data: bytes) -> None:
        """Binary audio is never asked for on a call."""

    def _from_session(self, payload: str | bytes | memoryview) -> None:
        call = self.call
        if call is None:
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict):
            self._apply(call.from_bridge(event))

    def summary(self) -> dict[str, object]:
        if self.call is None:
            return {}
        return {"barge_ins": self.call.stats.barge_ins, "dtmf": self.call.stats.dtmf}

    def _ids(self) -> dict[str, str]:
        call = self.call
        return {
            "session_id": self.session_id,
            "stream_sid": call.stream_sid if call is not None else "",
        }


__all__ = ["TwilioConnection"]
