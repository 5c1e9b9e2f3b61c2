"""Deterministic placeholder transcripts of input audio (no speech recognition offline).

The text is derived from the audio's duration and level only, so the same audio always gives the
same transcript and a reader can tell it is a placeholder.
"""

from __future__ import annotations

import numpy as np

from .audio_io import FloatArray

WORDS_PER_SECOND = 2.5


def placeholder_transcript(samples: FloatArray, rate: int) -> str:
    """E.g. ``[speech 2.4 s, about 6 words, -21 dBFS]``."""
    seconds = samples.size / rate if rate else 0.0
    level = (
        10.0 * np.log10(float(np.mean(samples.astype(np.float64) ** 2)) + 1e-12)
        if samples.size
        else -120.0
    )
    words = max(1, round(seconds * WORDS_PER_SECOND))
    return f"[speech {seconds:.1f} s, about {words} words, {level:.0f} dBFS]"


def split_deltas(text: str, parts: int = 3) -> list[str]:
    """The transcript cut into a few word-aligned deltas that concatenate to ``text``."""
    words = text.split(" ")
    size = max(1, -(-len(words) // parts))
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [chunk if i == 0 else " " + chunk for i, chunk in enumerate(chunks)]
