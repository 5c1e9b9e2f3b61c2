"""The OpenAI Agents SDK's RealtimeAgent + RealtimeRunner, unchanged, against a bridge.

Typed, tool (the SDK runs it and asks for the follow-up) and speech turns, the SDK's own defaults
throughout. Run by ``compat/run.py`` in this framework's own virtual environment:

    check.py BASE_URL API_KEY WAV          every turn must hold, with no error event
    check.py BASE_URL API_KEY --refused    the bridge must refuse the key (no session starts)
"""

from __future__ import annotations

import asyncio
import sys
import wave
from collections.abc import Callable
from typing import Any, TypeVar

from agents import function_tool
from agents.realtime import (
    RealtimeAgent,
    RealtimeModelConfig,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
)
from websockets.exceptions import InvalidStatus

TURN_TIMEOUT_S = 30.0
OVERALL_TIMEOUT_S = 240.0
CHUNK_MS = 20
SILENCE_S = 1.0
T = TypeVar("T")

ran: list[str] = []  # the cities get_weather was run for: proof the SDK ran the tool itself


@function_tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    ran.append(city)
    return f"sunny in {city}"


AGENT = RealtimeAgent(
    name="assistant", instructions="You are a helpful voice assistant.", tools=[get_weather]
)


def model_config(base_url: str, api_key: str) -> RealtimeModelConfig:
    """The SDK's documented way to another endpoint: its ``url`` (the model in the query, as the
    SDK's own default URL has it) and ``api_key``; everything else stays the SDK's default."""
    ws_base = "ws" + base_url.removeprefix("http") if base_url.startswith("http") else base_url
    return {"url": f"{ws_base.rstrip('/')}/realtime?model=gpt-realtime", "api_key": api_key}


class Recorder:
    """Reads the session's events in the background, so that a turn can wait for what it expects
    and every error event is kept, whichever turn it arrives in."""

    def __init__(self, session: RealtimeSession) -> None:
        self.session = session
        self.events: list[RealtimeSessionEvent] = []
        self.errors: list[Any] = []
        self.ended = False
        self._changed = asyncio.Event()

    async def read(self) -> None:
        try:
            async for event in self.session:
                self.events.append(event)
                if event.type == "error":
                    self.errors.append(event.error)
                elif (server := raw_server_event(event)) and server.get("type") == "error":
                    self.errors.append(server)
                self._changed.set()
        except Exception as exc:  # the SDK re-raises a transport failure from its event stream
            self.errors.append(exc)
        finally:
            self.ended = True
            self._changed.set()

    async def until(self, what: str, found: Callable[[], T | None]) -> T:
        """``found()`` once it is not None; a turn that does not complete in time fails."""

        async def wait() -> T:
            while (result := found()) is None:
                if self.ended:
                    raise AssertionError(f"{what}: the session ended first: {self.errors}")
                self._changed.clear()
                await self._changed.wait()
            return result

        try:
            return await asyncio.wait_for(wait(), TURN_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"{what}: nothing within {TURN_TIMEOUT_S:.0f} s") from None

    def replies(self, since: int) -> list[str]:
        """What each response that ended after event ``since`` said (transcript or text). A
        response that called a tool is not a reply: its end can reach the SDK's event stream
        after the tool's own end (the SDK runs the tool as the call's item is done)."""
        said: dict[str, str] = {}
        ended: list[str] = []
        calls = self.tool_call_responses()
        for event in self.events[since:]:
            if event.type != "raw_model_event":
                continue
            data = event.data
            if data.type in ("transcript_delta", "output_text_delta"):
                said[data.response_id] = said.get(data.response_id, "") + data.delta
            elif data.type == "turn_ended" and (data.response_id or "") not in calls:
                ended.append(said.get(data.response_id or "", ""))
        return ended

    def tool_call_responses(self) -> set[str]:
        """The ids of the responses that output a function call, from the server's events."""
        found = (raw_server_event(event) for event in self.events)
        return {
            str(event.get("response_id"))
            for event in found
            if event
            and event.get("type") == "response.output_item.added"
            and (event.get("item") or {}).get("type") == "function_call"
        }

    def server_events(self, since: int, kind: str) -> list[dict[str, Any]]:
        found = (raw_server_event(event) for event in self.events[since:])
        return [event for event in found if event and event.get("type") == kind]


def raw_server_event(event: RealtimeSessionEvent) -> dict[str, Any] | None:
    """The server's JSON as received, when ``event`` forwards one."""
    if event.type == "raw_model_event" and event.data.type == "raw_server_event":
        data = event.data.data
        return data if isinstance(data, dict) else None
    return None


