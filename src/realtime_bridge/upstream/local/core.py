"""The sans-I/O imitation of the Realtime API: client event texts in, timed server event texts out.

No sockets, no asyncio, no clock reads: the caller passes the current monotonic time (seconds)
to every call and asks :meth:`RealtimeCore.next_deadline` when to come back. Usage::

    core = RealtimeCore(model="gpt-realtime", pace=1.0, created_at=int(time.time()))
    core.start(now)                      # queues session.created
    core.receive(client_text, now)       # handles one client event
    for out in core.poll(now): send(out.text)   # everything due by now, in order
    core.next_deadline()                 # when more output becomes due (None = only on input)
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass
from typing import Any

import orjson

from realtime_bridge.audio.formats import AudioFormat

from . import checks, session_config, usage
from .apierror import ApiError, invalid_value
from .audio_io import decode, format_from_json, offset_for_ms
from .conversation import Conversation, StoredItem
from .events import error, event
from .ids import new_id
from .input_buffer import InputAudioBuffer
from .items import message_text, public_item, validate_item
from .responder import respond
from .response_run import ResponseRun, ResponseSpec
from .transcribe import placeholder_transcript, split_deltas
from .vad import EnergyVad, VadEvent, VadParams

MIN_COMMIT_MS = 100.0
DEFAULT_MODEL = "gpt-realtime"
CLIENT_EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "session.update": ("session",),
    "input_audio_buffer.append": ("audio",),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "conversation.item.create": ("item", "previous_item_id"),
    "conversation.item.retrieve": ("item_id",),
    "conversation.item.delete": ("item_id",),
    "conversation.item.truncate": ("item_id", "content_index", "audio_end_ms"),
    "response.create": ("response",),
    "response.cancel": ("response_id",),
    "output_audio_buffer.clear": (),
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A serialised server event and the time it became due."""

    text: str
    due: float


#: Response steps run per ``poll`` at most, so one call never holds the event loop for long.
STEPS_PER_POLL = 1
#: Limits like the API's: one client event (15 MiB of base64 audio plus its envelope), the
#: input audio buffer until it is committed, and what client-created items may hold in all.
MAX_EVENT_BYTES = 15 * 1024 * 1024 + 4096
MAX_INPUT_BUFFER_BYTES = 32 * 1024 * 1024
MAX_CONVERSATION_BYTES = 64 * 1024 * 1024


