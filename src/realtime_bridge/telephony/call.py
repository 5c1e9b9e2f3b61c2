"""One phone call, carrier-neutral: what the caller hears, what the model is told, barge-in.

Pure: fed the bridge's Realtime events (GA, as a client sees them) and the phone's messages,
returns messages for the phone and Realtime client events for the bridge. A carrier's wire
format (:mod:`.twilio`) is read and written around it.

Barge-in done right: the phone acknowledges each ``mark`` the bridge sends after an audio chunk
once that chunk was *played*, so the bridge knows what the caller really heard
(:class:`~realtime_bridge.protocol.playback.Playback`, shared with WebRTC calls). When the
upstream's VAD hears the caller (``input_audio_buffer.speech_started``) while assistant audio
is still unplayed, the phone is told to drop what it queued (``clear``), and the playback's
barge-in truncates the item at what was heard and cancels a response still running.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from realtime_bridge.protocol.playback import Playback
from realtime_bridge.telephony import twilio

#: µ-law at 8 kHz: one byte per sample, 8 per millisecond.
BYTES_PER_MS = 8
DTMF_MODES = ("off", "item", "respond")


@dataclass(slots=True)
class CallOutput:
    to_phone: list[str] = field(default_factory=list)
    to_bridge: list[str] = field(default_factory=list)
    #: The call is over (the phone said ``stop``).
    ended: bool = False
    #: Something worth a log line (a DTMF digit, a barge-in, a malformed message).
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class CallStats:
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    barge_ins: int = 0
    dtmf: int = 0


def _client_event(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


class CallCore:
    """The state of one call: marks in flight, what was played, the response running."""

    def __init__(
        self,
        stream_sid: str,
        *,
        dtmf: str = "off",
        dtmf_text: str = "[DTMF {digit}]",
        greeting: str | None = None,
    ) -> None:
        self.stream_sid = stream_sid
        self._dtmf = dtmf
        self._dtmf_text = dtmf_text
        self._greeting = greeting
        self.stats = CallStats()
        self._next_mark = 0
        #: mark name -> (item id, audio end in ms of that item) for marks not yet played.
        self._marks: dict[str, tuple[str, float]] = {}
        self.playback = Playback()

    # ------------------------------------------------------------------ start

    def started(self) -> CallOutput:
        """The call is up: the greeting, when there is one, is the first response."""
        out = CallOutput()
        if self._greeting:
            instructions = f"Greet the caller. Reply with: {self._greeting}"
            out.to_bridge.append(
                _client_event(
                    {"type": "response.create", "response": {"instructions": instructions}}
                )
            )
        return out

    # ------------------------------------------------------------------ the phone

    def from_phone(self, message: twilio.Message) -> CallOutput:
        out = CallOutput()
        if isinstance(message, twilio.Media):
            self.stats.audio_in_ms += len(message.payload) * 3 / 4 / BYTES_PER_MS
            # The payload goes up as it came: the upstream was told audio/pcmu.
            out.to_bridge.append(
                '{"type":"input_audio_buffer.append","audio":"' + message.payload + '"}'
            )
        elif isinstance(message, twilio.Mark):
            played = self._marks.pop(message.name, None)
            if played is not None:
                self.playback.played(*played)
        elif isinstance(message, twilio.Dtmf):
            self.stats.dtmf += 1
            out.notes.append(("dtmf", {"digit": message.digit}))
            if self._dtmf != "off":
                text = self._dtmf_text.format(digit=message.digit)
                item = {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
                create = {"type": "conversation.item.create", "item": item}
                out.to_bridge.append(_client_event(create))
                if self._dtmf == "respond" and not self.playback.response_running:
                    out.to_bridge.append(_client_event({"type": "response.create"}))
        elif isinstance(message, twilio.Stop):
            out.ended = True
        return out

    # ------------------------------------------------------------------ the bridge

    def from_bridge(self, event: dict[str, Any]) -> CallOutput:
        """One Realtime server event the bridge would send a client."""
        out = CallOutput()
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            self._audio(event, out)
        elif kind == "input_audio_buffer.speech_started":
            self._barge_in(out)
        elif kind == "response.created":
            self.playback.response_created()
        elif kind == "response.done":
            self.playback.response_done()
        elif kind == "error":
            error = event.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            out.notes.append(("upstream error", {"code": code}))
        return out

    def _audio(self, event: dict[str, Any], out: CallOutput) -> None:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        item_id = event.get("item_id")
        size = len(base64.b64decode(delta))
        playback = self.playback
        new_answer = item_id != playback.item_id
        if not playback.audio(item_id, size / BYTES_PER_MS):
            return  # cut by a barge-in
        if new_answer:
            self._marks.clear()  # its own timeline
        self.stats.audio_out_ms += size / BYTES_PER_MS
        out.to_phone.append(twilio.media(self.stream_sid, delta))
        self._next_mark += 1
        name = f"m{self._next_mark}"
        self._marks[name] = (playback.item_id or "", playback.sent_ms)
        out.to_phone.append(twilio.mark(self.stream_sid, name))

    def _barge_in(self, out: CallOutput) -> None:
        cut = self.playback.barge_in()
        if cut is None:
            return
        self.stats.barge_ins += 1
        out.to_phone.append(twilio.clear(self.stream_sid))
        out.to_bridge.extend(_client_event(event) for event in cut.events)
        if cut.item_id is not None:
            out.notes.append(("barge-in", {"item_id": cut.item_id, "heard_ms": cut.heard_ms}))
        self._marks.clear()


__all__ = ["DTMF_MODES", "CallCore", "CallOutput", "CallStats"]