async def typed_turn(session: RealtimeSession, recorder: Recorder) -> None:
    mark = len(recorder.events)
    await session.send_message("hello there")
    text = await recorder.until("typed turn", lambda: next(iter(recorder.replies(mark)), None))
    print("typed turn:", repr(text))
    assert "hello there" in text, "typed turn: the reply does not answer the message"


async def tool_turn(session: RealtimeSession, recorder: Recorder) -> None:
    """The model calls get_weather; the SDK runs it, sends its output and asks for a reply."""

    def tool_end_then_reply() -> tuple[Any, str] | None:
        for at in range(mark, len(recorder.events)):
            event = recorder.events[at]
            if event.type == "tool_end":
                replies = recorder.replies(at + 1)
                return (event, replies[0]) if replies else None
        return None

    mark = len(recorder.events)
    await session.send_message("what is the weather in Paris")
    tool_end, text = await recorder.until("tool turn", tool_end_then_reply)
    print("tool turn:", tool_end.tool.name, tool_end.arguments, "->", repr(tool_end.output))
    print("follow-up reply:", repr(text))
    assert ran == ["Paris"], f"tool turn: get_weather ran for {ran}, not once for Paris"
    assert tool_end.output == "sunny in Paris", "tool turn: the tool's output was lost"
    assert "sunny in Paris" in text, "follow-up: the reply does not state the tool's output"


async def speech_turn(session: RealtimeSession, recorder: Recorder, wav: str) -> None:
    """A real recording in small chunks, then a second of silence: the VAD ends the turn.

    The SDK's default turn detection (semantic_vad) is left unchanged.
    """

    def transcript_and_reply() -> tuple[list[str], str] | None:
        transcripts = [
            event.data.transcript
            for event in recorder.events[mark:]
            if event.type == "raw_model_event"
            and event.data.type == "input_audio_transcription_completed"
        ]
        replies = recorder.replies(mark)
        return (transcripts, replies[0]) if transcripts and replies else None

    with wave.open(wav) as recording:
        rate = recording.getframerate()
        pcm = recording.readframes(recording.getnframes())
    pcm += bytes(int(rate * SILENCE_S) * 2)
    step = rate * CHUNK_MS // 1000 * 2
    mark = len(recorder.events)
    for at in range(0, len(pcm), step):
        await session.send_audio(pcm[at : at + step])
    transcripts, text = await recorder.until("speech turn", transcript_and_reply)
    stopped = recorder.server_events(mark, "input_audio_buffer.speech_stopped")
    print("speech turn:", repr(text), "transcripts:", transcripts)
    assert stopped, "speech turn: the VAD did not end the turn"
    assert text, "speech turn: no reply"
    assert any(transcripts), "speech turn: no input transcript"


async def turns(base_url: str, api_key: str, wav: str) -> int:
    runner = RealtimeRunner(AGENT)
    session = await runner.run(model_config=model_config(base_url, api_key))
    async with session:
        recorder = Recorder(session)
        reading = asyncio.create_task(recorder.read())
        try:
            updated = await recorder.until(
                "session.updated",
                lambda: next(iter(recorder.server_events(0, "session.updated")), None),
            )
            detection = updated["session"]["audio"]["input"]["turn_detection"]
            print("turn detection:", detection)
            assert detection["type"] == "semantic_vad", "the SDK's default VAD was not kept"
            await typed_turn(session, recorder)
            await tool_turn(session, recorder)
            await speech_turn(session, recorder, wav)
        finally:
            await session.close()
            await asyncio.wait_for(reading, TURN_TIMEOUT_S)
    print("error events:", recorder.errors)
    return 1 if recorder.errors else 0


async def refused(base_url: str, api_key: str) -> int:
    """A wrong key: the session must not start, and the failure must be the bridge's 401."""
    runner = RealtimeRunner(AGENT)
    session = await runner.run(model_config=model_config(base_url, api_key))
    outcome: BaseException | str
    try:
        async with session:
            outcome = "the session started"
    except Exception as exc:  # any failure is the expected outcome
        outcome = exc
    said_401 = isinstance(outcome, InvalidStatus) and outcome.response.status_code == 401
    print("outcome:", repr(outcome), "; 401 reported:", said_401)
    return 0 if said_401 else 1


if __name__ == "__main__":
    url, key, what = sys.argv[1:4]
    check = refused(url, key) if what == "--refused" else turns(url, key, what)
    sys.exit(asyncio.run(asyncio.wait_for(check, OVERALL_TIMEOUT_S)))
