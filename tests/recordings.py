"""The real recordings in ../shared/audio (beside the repository, as CI clones it)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"


@dataclass(frozen=True)
class Wav:
    format_tag: int  # 1 PCM, 6 A-law, 7 µ-law
    rate: int
    channels: int
    bits: int
    data: bytes


def read_wav(path: Path | str) -> Wav:
    """A minimal RIFF reader (the stdlib ``wave`` module refuses G.711 WAV files); a bare name
    is looked up in :data:`AUDIO_DIR`."""
    path = AUDIO_DIR / path if isinstance(path, str) else path
    blob = path.read_bytes()
    assert blob[:4] == b"RIFF", path
    assert blob[8:12] == b"WAVE", path
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(blob):
        chunk_id, size = blob[pos : pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            assert fmt is not None, path
            return Wav(fmt[0], fmt[2], fmt[1], fmt[3], body)
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no data chunk in {path}")
