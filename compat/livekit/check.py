"""LiveKit Agents' OpenAI RealtimeModel, unchanged, against a bridge: typed, tool, speech turns.

Run by ``compat/run.py`` in this framework's own virtual environment:

    check.py BASE_URL API_KEY WAV          every turn must hold, with no error event
    check.py BASE_URL API_KEY --refused    the bridge must refuse the key (no turn starts)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import wave
from typing import Any

from livekit import rtc
from livekit.agents import llm
from livekit.plugins import openai

TURN_TIMEOUT_S = 30.0


@llm.function_tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


async def collect(gen: llm.GenerationCreatedEvent) -> tuple[str, list[llm.FunctionCall]]:
    """Reads one generation to its end: the text it said and the tools it called."""

    async def drain(stream: Any) -> None:
        async for _ in stream:
            pass

    text = ""
    async for message in gen.message_stream:
        audio = asyncio.create_task(drain(message.audio_stream))
        async for chunk in message.text_stream:
            text += str(chunk)
        await audio
    calls = [call async for call in gen.function_stream]
    return text, calls


async def reply(session: Any) -> tuple[str, list[llm.FunctionCall]]:
    """``generate_reply()`` without instructions: LiveKit sends ``instructions: null``."""
    generation = await asyncio.wait_for(session.generate_reply(), TURN_TIMEOUT_S)
    return await asyncio.wait_for(collect(generation), TURN_TIMEOUT_S)


async def typed_and_tool_turns(session: Any) -> None:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="hello there")
    await session.update_chat_ctx(ctx)
    text, _ = await reply(session)
    print("typed turn:", repr(text))
    assert "hello there" in text, "typed turn: the reply does not answer the message"

    await session.update_tools([get_weather])
    ctx = session.chat_ctx.copy()
    ctx.add_message(role="user", content="what is the weather in Paris")
    await session.update_chat_ctx(ctx)
    _, calls = await reply(session)
    print("tool turn:", [(call.name, call.arguments) for call in calls])
    assert calls, "tool turn: no tool was called"
    assert calls[0].name == "get_weather", "tool turn: the wrong tool was called"
    assert "Paris" in calls[0].arguments, "tool turn: the arguments miss the city"

    ctx = session.chat_ctx.copy()
    ctx.items.append(
        llm.FunctionCallOutput(
            call_id=calls[0].call_id, name="get_weather", output="sunny in Paris", is_error=False
        )
    )
    await session.update_chat_ctx(ctx)
    text, _ = await reply(session)
    print("follow-up reply:", repr(text))
    assert "sunny in Paris" in text, "follow-up: the reply does not state the tool's output"


async def speech_turn(session: Any, wav: str) -> None:
    """A real recording in 10 ms frames, then a second of silence: the VAD replies.

    LiveKit asks for semantic_vad by default; the check leaves that unchanged.
    """
    loop = asyncio.get_running_loop()
    created: asyncio.Future[llm.GenerationCreatedEvent] = loop.create_future()
    transcripts: list[str] = []
    session.on("generation_created", lambda ev: created.done() or created.set_result(ev))
    session.on(
        "input_audio_transcription_completed",
        lambda ev: transcripts.append(ev.transcript) if ev.is_final else None,
    )
    with wave.open(wav) as recording:
        rate = recording.getframerate()
        pcm = recording.readframes(recording.getnframes())
    pcm += bytes(rate * 2)
    step = rate // 100 * 2
    for at in range(0, len(pcm) - step + 1, step):
        session.push_audio(rtc.AudioFrame(pcm[at : at + step], rate, 1, step // 2))
        await asyncio.sleep(0)
    generation = await asyncio.wait_for(created, TURN_TIMEOUT_S)
    text, _ = await asyncio.wait_for(collect(generation), TURN_TIMEOUT_S)
    print("speech turn:", repr(text), "transcripts:", transcripts)
    assert not generation.user_initiated, "speech turn: the reply was not started by VAD"
    assert text, "speech turn: no reply"
    assert transcripts, "speech turn: no input transcript"


async def turns(base_url: str, api_key: str, wav: str) -> int:
    errors: list[Any] = []
    model = openai.realtime.RealtimeModel(base_url=base_url, api_key=api_key)
    session = model.session()
    session.on("error", errors.append)
    session.on(
        "openai_server_event_received",
        lambda ev: errors.append(ev) if ev.get("type") == "error" else None,
    )
    try:
        await typed_and_tool_turns(session)
        await speech_turn(session, wav)
    finally:
        await session.aclose()
        await model.aclose()
    print("error events:", errors)
    return 1 if errors else 0


async def refused(base_url: str, api_key: str) -> int:
    """A wrong key: the turn must fail, and the failure must be the bridge's 401."""
    errors: list[Any] = []
    model = openai.realtime.RealtimeModel(base_url=base_url, api_key=api_key)
    session = model.session()
    session.on("error", errors.append)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="hello there")
    outcome: BaseException | str
    try:
        await session.update_chat_ctx(ctx)
        outcome = (await reply(session))[0]
    except Exception as exc:  # any failure is the expected outcome
        outcome = exc
    with contextlib.suppress(Exception):  # the session's task re-raises the refusal
        await session.aclose()
    await model.aclose()
    said_401 = any("401" in str(getattr(e, "error", e)) for e in errors)
    print("outcome:", repr(outcome), "; 401 reported:", said_401)
    return 0 if isinstance(outcome, BaseException) and said_401 else 1


if __name__ == "__main__":
    url, key, what = sys.argv[1:4]
    check = refused(url, key) if what == "--refused" else turns(url, key, what)
    sys.exit(asyncio.run(asyncio.wait_for(check, 240)))
