"""Pipecat's OpenAIRealtimeLLMService (GA), unchanged, in a real pipeline against a bridge.

Run by ``compat/run.py`` in this framework's own virtual environment:

    check.py BASE_URL API_KEY WAV          every turn must hold, with no error event
    check.py BASE_URL API_KEY --refused    the bridge must refuse the key (no turn starts)

The pipeline is a pipecat voice bot's (user aggregator, service, assistant aggregator) without a
transport: frames queued on the worker stand in for the input transport, and an observer reads
what the service emits, as the output transport would.
"""

from __future__ import annotations

import asyncio
import sys
import wave
from dataclasses import dataclass

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.realtime.events import (
    AudioConfiguration,
    AudioInput,
    InputAudioTranscription,
    SessionProperties,
)
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.workers.runner import WorkerRunner

TURN_TIMEOUT_S = 30.0
RATE = 24000
CHUNK_S = 0.02  # a transport's usual input frame
CHUNK_BYTES = int(RATE * CHUNK_S) * 2  # PCM16 mono

WEATHER = FunctionSchema(
    name="get_weather",
    description="Weather for a city.",
    properties={"city": {"type": "string", "description": "The city."}},
    required=["city"],
)


@dataclass
class Reply:
    """One response, from its start to ``response.done`` (pipecat's LLMFullResponseEndFrame)."""

    text: str = ""
    audio_bytes: int = 0


