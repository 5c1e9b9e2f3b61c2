"""Large client events are read a bounded step at a time and give exactly what reading them in
one go gives: the same event, the same audio, the same errors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson
import pytest

from realtime_bridge.audio.convert import Converter, audio_b64_size, decode_audio_b64
from realtime_bridge.audio.formats import PCM16_24K, AudioFormat, Codec
from realtime_bridge.audio.steps import (
    B64_STEP_CHARS,
    check_b64_steps,
    convert_to_b64_steps,
    decode_b64_steps,
    run_steps,
)
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.audio_events import convert_item_audio, splice
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.large_events import (
    LARGE_EVENT_CHARS,
    LargeEvent,
    LargeEventReader,
)
from realtime_bridge.protocol.session import SessionProtocol

PCM8K = AudioFormat(Codec.PCM16, 8000)
ULAW = AudioFormat(Codec.ULAW, 8000)


def speechlike(seconds: float, rate: int) -> bytes:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(int(seconds * rate)) * 3000).astype("<i2").tobytes()


def read(text: str, fmt: AudioFormat = PCM16_24K) -> tuple[LargeEvent | ClientError, int]:
    reader = LargeEventReader(text, client_input=fmt, client_output=fmt, convert=fmt != PCM16_24K)
    steps = 1
    while not reader.step():
        steps += 1
    assert reader.result is not None
    return reader.result, steps


def error_of(result: LargeEvent | ClientError) -> ClientError:
    assert isinstance(result, ClientError), result
    return result


# -- the audio steps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "QUJD" * (B64_STEP_CHARS // 2),  # two steps, no padding
        "QUJD" * (B64_STEP_CHARS // 4) + "QUI=",  # padding just past a step
        "QUJD" * (B64_STEP_CHARS // 4) + "QQ==",  # odd size: refused for PCM16
        "QUJD" * (B64_STEP_CHARS // 4) + "Q===",  # three '='
        "QUJD" * (B64_STEP_CHARS // 4) + "QU=D",  # '=' inside
        "QUJD" * (B64_STEP_CHARS // 4 - 1) + "QU-D" + "QUJD",  # bad character at a step's end
        "QUJD" * (B64_STEP_CHARS // 4) + "QUJ",  # length not a multiple of 4
        "QUJD" * (B64_STEP_CHARS // 4) + "QUJé",  # not ASCII
    ],
)
def test_checking_and_decoding_in_steps_answers_like_in_one_go(text: str) -> None:
    for fmt in (PCM16_24K, ULAW):
        try:
            expected: object = decode_audio_b64(text, fmt)
            assert audio_b64_size(text, fmt) == len(expected)  # type: ignore[arg-type]
        except ClientError as error:
            expected = (error.code, error.message)
        for steps in (check_b64_steps(text, fmt), decode_b64_steps(text, fmt)):
            try:
                got: object = run_steps(steps)
            except ClientError as error:
                got = (error.code, error.message)
            if isinstance(got, int) and isinstance(expected, bytes):
                assert got == len(expected)
            elif isinstance(got, list):
                assert b"".join(got) == expected
            else:
                assert got == expected


def test_converting_in_steps_gives_the_whole_result() -> None:
    data = speechlike(70.0, 8000)
    whole = Converter(PCM8K, PCM16_24K)
    expected = base64.b64encode(whole.convert(data) + whole.flush()).decode()
    pieces = [data[:333_334], data[333_334:]]  # an odd cut: the converter carries the byte
    steps = convert_to_b64_steps(Converter(PCM8K, PCM16_24K), pieces)
    count = 0
    result = None
    while result is None:
        try:
            next(steps)
            count += 1
        except StopIteration as done:
            result = done.value
    assert "".join(result) == expected
    assert count == 71  # a second of audio per step (one more where the pieces meet)


# -- reading the event -------------------------------------------------------------------------


LONG_AUDIO = base64.b64encode(speechlike(30.0, 24000)).decode()  # 1.9 MB of base64


@pytest.mark.parametrize(
    "event",
    [
        {"type": "input_audio_buffer.append", "event_id": "evt_1", "audio": LONG_AUDIO},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_audio", "audio": LONG_AUDIO, "transcript": 'say "hi"\n'},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64," + LONG_AUDIO[:300_000],
                    },
                    {"type": "input_text", "text": "é ü \u2028 \\" * 20_000},  # escapes: kept in
                ],
            },
        },
        # A long string whose closing quote is escaped, one after a run of backslashes, a long
        # key, and long text outside any string would be (numbers) are all read exactly.
        {
            "type": "x",
            "a": "\\" * 17 + "A" * 20_000,
            "b": "B" * 20_000 + '"' + "C" * 20_000,
            "c": "D" * 20 + "\\" * 40_000,
            "d": "E" * 300_000,
        },
        {"type": "x", "k" * 40_000: ["v" * 300_000, {"n": [1] * 1000}], "z": "\\\\"},
        {"type": "x", "pad": "P" * 300_000, "n": [123456789] * 3000},
    ],
    ids=["append", "item", "escapes", "long-key", "numbers"],
)
def test_the_event_read_in_steps_is_the_event(event: dict[str, Any]) -> None:
    text = orjson.dumps(event).decode()
    assert len(text) > LARGE_EVENT_CHARS
    result, steps = read(text)
    assert isinstance(result, LargeEvent)
    assert result.event == orjson.loads(text)
    assert steps > 1


def test_a_large_append_is_checked_or_decoded_in_steps() -> None:
    data = speechlike(60.0, 8000)
    text = orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}
    )
    result, steps = read(text.decode(), PCM8K)
    assert isinstance(result, LargeEvent)
    assert result.audio is not None
    assert b"".join(result.audio) == data
    assert result.audio_size == len(data)
    assert steps >= len(text) // B64_STEP_CHARS  # at least a step per MiB of base64
    result, _ = read(text.decode())  # the session does not convert: checked, not decoded
    assert isinstance(result, LargeEvent)
    assert result.audio is None
    assert result.audio_size == len(data)


def test_item_audio_is_converted_in_steps_like_whole() -> None:
    data = speechlike(40.0, 8000)
    item = {"type": "message", "role": "user", "content": [{"type": "input_audio"}]}
    item["content"][0]["audio"] = base64.b64encode(data).decode()  # type: ignore[index]
    text = orjson.dumps({"type": "conversation.item.create", "item": item}).decode()
    result, steps = read(text, PCM8K)
    assert isinstance(result, LargeEvent)
    assert result.spliced is not None
    assert len(result.spliced) == 1
    frame = splice(orjson.dumps(result.event).decode(), result.spliced)
    expected = orjson.loads(text)["item"]
    assert convert_item_audio(expected, client_input=PCM8K, client_output=PCM8K, up=True)
    assert orjson.loads(frame)["item"] == expected
    assert steps >= 40  # a second of audio per step, and more for the base64


def test_what_is_wrong_in_a_large_event_gets_the_same_error_as_in_a_small_one() -> None:
    audio = "QUJD" * (LARGE_EVENT_CHARS // 4)
    bad_json = '{"type":"input_audio_buffer.append","audio":"' + audio + '",}'
    assert error_of(read(bad_json)[0]).code is ErrorCode.INVALID_JSON
    no_type = '{"audio":"' + audio + '"}'
    assert error_of(read(no_type)[0]).code is ErrorCode.INVALID_EVENT
    odd = orjson.dumps(
        {"type": "input_audio_buffer.append", "event_id": "evt_odd", "audio": audio + "QQ=="}
    ).decode()
    for fmt in (PCM16_24K, PCM8K):
        error = error_of(read(odd, fmt)[0])
        assert (error.code, error.event_id) == (ErrorCode.INVALID_AUDIO, "evt_odd")
        assert "even number of bytes" in error.message
    not_b64 = odd.replace("QUJD", "QU-D", 1)
    assert error_of(read(not_b64)[0]).message == "audio is not valid base64"


def test_an_event_large_for_other_reasons_than_long_strings_is_refused() -> None:
    """Thousands of small values would hold the loop while parsed: refused, not parsed."""
    many = orjson.dumps({"type": "session.update", "session": {"x": [{}] * 200_000}}).decode()
    error = error_of(read(many)[0])
    assert error.code is ErrorCode.INVALID_EVENT
    assert "256 KiB" in error.message
    quotes = '{"type":"x","s":[' + ",".join(['""'] * 150_000) + "]}"
    assert error_of(read(quotes)[0]).code is ErrorCode.INVALID_EVENT


def test_a_session_routes_a_large_event_like_a_small_one() -> None:
    """Through the session's rules: a converted large append becomes the slicer's stream, a
    pass-through one goes upstream as it came, an item goes up converted."""
    data = speechlike(20.0, 8000)
    append = orjson.dumps(
        {
            "type": "input_audio_buffer.append",
            "event_id": "evt_a",
            "audio": base64.b64encode(data).decode(),
        }
    ).decode()
    rules = SessionProtocol(HandshakeOptions(input_format=PCM8K))
    reader = rules.large_event_reader(append)
    while not reader.step():
        pass
    assert reader.result is not None
    rules.from_large_event(reader.result)
    assert rules.slicer is not None
    frames = []
    while rules.slicer is not None:
        frame = rules.next_slice()
        assert frame is not None
        frames.append(orjson.loads(frame))
    assert frames[0]["event_id"] == "evt_a"
    sliced = b"".join(base64.b64decode(f["audio"]) for f in frames)
    assert sliced == Converter(PCM8K, PCM16_24K).convert(data)

    passthrough = SessionProtocol(HandshakeOptions())
    big = orjson.dumps(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(speechlike(10.0, 24000)).decode(),
        }
    ).decode()
    reader = passthrough.large_event_reader(big)
    while not reader.step():
        pass
    assert reader.result is not None
    routed = passthrough.from_large_event(reader.result)
    assert routed.to_upstream == (big,)
    assert passthrough.audio_ms_in == pytest.approx(10_000)

    item = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": base64.b64encode(data).decode()}],
        },
    }
    rules = SessionProtocol(HandshakeOptions(input_format=PCM8K))
    reader = rules.large_event_reader(orjson.dumps(item).decode())
    while not reader.step():
        pass
    assert reader.result is not None
    routed = rules.from_large_event(reader.result)
    (frame,) = routed.to_upstream
    sent = binascii.a2b_base64(orjson.loads(frame)["item"]["content"][0]["audio"])
    converter = Converter(PCM8K, PCM16_24K)
    assert sent == converter.convert(data) + converter.flush()
