"""Audio formats, G.711 codecs, streaming resampling and per-direction conversion.

Pure and synchronous: CPU work on bytes and numpy arrays, no I/O, no clocks, no globals that
change. The server calls it from the event loop; a 20 ms frame costs microseconds
(``bench/codec.py``).
"""

from realtime_bridge.audio.convert import Converter, decode_audio_b64
from realtime_bridge.audio.formats import (
    ALAW_8K,
    PCM16_24K,
    SUPPORTED_PCM_RATES,
    ULAW_8K,
    AudioFormat,
    Codec,
    parse_beta_format,
    parse_ga_format,
    parse_query_format,
)
from realtime_bridge.audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from realtime_bridge.audio.resample import StreamResampler

__all__ = [
    "ALAW_8K",
    "PCM16_24K",
    "SUPPORTED_PCM_RATES",
    "ULAW_8K",
    "AudioFormat",
    "Codec",
    "Converter",
    "StreamResampler",
    "alaw_to_pcm16",
    "decode_audio_b64",
    "parse_beta_format",
    "parse_ga_format",
    "parse_query_format",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_to_pcm16",
]
