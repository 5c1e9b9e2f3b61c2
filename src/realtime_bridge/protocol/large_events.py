"""Large client events read a bounded step at a time, so no single event holds the event loop.

orjson parses a long string at about a GB/s, strict base64 work costs more, and converting a
long clip far more: a 16 MiB event handled in one go holds every session for tens of
milliseconds. Such an event is large because of a few long strings (base64 audio, data URLs
of images). :class:`LargeEventReader` finds those strings by their quotes, checks in steps of a
MiB that they need no unescaping, parses the rest of the event (small) with placeholders in
their place and puts them back; then, for audio the session converts, it checks, decodes and
converts in steps too (:mod:`realtime_bridge.audio.steps`). The caller runs one step per turn
of the loop and holds the session's later frames until the reader is done, so nothing is
reordered.

What makes an event large must be such strings: an event over :data:`LARGE_EVENT_CHARS` whose
other content is itself over that size (thousands of values, text with escapes) is refused with
``invalid_event``, because parsing it would hold the loop (a 256 KiB list of empty objects takes
about 3 ms to parse). 256 KiB of instructions or tools is already far past a model's context.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from realtime_bridge.audio.formats import AudioFormat
from realtime_bridge.audio.steps import Steps, check_b64_steps, decode_b64_steps
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.audio_events import (
    APPEND,
    check_item_audio_size,
    convert_item_audio_steps,
)
from realtime_bridge.protocol.events import parse_client_event
from realtime_bridge.protocol.routed import ITEM_CREATE

#: Client text frames longer than this are read in steps.
LARGE_EVENT_CHARS = 256 * 1024
#: Strings at least this long are set aside while the rest of the event is parsed.
LONG_STRING_CHARS = 16 * 1024
#: Work per step: characters checked, quotes looked at, values walked.
STEP_CHARS = 1 << 20
QUOTES_PER_STEP = 4096
NODES_PER_STEP = 4096

#: Characters that make a JSON string differ from its text (escapes, and controls it may not hold).
_NOT_VERBATIM = bytes(range(0x20)) + b"\\"


@dataclass(slots=True)
class LargeEvent:
    """A large client event, read: what the routing rules need without redoing the long work."""

    text: str
    event: dict[str, Any]
    #: An append's audio, checked strictly: its decoded size, and the audio (in pieces) when
    #: the session converts it (None when there is no such audio to use).
    audio_size: int | None = None
    audio: list[bytes] | None = None
    #: A ``conversation.item.create`` whose audio is already in the upstream's formats, in
    #: base64 pieces under placeholders, to :func:`~.audio_events.splice` into its frame.
    spliced: dict[str, list[str]] | None = None


class LargeEventReader:
    """One large client event, read a bounded step at a time (see the module's docstring).

    The formats are the session's when reading starts; they cannot change before the event is
    routed, since the session holds its later frames until then."""

    def __init__(
        self, text: str, *, client_input: AudioFormat, client_output: AudioFormat, convert: bool
    ) -> None:
        self.text = text
        self.result: LargeEvent | ClientError | None = None
        self._input = client_input
        self._output = client_output
        self._convert = convert
        self._steps = self._read()

    def step(self) -> bool:
        """Do the next step; True once :attr:`result` holds the event or the client's error."""
        try:
            next(self._steps)
        except StopIteration as done:
            self.result = done.value
        except ClientError as error:
            self.result = error
        return self.result is not None

    def _read(self) -> Steps[LargeEvent]:
        text = self.text
        spans = yield from _verbatim_long_strings(text)
        if len(text) - sum(end - start for start, end in spans) > LARGE_EVENT_CHARS:
            raise ClientError(
                ErrorCode.INVALID_EVENT,
                f"An event over {LARGE_EVENT_CHARS // 1024} KiB must owe its size to long "
                "strings such as base64 audio; this one has more than that in other content.",
            )
        nonce = secrets.token_hex(12)
        originals: dict[str, tuple[int, int]] = {}
        pieces: list[str] = []
        at = 0
        for index, (start, end) in enumerate(spans):
            name = f"{nonce}{index}"
            originals[name] = (start, end)
            pieces += (text[at:start], name)
            at = end
        pieces.append(text[at:])
        event = parse_client_event("".join(pieces))
        yield
        if originals:
            yield from _restore(event, originals, text)
        return (yield from self._audio(LargeEvent(text, event)))

    def _audio(self, read: LargeEvent) -> Steps[LargeEvent]:
        """The long audio work the routing rules would otherwise do in one go."""
        event = read.event
        event_id = event.get("event_id")
        client_event_id = event_id if isinstance(event_id, str) else None
        if event["type"] == APPEND:
            audio = event.get("audio")
            if self._convert:
                read.audio = yield from decode_b64_steps(
                    audio, self._input, event_id=client_event_id
                )
                read.audio_size = sum(len(piece) for piece in read.audio)
            else:
                read.audio_size = yield from check_b64_steps(
                    audio, self._input, event_id=client_event_id
                )
        elif event["type"] == ITEM_CREATE and self._convert:
            item = event.get("item")
            check_item_audio_size(item, self._input, event_id)
            read.spliced = {}
            yield from convert_item_audio_steps(
                item,
                client_input=self._input,
                client_output=self._output,
                up=True,
                event_id=client_event_id,
                spliced=read.spliced,
            )
        return read


def _verbatim_long_strings(text: str) -> Steps[list[tuple[int, int]]]:
    """Where the long strings that read as their own text are: (start, end) of each one's
    characters between its quotes. Quotes are told apart by tracking which ones open a string
    (a quote after an odd run of backslashes inside a string is part of it)."""
    spans: list[tuple[int, int]] = []
    quotes = 0
    inside = False  # the last unescaped quote opened a string
    opened = previous = -1
    while (quote := text.find('"', previous + 1)) >= 0:
        escaped = False
        if inside and text[quote - 1] == "\\":
            escaped = (yield from _backslashes_before(text, quote)) % 2 == 1
        if not escaped:
            long = inside and quote - opened - 1 >= LONG_STRING_CHARS
            if long and (yield from _verbatim(text, opened + 1, quote)):
                spans.append((opened + 1, quote))
            inside = not inside
            opened = quote
        previous = quote
        quotes += 1
        if quotes % QUOTES_PER_STEP == 0:
            if quotes > LARGE_EVENT_CHARS:  # every quote stays in the rest of the event
                break
            yield
    return spans


def _backslashes_before(text: str, end: int) -> Steps[int]:
    """How many backslashes run up to ``end``: a short look first, then a MiB per step."""
    count = 0
    size = 64
    while end > 0:
        block = text[max(0, end - size) : end]
        run = len(block) - len(block.rstrip("\\"))
        count += run
        if run < len(block):
            break
        end -= len(block)
        size = STEP_CHARS
        yield
    return count


def _verbatim(text: str, start: int, end: int) -> Steps[bool]:
    """Whether ``text[start:end]`` holds no escape and no control character, a step at a time."""
    for at in range(start, end, STEP_CHARS):
        chunk = text[at : min(at + STEP_CHARS, end)].encode()
        if len(chunk.translate(None, _NOT_VERBATIM)) != len(chunk):
            return False
        yield
    return True


def _restore(
    event: dict[str, Any], originals: dict[str, tuple[int, int]], text: str
) -> Steps[None]:
    """Put the long strings back in place of their placeholders (values and keys)."""
    stack: list[dict[str, Any] | list[Any]] = [event]
    walked = 0
    while stack:
        node = stack.pop()
        pairs = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, value in pairs:
            if isinstance(value, str) and value in originals:
                start, end = originals[value]
                node[key] = text[start:end]  # type: ignore[index]
                yield
            elif isinstance(value, dict | list):
                stack.append(value)
            if isinstance(key, str) and key in originals:
                start, end = originals[key]
                assert isinstance(node, dict)
                node[text[start:end]] = node.pop(key)
            walked += 1
            if walked % NODES_PER_STEP == 0:
                yield


__all__ = ["LARGE_EVENT_CHARS", "LargeEvent", "LargeEventReader"]
