"""Audio between a WebRTC track and the session: PCM16 mono at 48 kHz both ways.

aiortc decodes the caller's Opus into 48 kHz frames and encodes what it is given into Opus; the
session (told the client's format is ``pcm16@48000``) resamples to and from the upstream's
24 kHz, as for any client at that rate. The outbound track is paced here at real time, one
20 ms frame per tick, so what left on the track is what the caller heard (give or take its
jitter buffer): barge-in truncates at that.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

RATE = 48000
FRAME_S = 0.02
FRAME_SAMPLES = int(RATE * FRAME_S)
FRAME_BYTES = FRAME_SAMPLES * 2
BYTES_PER_MS = RATE * 2 // 1000
#: A pacer this far behind (a stalled loop) starts afresh instead of sending a burst.
MAX_LAG_S = 0.2
#: An answer starts playing once this much of it is queued (or all of it came): an upstream
#: that sends at about real time (the local one, a slow network) then plays without gaps.
START_CUSHION_BYTES = 4 * FRAME_BYTES
_SILENCE = bytes(FRAME_BYTES)
_TIME_BASE = fractions.Fraction(1, RATE)

#: What a chunk of outbound audio belongs to (the session's item and response ids).
Tag = tuple[str | None, str | None]
#: Called after each frame: how many bytes of each tag it carried, and whether the queue is now
#: empty.
FrameReport = Callable[[list[tuple[Tag, int]], bool], None]


def pcm_from_frame(frame: av.AudioFrame) -> bytes:
    """A decoded frame as PCM16 mono at 48 kHz (aiortc's Opus decoder gives s16 stereo at 48
    kHz, interleaved: the channels are averaged)."""
    if frame.format.name != "s16" or frame.sample_rate != RATE:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        return b"".join(
            bytes(out.planes[0])[: out.samples * 2] for out in resampler.resample(frame)
        )
    samples = np.asarray(frame.to_ndarray(), dtype=np.int16)
    channels = len(frame.layout.channels)
    if channels == 1:
        return samples.tobytes()
    pairs = samples.reshape(-1, channels).astype(np.int32)
    mono: npt.NDArray[np.int16] = (pairs.sum(axis=1) // channels).astype(np.int16)
    return mono.tobytes()


class PacedAudioTrack(MediaStreamTrack):
    """The bridge's outbound audio: what the session hands over, at real time, silence between.

    Frames are whole: a frame is never half audio, half silence while more audio is coming (a
    gap the caller would hear as a click). Audio starts once :data:`START_CUSHION_BYTES` are
    queued or :meth:`finish` says no more is coming; if the queue runs dry mid-answer, a silent
    frame is sent and counted in ``underruns``; after :meth:`finish` the tail goes out padded.
    """

    kind = "audio"

    def __init__(self, report: FrameReport) -> None:
        super().__init__()
        self._report = report
        self._queue: deque[tuple[bytes, Tag]] = deque()
        self._offset = 0  # into the first chunk
        self.queued_bytes = 0
        self._start: float | None = None
        self._frames = 0
        self._playing = False  # the last frame carried audio
        self._finished = True  # no more audio is coming for what is queued
        self.underruns = 0

    def push(self, pcm: bytes, tag: Tag) -> None:
        if pcm:
            self._queue.append((pcm, tag))
            self.queued_bytes += len(pcm)
            self._finished = False

    def finish(self) -> None:
        """What is queued is all there is for now (the answer's audio is done): play it out."""
        self._finished = True

    def clear(self) -> int:
        """Drop what is queued (barge-in, ``output_audio_buffer.clear``): bytes dropped."""
        dropped = self.queued_bytes
        self._queue.clear()
        self._offset = 0
        self.queued_bytes = 0
        self._playing = False
        self._finished = True
        return dropped

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._frames * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -MAX_LAG_S:
                self._start = loop.time() - self._frames * FRAME_S
        pcm, taken = self._take()
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.pts = self._frames * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self._frames += 1
        if taken:
            self._report(taken, not self._queue)
        return frame

    def _take(self) -> tuple[bytes, list[tuple[Tag, int]]]:
        need_now = FRAME_BYTES if self._playing else START_CUSHION_BYTES
        if not self._queue or (self.queued_bytes < need_now and not self._finished):
            if self._playing and not self._finished:
                self.underruns += 1  # the answer's audio is late: a gap, but a whole frame
            else:
                self._playing = False
            return _SILENCE, []
        self._playing = True
        parts: list[bytes] = []
        taken: list[tuple[Tag, int]] = []
        need = FRAME_BYTES
        while need and self._queue:
            chunk, tag = self._queue[0]
            piece = chunk[self._offset : self._offset + need]
            parts.append(piece)
            need -= len(piece)
            self._offset += len(piece)
            if taken and taken[-1][0] == tag:
                taken[-1] = (tag, taken[-1][1] + len(piece))
            else:
                taken.append((tag, len(piece)))
            if self._offset >= len(chunk):
                self._queue.popleft()
                self._offset = 0
        self.queued_bytes -= FRAME_BYTES - need
        if need:
            parts.append(bytes(need))  # the end of an answer: the rest of the frame is silence
        if not self._queue and self._finished:
            self._playing = False
        return b"".join(parts), taken


async def read_track(track: Any, deliver: Callable[[bytes], None]) -> None:
    """Hand each decoded frame of ``track`` to ``deliver`` as PCM16 mono at 48 kHz, until the
    track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        deliver(pcm_from_frame(frame))


__all__ = ["BYTES_PER_MS", "RATE", "PacedAudioTrack", "Tag", "pcm_from_frame", "read_track"]