class RealtimeCore:
    """One Realtime session: session config, input buffer + VAD, conversation and responses."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        pace: float = 1.0,
        created_at: int = 0,
        session_id: str | None = None,
        transcription: bool = False,
    ) -> None:
        if pace < 0:
            raise ValueError("pace must be >= 0")
        self.pace = pace
        #: A transcription session (``?intent=transcription``): transcripts, no responses.
        self.transcription = transcription
        make = (
            session_config.default_transcription_session
            if transcription
            else session_config.default_session
        )
        self.session = make(
            session_id=session_id or new_id("sess"), model=model, created_at=created_at
        )
        self.conversation = Conversation()
        self.conversation_id = new_id("conv")
        self.buffer = InputAudioBuffer(self._input_format())
        self._vad: EnergyVad | None = None
        self._configure_vad()
        self._speech_item_id: str | None = None
        self._runs: list[ResponseRun] = []
        #: A VAD turn ended while a response was running: its answer follows that one.
        self._response_queued = False
        #: Bytes the client's own items hold (bounded by MAX_CONVERSATION_BYTES).
        self._conversation_bytes = 0
        self._ready: list[Outgoing] = []
        self._now = 0.0
        self._started = False
        self.tokens_used = 0

    # -- public API -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Queue ``session.created`` (once)."""
        self._now = now
        if not self._started:
            self._started = True
            self._emit(event("session.created", session=copy.deepcopy(self.session)))

    def receive(self, text: str | bytes, now: float) -> None:
        """Handle one client event; any error becomes an ``error`` event and the session goes on."""
        self.start(now)
        self._now = now
        self._flush(now, STEPS_PER_POLL)
        client_event_id: str | None = None
        try:
            if len(text) > MAX_EVENT_BYTES:
                raise ApiError(
                    "invalid_request_error",
                    f"The event is {len(text)} bytes; at most {MAX_EVENT_BYTES} are accepted.",
                )
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ApiError(
                    "invalid_json",
                    "We could not parse the JSON body of your request. "
                    "The event must be a JSON object.",
                ) from None
            if not isinstance(parsed, dict):
                raise ApiError("invalid_type", "The event must be a JSON object.")
            raw_id = parsed.get("event_id")
            client_event_id = raw_id if isinstance(raw_id, str) else None
            self._dispatch(parsed)
        except ApiError as exc:
            self._emit(error(exc.code, exc.message, exc.param, client_event_id))

    def poll(self, now: float) -> list[Outgoing]:
        """Events due by ``now``, oldest first; each is returned once. At most
        :data:`STEPS_PER_POLL` response steps run per call (each synthesises up to 100 ms of
        audio): when more are due (``pace`` 0, or a late timer), ``next_deadline`` is already
        past and the caller polls again after letting other work run."""
        self._now = max(self._now, now)
        self._flush(now, STEPS_PER_POLL)
        ready, self._ready = self._ready, []
        return ready

    def next_deadline(self) -> float | None:
        """When the next scheduled event becomes due (None: nothing until the next input)."""
        dues = [due for run in self._runs if (due := run.next_due()) is not None]
        if self._ready:
            dues.append(self._now)
        return min(dues) if dues else None

    # -- plumbing -------------------------------------------------------------------------------

    def _emit(self, ev: dict[str, Any], due: float | None = None) -> None:
        if due is None:
            self._flush(self._now, STEPS_PER_POLL)
        self._ready.append(Outgoing(orjson.dumps(ev).decode(), self._now if due is None else due))

    def _flush(self, now: float, limit: int | None = None) -> None:
        """Run the response steps due by ``now`` (all, or at most ``limit``), in time order
        across responses."""
        while limit is None or limit > 0:
            if limit is not None:
                limit -= 1
            candidates = [
                (due, i)
                for i, run in enumerate(self._runs)
                if (due := run.next_due()) is not None and due <= now
            ]
            if not candidates:
                break
            _, index = min(candidates)
            result = self._runs[index].pop_due(now)
            if result is not None:
                due, events = result
                for ev in events:
                    self._ready.append(Outgoing(orjson.dumps(ev).decode(), due))
        self._runs = [run for run in self._runs if not run.finished]
        self._start_queued_response()

    def _start_queued_response(self) -> None:
        """Start the response a VAD turn asked for, once no other one is running."""
        if self._response_queued and self._active_default_run() is None:
            self._response_queued = False
            self._start_response({})

    def _input_format(self) -> AudioFormat:
        return format_from_json(self.session["audio"]["input"]["format"])

    def _output_format(self) -> AudioFormat:
        return format_from_json(self.session["audio"]["output"]["format"])

    def _turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.session["audio"]["input"]["turn_detection"]
        return td

    def _configure_vad(self) -> None:
        td = self._turn_detection()
        if td is None:
            self._vad = None
            self._speech_item_id = None
            return
        params = VadParams.from_turn_detection(td)
        if self._vad is None:
            self._vad = EnergyVad(params)
            self._vad.reset(self.buffer.total_ms)
        else:
            self._vad.params = params

    # -- dispatch -------------------------------------------------------------------------------

    def _dispatch(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if "type" not in ev:
            raise ApiError(
                "missing_required_parameter", "Missing required parameter: 'type'.", "type"
            )
        if not isinstance(kind, str) or kind not in CLIENT_EVENT_KEYS:
            raise invalid_value("type", kind, list(CLIENT_EVENT_KEYS))
        checks.only_keys(ev, ("type", "event_id", *CLIENT_EVENT_KEYS[kind]), "")
        handler = getattr(self, "_on_" + kind.replace(".", "_"))
        handler(ev)

    def _on_session_update(self, ev: dict[str, Any]) -> None:
        apply = (
            session_config.apply_transcription_update
            if self.transcription
            else session_config.apply_session_update
        )
        merged = apply(self.session, checks.required(ev, "session", ""))
        self.session = merged
        self.buffer.reformat(self._input_format())
        self._configure_vad()
        self._emit(event("session.updated", session=copy.deepcopy(self.session)))

    def _on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        encoded = checks.string(checks.required(ev, "audio", ""), "audio")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                "invalid_value", "Invalid 'audio': the audio must be base64-encoded.", "audio"
            ) from None
        if self.buffer.size + len(raw) > MAX_INPUT_BUFFER_BYTES:
            raise ApiError(
                "input_audio_buffer_full",
                "The input audio buffer is full: commit or clear it before appending more.",
                "audio",
            )
        added = self.buffer.append(raw)
        if self._vad is None or not added:
            return
        fmt = self.buffer.fmt
        for vad_event in self._vad.process(decode(fmt, added), fmt.rate):
            self._on_vad(vad_event)

    def _on_vad(self, vad_event: VadEvent) -> None:
        td = self._turn_detection()
        assert td is not None
        if vad_event.kind == "start":
            prefix = self._vad.params.prefix_padding_ms if self._vad else 0
            audio_start = max(self.buffer.start_ms, vad_event.ms - prefix)
            self.buffer.drop_before(audio_start)
            self._speech_item_id = new_id("item")
            self._emit(
                event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=round(audio_start),
                    item_id=self._speech_item_id,
                )
            )
            active = self._active_default_run()
            if td.get("interrupt_response", True) and active is not None:
                self._cancel(active, "turn_detected")
            return
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        self._emit(
            event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=round(vad_event.ms),
                item_id=item_id,
            )
        )
        self._commit_user_audio(item_id, self.buffer.take_until(vad_event.ms))
        if td.get("create_response", True) and not self.transcription:
            # A response still running (typed text, or not interrupted): this turn's answer
            # follows it, as the API's does.
            self._response_queued = True
            self._start_queued_response()

    def _on_input_audio_buffer_commit(self, ev: dict[str, Any]) -> None:
        duration = self.buffer.duration_ms
        if duration < MIN_COMMIT_MS:
            raise ApiError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {duration:.2f}ms of audio.",
            )
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset(self.buffer.total_ms)
        self._commit_user_audio(item_id, self.buffer.take_all())

    def _on_input_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        self.buffer.clear()
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset(self.buffer.total_ms)
        self._emit(event("input_audio_buffer.cleared"))

    def _commit_user_audio(self, item_id: str, data: bytes) -> None:
        fmt = self.buffer.fmt
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "completed",
            "role": "user",
            "content": [
                {
                    "type": "input_audio",
                    "transcript": None,
                    "audio": base64.b64encode(data).decode(),
                }
            ],
        }
        stored = StoredItem(
            item=item, audio=bytearray(data), audio_ms=fmt.duration_ms(len(data)), fmt=fmt
        )
        previous = self.conversation.add(stored)
        self._emit(
            event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        )
        if not self.transcription:  # a transcription session reports transcripts only
            self._emit(
                event("conversation.item.added", previous_item_id=previous, item=public_item(item))
            )
            self._emit(
                event("conversation.item.done", previous_item_id=previous, item=public_item(item))
            )
        self._transcribe(stored)

    def _transcribe(self, stored: StoredItem) -> None:
        config = self.session["audio"]["input"]["transcription"]
        if config is None or stored.fmt is None:
            return
        samples = decode(stored.fmt, bytes(stored.audio))
        transcript = placeholder_transcript(samples, stored.fmt.rate)
        item_id = stored.item["id"]
        for delta in split_deltas(transcript):
            self._emit(
                event(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item_id,
                    content_index=0,
                    delta=delta,
                )
            )
        stored.item["content"][0]["transcript"] = transcript
        self._emit(
            event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=transcript,
                usage=usage.transcription_usage(
                    str(config.get("model", "")), stored.audio_ms, transcript
                ),
            )
        )

    def _on_conversation_item_create(self, ev: dict[str, Any]) -> None:
        item = validate_item(checks.required(ev, "item", ""))
        previous_id = ev.get("previous_item_id")
        if previous_id is not None:
            checks.string(previous_id, "previous_item_id")
        stored = StoredItem(item=item)
        for part in item.get("content", []):
            if part.get("type") == "input_audio" and part.get("audio"):
                fmt = self._input_format()
                try:
                    raw = base64.b64decode(part["audio"], validate=True)
                except (binascii.Error, ValueError):
                    raise ApiError(
                        "invalid_value",
                        "Invalid 'audio': the audio must be base64-encoded.",
                        "item.content.audio",
                    ) from None
                stored.audio += raw
                stored.audio_ms += fmt.duration_ms(len(raw))
                stored.fmt = fmt
        size = len(stored.audio) + len(orjson.dumps(item))
        if self._conversation_bytes + size > MAX_CONVERSATION_BYTES:
            raise ApiError(
                "conversation_too_large",
                "The conversation holds as much as this server keeps: delete items first.",
                "item",
            )
        self._conversation_bytes += size
        previous = self.conversation.add(stored, previous_id)
        self._emit(
            event("conversation.item.added", previous_item_id=previous, item=public_item(item))
        )
        self._emit(
            event("conversation.item.done", previous_item_id=previous, item=public_item(item))
        )

    def _on_conversation_item_retrieve(self, ev: dict[str, Any]) -> None:
        item_id = checks.string(checks.required(ev, "item_id", ""), "item_id")
        stored = self.conversation.get(item_id)
        item = copy.deepcopy(stored.item)
        if item.get("role") == "assistant" and stored.audio:
            for part in item["content"]:
                if part.get("type") == "output_audio":
                    part["audio"] = base64.b64encode(bytes(stored.audio)).decode()
        self._emit(event("conversation.item.retrieved", item=item))

    def _on_conversation_item_delete(self, ev: dict[str, Any]) -> None:
        item_id = checks.string(checks.required(ev, "item_id", ""), "item_id")
        stored = self.conversation.get(item_id)  # item_not_found when it is not there
        self.conversation.delete(item_id)
        size = len(stored.audio) + len(orjson.dumps(stored.item))
        self._conversation_bytes = max(0, self._conversation_bytes - size)
        self._emit(event("conversation.item.deleted", item_id=item_id))

    def _on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        item_id = checks.string(checks.required(ev, "item_id", ""), "item_id")
        index = checks.integer(checks.required(ev, "content_index", ""), "content_index", minimum=0)
        end_ms = checks.integer(checks.required(ev, "audio_end_ms", ""), "audio_end_ms", minimum=0)
        stored = self.conversation.get(item_id)
        content = stored.item.get("content") or []
        if (
            stored.item.get("role") != "assistant"
            or index >= len(content)
            or content[index].get("type") != "output_audio"
            or stored.fmt is None
        ):
            raise ApiError(
                "invalid_value", "Only model output audio messages can be truncated", "item_id"
            )
        if end_ms > stored.audio_ms + 0.5:
            raise ApiError(
                "invalid_value",
                f"Audio content of {int(stored.audio_ms)}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        kept = offset_for_ms(stored.fmt, end_ms)
        fraction = end_ms / stored.audio_ms if stored.audio_ms else 0.0
        del stored.audio[kept:]
        stored.audio_ms = min(stored.audio_ms, float(end_ms))
        transcript = str(content[index].get("transcript") or "")
        cut = transcript[: int(len(transcript) * fraction)]
        content[index]["transcript"] = cut[: cut.rfind(" ")] if " " in cut and fraction < 1 else cut
        self._emit(
            event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=index,
                audio_end_ms=end_ms,
            )
        )

    def _on_response_create(self, ev: dict[str, Any]) -> None:
        if self.transcription:
            raise ApiError(
                "invalid_request_error",
                "Responses cannot be created in a transcription session.",
                "type",
            )
        overrides = session_config.response_overrides(ev.get("response"))
        if overrides.get("conversation", "auto") == "auto":
            active = self._active_default_run()
            if active is not None:
                raise ApiError(
                    "conversation_already_has_active_response",
                    f"Conversation already has an active response in progress: {active.id}. "
                    "Wait until the response is finished before creating a new one.",
                )
        self._start_response(overrides)

    def _on_response_cancel(self, ev: dict[str, Any]) -> None:
        response_id = ev.get("response_id")
        if response_id is not None:
            checks.string(response_id, "response_id")
            run = next((r for r in self._runs if r.id == response_id), None)
        else:
            run = self._active_default_run() or (self._runs[-1] if self._runs else None)
        if run is None:
            raise ApiError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        self._cancel(run, "client_cancelled")

    def _on_output_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        raise ApiError(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            "type",
        )

    # -- responses ------------------------------------------------------------------------------

    def _active_default_run(self) -> ResponseRun | None:
        return next(
            (r for r in self._runs if r.spec.conversation == "auto" and not r.finished), None
        )

    def _cancel(self, run: ResponseRun, reason: str) -> None:
        self._flush(self._now)
        for ev in run.cancel(reason):
            self._ready.append(Outgoing(orjson.dumps(ev).decode(), self._now))
        self._runs = [r for r in self._runs if not r.finished]
        self._start_queued_response()

    def _context(self, overrides: dict[str, Any]) -> list[StoredItem]:
        if "input" not in overrides:
            return self.conversation.items
        context = []
        for index, raw in enumerate(overrides["input"]):
            param = f"response.input[{index}]"
            if isinstance(raw, dict) and raw.get("type") == "item_reference":
                context.append(
                    self.conversation.get(
                        checks.string(raw.get("id"), f"{param}.id"), f"{param}.id"
                    )
                )
            else:
                context.append(StoredItem(item=validate_item(raw, param)))
        return context

    def _start_response(self, overrides: dict[str, Any]) -> None:
        session = self.session
        out = session["audio"]["output"]
        audio_override = overrides.get("audio", {}).get("output", {})
        fmt = format_from_json(audio_override.get("format", out["format"]))
        voice = audio_override.get("voice", out["voice"])
        voice_name = voice["id"] if isinstance(voice, dict) else str(voice)
        instructions = overrides.get("instructions", session["instructions"])
        context = self._context(overrides)
        conversation = overrides.get("conversation", "auto")
        spec = ResponseSpec(
            conversation=conversation,
            conversation_id=self.conversation_id if conversation == "auto" else None,
            modalities=overrides.get("output_modalities", session["output_modalities"]),
            fmt=fmt,
            voice=voice_name,
            speed=float(out.get("speed", 1.0)),
            metadata=overrides.get("metadata"),
            max_output_tokens=overrides.get("max_output_tokens", session["max_output_tokens"]),
            input_text=" ".join([instructions, *(_item_words(s.item) for s in context)]),
            input_audio_ms=sum(s.audio_ms for s in context),
        )
        reply = respond(
            [_responder_view(s) for s in context],
            instructions=instructions,
            tools=overrides.get("tools", session["tools"]),
            tool_choice=overrides.get("tool_choice", session["tool_choice"]),
        )
        run = ResponseRun(
            spec,
            reply,
            start=self._now,
            pace=self.pace,
            conversation=self.conversation if conversation == "auto" else None,
            on_done=self._rate_limits,
        )
        self._runs.append(run)
        self._flush(self._now, STEPS_PER_POLL)  # its first events now, the rest as polled

    def _rate_limits(self, used: dict[str, Any]) -> list[dict[str, Any]]:
        self.tokens_used += int(used["total_tokens"])
        return [event("rate_limits.updated", rate_limits=usage.rate_limits(self.tokens_used))]


def _item_words(item: dict[str, Any]) -> str:
    if item.get("type") == "message":
        return message_text(item)
    return str(item.get("output") or item.get("arguments") or "")


def _responder_view(stored: StoredItem) -> dict[str, Any]:
    """The item as the responder sees it, with the length of any audio it carries."""
    return {**stored.item, "_audio_ms": stored.audio_ms}
