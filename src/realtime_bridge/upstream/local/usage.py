"""Plausible token accounting, derived from text length and audio duration.

Rates follow the API's published orders of magnitude: about 4 characters per text token, input
audio 10 tokens per second, output audio 20 tokens per second.
"""

from __future__ import annotations

import math
from typing import Any

RATE_LIMIT_TOKENS = 40_000


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def input_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 100.0) if ms > 0 else 0


def output_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 50.0) if ms > 0 else 0


def response_usage(
    *, input_text: str, input_audio_ms: float, output_text: str, output_audio_ms: float
) -> dict[str, Any]:
    """The ``usage`` object of ``response.done``."""
    in_text = text_tokens(input_text)
    in_audio = input_audio_tokens(input_audio_ms)
    out_text = text_tokens(output_text)
    out_audio = output_audio_tokens(output_audio_ms)
    return {
        "total_tokens": in_text + in_audio + out_text + out_audio,
        "input_tokens": in_text + in_audio,
        "output_tokens": out_text + out_audio,
        "input_token_details": {
            "text_tokens": in_text,
            "audio_tokens": in_audio,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def transcription_usage(model: str, audio_ms: float, transcript: str) -> dict[str, Any]:
    """Usage of an input transcription: by duration for whisper, by tokens for gpt-4o models."""
    if model.startswith("whisper"):
        return {"type": "duration", "seconds": round(audio_ms / 1000.0, 3)}
    audio = input_audio_tokens(audio_ms)
    out = text_tokens(transcript)
    return {
        "type": "tokens",
        "input_tokens": audio,
        "output_tokens": out,
        "total_tokens": audio + out,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
    }


def rate_limits(tokens_used: int) -> list[dict[str, Any]]:
    """The ``rate_limits`` list of ``rate_limits.updated`` (a token bucket refilled per minute)."""
    used = min(tokens_used, RATE_LIMIT_TOKENS)
    return [
        {
            "name": "tokens",
            "limit": RATE_LIMIT_TOKENS,
            "remaining": RATE_LIMIT_TOKENS - used,
            "reset_seconds": round(60.0 * used / RATE_LIMIT_TOKENS, 3),
        }
    ]
