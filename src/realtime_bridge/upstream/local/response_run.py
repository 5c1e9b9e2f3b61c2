"""One response as a timed plan of server events, executed step by step as time passes.

Nothing is emitted before it is due: text and argument deltas are spaced ``TEXT_DELTA_S / pace``
apart and audio goes out in ``CHUNK_MS`` chunks, one per chunk duration divided by ``pace``
(``pace`` 0 = everything at once). Cancelling therefore acts on what was really sent: the closing
events carry the text, transcript and audio emitted so far, and the item's audio length (what
``conversation.item.truncate`` is checked against) is the audio actually delivered.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.audio.formats import AudioFormat

from . import synth, usage
from .audio_io import encode, offset_for_ms
from .conversation import Conversation, StoredItem
from .events import event
from .ids import new_id
from .responder import Reply, ToolCall

CHUNK_MS = 100
TEXT_DELTA_S = 0.02
ARGUMENT_DELTA_CHARS = 24

Events = list[dict[str, Any]]


@dataclass(slots=True)
class ResponseSpec:
    """Everything a response needs, resolved from session defaults and per-response overrides."""

    conversation: str  # "auto" or "none"
    conversation_id: str | None
    modalities: list[str]
    fmt: AudioFormat
    voice: str
    speed: float
    metadata: dict[str, str] | None
    max_output_tokens: int | str
    input_text: str
    input_audio_ms: float
    response_id: str = field(default_factory=lambda: new_id("resp"))


@dataclass(slots=True)
class _Step:
    due: float
    run: Callable[[], Events]


class ResponseRun:
    """The events of one response, due at their times; ``cancel`` closes what is open."""

    def __init__(
        self,
        spec: ResponseSpec,
        reply: Reply,
        *,
        start: float,
        pace: float,
        conversation: Conversation | None,
        on_done: Callable[[dict[str, Any]], Events],
    ) -> None:
        self.spec = spec
        self.id = spec.response_id
        self._conversation = conversation
        self._on_done = on_done
        self._pace = pace
        self.finished = False
        self._status_details: dict[str, Any] | None = None
        self._incomplete = False
        self._audio = "audio" in spec.modalities
        self._item: dict[str, Any] = {"id": new_id("item"), "object": "realtime.item"}
        self._stored: StoredItem | None = None
        self._sent_text = ""
        self._sent_args = ""
        self._sent_audio = bytearray()
        self._steps: deque[_Step] = deque()
        if isinstance(reply, ToolCall):
            self._plan_tool(reply, start)
        else:
            self._plan_message(self._fit(reply.text), start)

    # -- planning -----------------------------------------------------------------------------

    def _at(self, start: float, seconds: float) -> float:
        return start + seconds / self._pace if self._pace > 0 else start

    def _fit(self, text: str) -> str:
        """Cut the reply to ``max_output_tokens`` (then the response is ``incomplete``)."""
        limit = self.spec.max_output_tokens
        if not isinstance(limit, int):
            return text
        words = text.split(" ")
        while len(words) > 1 and self._output_tokens(" ".join(words)) > limit:
            words.pop()
            self._incomplete = True
        return " ".join(words)

    def _output_tokens(self, text: str) -> int:
        tokens = usage.text_tokens(text)
        if self._audio:
            tokens += usage.output_audio_tokens(synth.duration_ms(text, self.spec.speed))
        return tokens

    def _plan_message(self, text: str, start: float) -> None:
        self._text = text
        self._item.update(type="message", status="in_progress", role="assistant", content=[])
        self._steps.append(_Step(start, self._begin))
        if self._audio:
            # Synthesised a chunk at a time as each falls due, never the whole reply at once:
            # the event loop is never held for more than a syllable or two.
            stream = synth.SynthStream(
                text, self.spec.fmt.rate, voice=self.spec.voice, speed=self.spec.speed
            )
            chunk = offset_for_ms(self.spec.fmt, CHUNK_MS) // self.spec.fmt.bytes_per_sample
            count = max(1, -(-stream.total // chunk))
            words = re.findall(r"\S+\s*", text)
            for index in range(count):
                # the transcript runs slightly ahead of the audio, as the API's does
                upto = min(len(words), -(-(index + 1) * len(words) // count) + 1)
                self._steps.append(
                    _Step(
                        self._at(start, index * CHUNK_MS / 1000),
                        self._audio_step(stream, chunk, words, upto),
                    )
                )
        else:
            for index, delta in enumerate(re.findall(r"\S+\s*", text) or [""]):
                self._steps.append(
                    _Step(self._at(start, index * TEXT_DELTA_S), self._text_step(delta))
                )
        self._steps.append(_Step(self._steps[-1].due, self._finish))

    def _plan_tool(self, call: ToolCall, start: float) -> None:
        self._item.update(
            type="function_call",
            status="in_progress",
            name=call.name,
            call_id=new_id("call"),
            arguments="",
        )
        self._text = ""
        self._steps.append(_Step(start, self._begin))
        pieces = [
            call.arguments[i : i + ARGUMENT_DELTA_CHARS]
            for i in range(0, len(call.arguments), ARGUMENT_DELTA_CHARS)
        ]
        for index, piece in enumerate(pieces):
            self._steps.append(
                _Step(self._at(start, index * TEXT_DELTA_S), self._argument_step(piece))
            )
        self._steps.append(_Step(self._steps[-1].due, self._finish))

    # -- execution ----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        return self._steps[0].due if self._steps and not self.finished else None

    def pop_due(self, now: float) -> tuple[float, Events] | None:
        """The next step's due time and events if it is due at ``now``."""
        if self.finished or not self._steps or self._steps[0].due > now:
            return None
        step = self._steps.popleft()
        return step.due, step.run()

    def cancel(self, reason: str) -> Events:
        """Close the open parts with what was sent and end with status ``cancelled``."""
        if self.finished:
            return []
        self._steps.clear()
        self._status_details = {"type": "cancelled", "reason": reason}
        return self._finish()

    def _ids(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self._item["id"], "output_index": 0}

    def _part_ids(self) -> dict[str, Any]:
        return {**self._ids(), "content_index": 0}

    def _response(
        self, status: str, output: list[dict[str, Any]], used: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": self._status_details if status != "in_progress" else None,
            "output": output,
            "conversation_id": self.spec.conversation_id,
            "output_modalities": list(self.spec.modalities),
            "max_output_tokens": self.spec.max_output_tokens,
            "audio": {"output": {"format": self.spec.fmt.to_ga(), "voice": self.spec.voice}},
            "usage": used,
            "metadata": self.spec.metadata,
        }

    def _begin(self) -> Events:
        events = [
            event("response.created", response=self._response("in_progress", [], None)),
            event(
                "response.output_item.added",
                response_id=self.id,
                output_index=0,
                item=dict(self._item),
            ),
        ]
        if self._conversation is not None:
            self._stored = StoredItem(
                item=dict(self._item), fmt=self.spec.fmt if self._audio else None
            )
            previous = self._conversation.add(self._stored)
            events.append(
                event("conversation.item.added", previous_item_id=previous, item=dict(self._item))
            )
        if self._item["type"] == "message":
            part = (
                {"type": "audio", "transcript": ""} if self._audio else {"type": "text", "text": ""}
            )
            events.append(event("response.content_part.added", **self._part_ids(), part=part))
        return events

    def _text_step(self, delta: str) -> Callable[[], Events]:
        def run() -> Events:
            self._sent_text += delta
            self._sync_stored()
            return [event("response.output_text.delta", **self._part_ids(), delta=delta)]

        return run

    def _audio_step(
        self, stream: synth.SynthStream, samples: int, words: list[str], upto: int
    ) -> Callable[[], Events]:
        def run() -> Events:
            data = encode(self.spec.fmt, stream.take(samples))
            events = []
            transcript = "".join(words[:upto])
            if len(transcript) > len(self._sent_text):
                delta = transcript[len(self._sent_text) :]
                self._sent_text = transcript
                events.append(
                    event("response.output_audio_transcript.delta", **self._part_ids(), delta=delta)
                )
            self._sent_audio += data
            self._sync_stored()
            encoded = base64.b64encode(data).decode()
            events.append(event("response.output_audio.delta", **self._part_ids(), delta=encoded))
            return events

        return run

    def _argument_step(self, piece: str) -> Callable[[], Events]:
        def run() -> Events:
            self._sent_args += piece
            self._item["arguments"] = self._sent_args
            self._sync_stored()
            return [
                event(
                    "response.function_call_arguments.delta",
                    **self._ids(),
                    call_id=self._item["call_id"],
                    delta=piece,
                )
            ]

        return run

    def _content(self) -> list[dict[str, Any]]:
        if self._item["type"] != "message":
            return []
        if self._audio:
            return [{"type": "output_audio", "transcript": self._sent_text}]
        return [{"type": "output_text", "text": self._sent_text}]

    def _sync_stored(self) -> None:
        """Keep the conversation's copy of the item in step with what was sent."""
        if self._stored is None:
            return
        if self._item["type"] == "message":
            self._stored.item["content"] = self._content()
            if self._audio:
                self._stored.audio = bytearray(self._sent_audio)
                self._stored.audio_ms = self.spec.fmt.duration_ms(len(self._sent_audio))
        else:
            self._stored.item["arguments"] = self._sent_args

    def _finish(self) -> Events:
        self.finished = True
        cancelled = self._status_details is not None
        if not cancelled and self._incomplete:
            self._status_details = {"type": "incomplete", "reason": "max_output_tokens"}
        status = "cancelled" if cancelled else ("incomplete" if self._incomplete else "completed")
        item_status = "incomplete" if cancelled else "completed"
        events: Events = []
        if self._item["type"] == "message":
            ids = self._part_ids()
            if self._audio:
                events.append(event("response.output_audio.done", **ids))
                events.append(
                    event(
                        "response.output_audio_transcript.done", **ids, transcript=self._sent_text
                    )
                )
                part = {"type": "audio", "transcript": self._sent_text}
            else:
                events.append(event("response.output_text.done", **ids, text=self._sent_text))
                part = {"type": "text", "text": self._sent_text}
            events.append(event("response.content_part.done", **ids, part=part))
            self._item["content"] = self._content()
        else:
            if not cancelled:
                events.append(
                    event(
                        "response.function_call_arguments.done",
                        **self._ids(),
                        call_id=self._item["call_id"],
                        name=self._item["name"],
                        arguments=self._sent_args,
                    )
                )
            self._item["arguments"] = self._sent_args
        self._item["status"] = item_status
        events.append(
            event(
                "response.output_item.done",
                response_id=self.id,
                output_index=0,
                item=dict(self._item),
            )
        )
        if self._stored is not None:
            self._sync_stored()
            self._stored.item["status"] = item_status
            events.append(event("conversation.item.done", item=dict(self._stored.item)))
        output_text = self._sent_text or self._sent_args
        used = usage.response_usage(
            input_text=self.spec.input_text,
            input_audio_ms=self.spec.input_audio_ms,
            output_text=output_text,
            output_audio_ms=self.spec.fmt.duration_ms(len(self._sent_audio)),
        )
        events.append(
            event("response.done", response=self._response(status, [dict(self._item)], used))
        )
        events.extend(self._on_done(used))
        return events
