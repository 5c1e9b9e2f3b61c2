"""Long audio work split into bounded steps, so a caller can give the event loop back between them.

Checking, decoding, converting and encoding audio cost time in proportion to its length: a
16 MiB base64 string takes about 10 ms to check, 36 ms to decode and, at 8 kHz, close to a
second to resample, all while every other session waits. Each function here is a generator
that does at most a step of work (a MiB of base64, a second of audio) between ``yield``s and
returns its result; :func:`run_steps` drives one to the end where waiting does not matter. The
results are exactly those of doing the work in one go (the converter is streaming).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator
from typing import TypeVar

from realtime_bridge.audio.convert import (
    B64_ALPHABET,
    Converter,
    audio_b64_size,
    b64_size,
    invalid_b64,
)
from realtime_bridge.audio.formats import AudioFormat

T = TypeVar("T")

#: What one step checks or decodes at most: a MiB of base64 (a multiple of 4).
B64_STEP_CHARS = 1 << 20
#: Audio converted per step; about a millisecond of resampling.
CONVERT_STEP_MS = 1000.0

Steps = Generator[None, None, T]


def run_steps(steps: Steps[T]) -> T:
    """Run a generator of steps to its end at once and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def check_b64_steps(
    text: object, fmt: AudioFormat, *, param: str = "audio", event_id: str | None = None
) -> Steps[int]:
    """:func:`~realtime_bridge.audio.convert.audio_b64_size` a step at a time: the same checks,
    the same errors, the decoded size."""
    if not isinstance(text, str) or len(text) <= B64_STEP_CHARS:
        return audio_b64_size(text, fmt, param=param, event_id=event_id)
    tail = text[-3:]
    padding = len(tail) - len(tail.rstrip("="))
    if len(text) % 4 or padding > 2 or not text.isascii():
        raise invalid_b64(param, event_id)
    end = len(text) - padding
    for at in range(0, end, B64_STEP_CHARS):
        if text[at : min(at + B64_STEP_CHARS, end)].encode().translate(None, B64_ALPHABET):
            raise invalid_b64(param, event_id)
        yield
    return b64_size(len(text), padding, fmt, param=param, event_id=event_id)


def decode_b64_steps(
    text: object, fmt: AudioFormat, *, param: str = "audio", event_id: str | None = None
) -> Steps[list[bytes]]:
    """Strictly check and decode base64 audio (as ``decode_audio_b64``), a step at a time.
    The audio comes back in pieces (each an even number of bytes): joining megabytes at once
    would itself be a long step."""
    yield from check_b64_steps(text, fmt, param=param, event_id=event_id)
    assert isinstance(text, str)
    pieces: list[bytes] = []
    for at in range(0, len(text), B64_STEP_CHARS):
        pieces.append(binascii.a2b_base64(text[at : at + B64_STEP_CHARS]))
        yield
    return pieces


def convert_to_b64_steps(converter: Converter, pieces: list[bytes]) -> Steps[list[str]]:
    """A whole clip through ``converter`` and its flush, then base64, a second of audio per
    step. The result is base64 in pieces that join into the base64 of the whole clip (each
    but the last encodes a multiple of 3 bytes), for the caller to join once, where it must."""
    src = converter.src
    step = max(src.bytes_for_ms(CONVERT_STEP_MS), src.bytes_per_sample)
    step -= step % src.bytes_per_sample
    carry = b""
    encoded: list[str] = []
    for piece in pieces:
        for at in range(0, len(piece), step):
            out = carry + converter.convert(piece[at : at + step])
            cut = len(out) - len(out) % 3
            encoded.append(base64.b64encode(out[:cut]).decode())
            carry = out[cut:]
            yield
    encoded.append(base64.b64encode(carry + converter.flush()).decode())
    return encoded


__all__ = [
    "B64_STEP_CHARS",
    "CONVERT_STEP_MS",
    "Steps",
    "check_b64_steps",
    "convert_to_b64_steps",
    "decode_b64_steps",
    "run_steps",
]
