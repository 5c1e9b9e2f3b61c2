"""Voice activity detection on the decoded input signal: frame energy with hysteresis.

Mapping of the API's parameters (documented so tests and users can reason about them):

* ``threshold`` (0..1) maps linearly onto frame energy: a 10 ms frame is *loud* when its RMS level
  is at least ``-70 + 60 * threshold`` dBFS (0.5 → -40 dBFS, 0.8 → -22 dBFS, 1.0 → -10 dBFS).
  Once speech has started, frames stay *speech* down to ``HYSTERESIS_DB`` below that level, so
  the tail of a word does not end the turn.
* Speech starts after ``ONSET_FRAMES`` consecutive loud frames, at the first of them;
  ``audio_start_ms`` is that instant minus ``prefix_padding_ms``.
* Speech stops after ``silence_duration_ms`` of frames below the release level;
  ``audio_end_ms`` is the end of the last speech frame plus ``silence_duration_ms``, i.e. the
  instant the stop was decided (as in the API, it includes the silence).
* ``semantic_vad`` behaves like server VAD with default threshold and padding and a silence
  duration chosen by ``eagerness`` (low 1000 ms, medium/auto 600 ms, high 300 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .audio_io import FloatArray

FRAME_MS = 10
ONSET_FRAMES = 3
HYSTERESIS_DB = 8.0
SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 600, "auto": 600, "high": 300}


def threshold_to_dbfs(threshold: float) -> float:
    """The frame level (dBFS RMS) at which a frame counts as loud for a given threshold."""
    return -70.0 + 60.0 * threshold


@dataclass(frozen=True, slots=True)
class VadParams:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @classmethod
    def from_turn_detection(cls, td: dict[str, Any]) -> VadParams:
        """Parameters from a validated ``turn_detection`` object (server or semantic)."""
        if td["type"] == "semantic_vad":
            return cls(silence_duration_ms=SEMANTIC_SILENCE_MS[str(td.get("eagerness", "auto"))])
        return cls(
            threshold=float(td["threshold"]),
            prefix_padding_ms=int(td["prefix_padding_ms"]),
            silence_duration_ms=int(td["silence_duration_ms"]),
        )


@dataclass(frozen=True, slots=True)
class VadEvent:
    """``start`` at the detected onset (before padding) or ``stop`` at the decision instant."""

    kind: Literal["start", "stop"]
    ms: float


class EnergyVad:
    """Streaming detector: feed consecutive samples, get start/stop events on the audio timeline."""

    def __init__(self, params: VadParams) -> None:
        self.params = params
        self._carry = np.zeros(0, dtype=np.float32)
        self._carry_rate = 0
        self._pos_ms = 0.0
        self._speaking = False
        self._loud_run = 0
        self._silence_ms = 0
        self._last_speech_end = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def reset(self, position_ms: float) -> None:
        """Forget any speech in progress; the timeline continues at ``position_ms``."""
        self._carry = np.zeros(0, dtype=np.float32)
        self._pos_ms = position_ms
        self._speaking = False
        self._loud_run = 0
        self._silence_ms = 0

    def process(self, samples: FloatArray, rate: int) -> list[VadEvent]:
        """Events found in ``samples`` (which follow the previous call's samples)."""
        if rate != self._carry_rate:
            self._carry = np.zeros(0, dtype=np.float32)
            self._carry_rate = rate
        signal = np.concatenate([self._carry, samples]) if self._carry.size else samples
        frame = rate * FRAME_MS // 1000
        count = signal.size // frame
        self._carry = signal[count * frame :].copy()
        if count == 0:
            return []
        frames = signal[: count * frame].reshape(count, frame).astype(np.float64)
        levels = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
        return self._step_frames(levels)

    def _step_frames(self, levels: np.ndarray[Any, np.dtype[np.float64]]) -> list[VadEvent]:
        events: list[VadEvent] = []
        attack = threshold_to_dbfs(self.params.threshold)
        release = attack - HYSTERESIS_DB
        for level in levels.tolist():
            start = self._pos_ms
            self._pos_ms += FRAME_MS
            if not self._speaking:
                self._loud_run = self._loud_run + 1 if level >= attack else 0
                if self._loud_run >= ONSET_FRAMES:
                    onset = start - (ONSET_FRAMES - 1) * FRAME_MS
                    events.append(VadEvent("start", onset))
                    self._speaking = True
                    self._silence_ms = 0
                    self._last_speech_end = self._pos_ms
            elif level >= release:
                self._silence_ms = 0
                self._last_speech_end = self._pos_ms
            else:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= self.params.silence_duration_ms:
                    end = self._last_speech_end + self.params.silence_duration_ms
                    events.append(VadEvent("stop", end))
                    self._speaking = False
                    self._loud_run = 0
        return events