class Recorder(BaseObserver):
    """What the service emits, read where it is first pushed: replies, user transcripts, and
    every error frame in the pipeline (the service reports server ``error`` events as those)."""

    def __init__(self, service: OpenAIRealtimeLLMService) -> None:
        super().__init__(observe_every_push=False)
        self._service = service
        self._reply = Reply()
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.transcripts: asyncio.Queue[str] = asyncio.Queue()
        self.errors: list[str] = []
        self.first_error = asyncio.Event()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if isinstance(frame, ErrorFrame):
            self.errors.append(frame.error)
            self.first_error.set()
        if data.source is not self._service:
            return
        if isinstance(frame, LLMTextFrame):
            self._reply.text += frame.text
        elif isinstance(frame, TTSAudioRawFrame):
            self._reply.audio_bytes += len(frame.audio)
        elif isinstance(frame, TranscriptionFrame):
            self.transcripts.put_nowait(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.replies.put_nowait(self._reply)
            self._reply = Reply()


class Weather:
    """The ``get_weather`` handler; it remembers the cities it was asked about."""

    def __init__(self) -> None:
        self.cities: list[str] = []

    async def __call__(self, params: FunctionCallParams) -> None:
        city = str(params.arguments.get("city"))
        self.cities.append(city)
        await params.result_callback(f"sunny in {city}")


class Bot:
    """A running pipeline around the service under test."""

    def __init__(self, base_url: str, api_key: str) -> None:
        # pipecat appends ``?model=...`` to base_url itself: it wants the realtime endpoint.
        url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self.service = OpenAIRealtimeLLMService(
            api_key=api_key,
            base_url=f"{url.rstrip('/')}/realtime",
            settings=OpenAIRealtimeLLMService.Settings(
                session_properties=SessionProperties(
                    audio=AudioConfiguration(
                        input=AudioInput(transcription=InputAudioTranscription())
                    )
                )
            ),
        )
        self.weather = Weather()
        self.service.register_function("get_weather", self.weather)
        context = LLMContext(tools=ToolsSchema(standard_tools=[WEATHER]))
        user, assistant = LLMContextAggregatorPair(context)
        self.recorder = Recorder(self.service)
        self.worker = PipelineWorker(
            Pipeline([user, self.service, assistant]),
            params=PipelineParams(audio_in_sample_rate=RATE),
            observers=[self.recorder],
            idle_timeout_secs=None,
            enable_rtvi=False,
        )
        self._runner = WorkerRunner(handle_sigint=False)
        self._running: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._runner.add_workers(self.worker)
        self._running = asyncio.create_task(self._runner.run())

    async def stop(self, graceful: bool) -> None:
        """An EndFrame closes the service's socket the way a bot's hang-up does."""
        if graceful:
            await self.worker.queue_frame(EndFrame())
        else:
            await self.worker.cancel()
        if self._running is not None:
            await asyncio.wait_for(self._running, TURN_TIMEOUT_S)

    async def reply(self, wanted: str) -> Reply:
        """The next reply with something in it (a tool call's response has neither text nor
        audio), waited for up to a turn's timeout."""
        while True:
            reply = await asyncio.wait_for(self.recorder.replies.get(), TURN_TIMEOUT_S)
            if reply.text or reply.audio_bytes:
                return reply
            print(f"{wanted}: a reply with no text or audio (a tool call's), waiting on")


async def tool_turn(bot: Bot) -> None:
    user: LLMContextMessage = {"role": "user", "content": "what is the weather in Paris"}
    await bot.worker.queue_frame(LLMMessagesAppendFrame(messages=[user], run_llm=True))
    reply = await bot.reply("tool turn")
    print("tool turn: handler ran with", bot.weather.cities, "; reply:", repr(reply.text))
    assert bot.weather.cities == ["Paris"], "tool turn: get_weather did not run once with Paris"
    assert "sunny in Paris" in reply.text, "tool turn: the reply does not state the tool output"


async def speech_turn(bot: Bot, wav: str) -> None:
    """A real recording in 20 ms frames, then a second of silence: the server VAD replies.

    The frames go in at the pace a transport delivers them: pipecat turns the server's
    ``speech_started`` into an interruption of whatever reply is current, so audio far ahead of
    real time would let that interruption land on the very reply the speech asked for.
    """
    with wave.open(wav) as recording:
        assert recording.getframerate() == RATE, "speech turn: the recording is not 24 kHz"
        assert recording.getnchannels() == 1, "speech turn: the recording is not mono"
        pcm = recording.readframes(recording.getnframes())
    pcm += bytes(RATE * 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n, at in enumerate(range(0, len(pcm), CHUNK_BYTES)):
        chunk = pcm[at : at + CHUNK_BYTES]
        await bot.worker.queue_frame(
            InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1)
        )
        await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_S - loop.time()))  # real time
    transcript = await asyncio.wait_for(bot.recorder.transcripts.get(), TURN_TIMEOUT_S)
    reply = await bot.reply("speech turn")
    print(
        "speech turn: transcript",
        repr(transcript),
        "; reply:",
        repr(reply.text),
        f"with {reply.audio_bytes} bytes of audio",
    )
    assert transcript, "speech turn: an empty input transcript"
    assert reply.text, "speech turn: the reply has no transcript"
    assert reply.audio_bytes, "speech turn: the reply has no audio"


async def turns(base_url: str, api_key: str, wav: str) -> int:
    bot = Bot(base_url, api_key)
    await bot.start()
    try:
        await tool_turn(bot)
        await speech_turn(bot, wav)
    finally:
        await bot.stop(graceful=True)
    print("error events:", bot.recorder.errors)
    return 1 if bot.recorder.errors else 0


async def refused(base_url: str, api_key: str) -> int:
    """A wrong key: the service's connection must fail, and the failure must be the bridge's 401."""
    bot = Bot(base_url, api_key)
    await bot.start()
    try:
        await asyncio.wait_for(bot.recorder.first_error.wait(), TURN_TIMEOUT_S)
    finally:
        await bot.stop(graceful=False)
    errors = bot.recorder.errors
    said_401 = any("Error connecting" in error and "401" in error for error in errors)
    print("errors:", errors, "; connection refused with 401:", said_401)
    return 0 if said_401 and bot.recorder.replies.empty() else 1


if __name__ == "__main__":
    logger.remove()  # pipecat logs every frame hop at DEBUG; its warnings and errors stay
    logger.add(sys.stderr, level="WARNING")
    url, key, what = sys.argv[1:4]
    check = refused(url, key) if what == "--refused" else turns(url, key, what)
    sys.exit(asyncio.run(asyncio.wait_for(check, 240)))
