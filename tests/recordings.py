"""Real speech recordings for the tests, from inside the repository.

``tests/fixtures/`` holds two recordings as G.711 µ-law at 8 kHz (159 KB; provenance and
licence in ``tests/fixtures/README.md``). Every other name the tests use is derived from them
here: A-law by transcoding, PCM16 at 16/24/48 kHz by band-limited resampling (soxr). So a clone
tests anywhere, with nothing beside it.

When ``../shared/audio`` (the project's full-band originals) is beside the repository, a name it
holds is read from there instead: the same speech, wider band. Nothing requires it; the suite
also runs the recording-based tests from a copy of the repository with nothing beside it
(``tests/test_self_contained.py``).
"""

from __future__ import annotations

import functools
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from realtime_bridge.audio import g711

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
#: Set to 1 to ignore ``../shared/audio`` even when it is there.
FIXTURES_ONLY = os.environ.get("RECORDINGS_FIXTURES_ONLY") == "1"
#: Where a bare name is looked up first (kept for the tests that build paths themselves).
AUDIO_DIR = SHARED_AUDIO if SHARED_AUDIO.is_dir() and not FIXTURES_ONLY else FIXTURES

PCM, ALAW, ULAW = 1, 6, 7
_DERIVED = re.compile(
    r"(?P<stem>speech-[a-z-]+?)-(?P<rate>8|16|24|48)k(?P<codec>-ulaw|-alaw)?\.wav"
)


@dataclass(frozen=True)
class Wav:
    format_tag: int  # 1 PCM, 6 A-law, 7 µ-law
    rate: int
    channels: int
    bits: int
    data: bytes


def read_wav(path: Path | str) -> Wav:
    """A recording by path, or by bare name (``speech-three-turns-24k.wav``, …)."""
    if isinstance(path, Path) and path.parent != AUDIO_DIR:
        return parse_wav(path.read_bytes(), str(path))
    name = path.name if isinstance(path, Path) else path
    return _by_name(name)


@functools.cache
def _by_name(name: str) -> Wav:
    shared = SHARED_AUDIO / name
    if not FIXTURES_ONLY and shared.is_file():
        return parse_wav(shared.read_bytes(), str(shared))
    fixture = FIXTURES / name
    if fixture.is_file():
        return parse_wav(fixture.read_bytes(), str(fixture))
    return _derive(name)


def _derive(name: str) -> Wav:
    """A variant of a fixture: same speech, another codec or rate."""
    match = _DERIVED.fullmatch(name)
    assert match, f"no recording or fixture can give {name!r}"
    source = FIXTURES / f"{match['stem']}-8k-ulaw.wav"
    assert source.is_file(), f"no fixture {source.name} to derive {name!r} from"
    ulaw = parse_wav(source.read_bytes(), str(source)).data
    if match["codec"] == "-ulaw":
        return Wav(ULAW, 8000, 1, 8, ulaw)
    pcm8k = g711.ulaw_to_pcm16(ulaw)
    if match["codec"] == "-alaw":
        return Wav(ALAW, 8000, 1, 8, g711.pcm16_to_alaw(pcm8k))
    rate = int(match["rate"]) * 1000
    samples = np.frombuffer(pcm8k, "<i2").astype(np.float64)
    if rate != 8000:
        samples = soxr.resample(samples, 8000, rate, quality="VHQ")
    data = np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()
    return Wav(PCM, rate, 1, 16, data)


def parse_wav(blob: bytes, where: str = "WAV") -> Wav:
    """A minimal RIFF reader (the stdlib ``wave`` module refuses G.711 WAV files)."""
    assert blob[:4] == b"RIFF", where
    assert blob[8:12] == b"WAVE", where
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(blob):
        chunk_id, size = blob[pos : pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            assert fmt is not None, where
            return Wav(fmt[0], fmt[2], fmt[1], fmt[3], body)
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no data chunk in {where}")
