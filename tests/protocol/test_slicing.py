"""Large appends are converted a second at a time: the same stream as converting them whole."""

from __future__ import annotations

import base64

import numpy as np
import orjson

from realtime_bridge.audio.convert import Converter
from realtime_bridge.audio.formats import PCM16_24K, AudioFormat, Codec
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.session import SessionProtocol

PCM8K = AudioFormat(Codec.PCM16, 8000)


def test_a_long_append_is_sliced_into_the_same_stream() -> None:
    rng = np.random.default_rng(1)
    data = (rng.standard_normal(8000 * 5) * 3000).astype("<i2").tobytes()  # 5 s at 8 kHz
    rules = SessionProtocol(HandshakeOptions(input_format=PCM8K))
    event = {"type": "input_audio_buffer.append", "event_id": "evt_big"}
    event["audio"] = base64.b64encode(data).decode()
    routed = rules.from_client_text(orjson.dumps(event).decode())
    assert routed.to_upstream == ()  # nothing at once: the caller runs the slicer
    assert rules.slicer is not None
    frames = []
    while rules.slicer is not None:
        frame = rules.next_slice()
        assert frame is not None
        frames.append(orjson.loads(frame))
    assert len(frames) == 5
    assert frames[0]["event_id"] == "evt_big"
    assert all("event_id" not in f for f in frames[1:])
    sliced = b"".join(base64.b64decode(f["audio"]) for f in frames)
    whole = Converter(PCM8K, PCM16_24K).convert(data)
    assert sliced == whole
    # A short append afterwards goes through at once, on the same converter (no click).
    routed = rules.from_client_binary(data[:1600])
    assert len(routed.to_upstream) == 1
