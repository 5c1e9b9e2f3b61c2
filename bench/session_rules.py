"""Cost of the bridge's own per-frame work, without sockets: what SessionProtocol (and the
metrics counter) add to every relayed frame. Deterministic enough to compare commits, unlike
the loopback relay benchmark whose run-to-run noise is a few µs per message.

    .venv/bin/python bench/session_rules.py
"""

from __future__ import annotations

import base64
import os
import statistics
import time
import timeit
from collections.abc import Callable

from realtime_bridge.audio.formats import AudioFormat, Codec
from realtime_bridge.metrics import SessionMetrics
from realtime_bridge.protocol.session import HandshakeOptions, SessionProtocol

AUDIO_24K = base64.b64encode(os.urandom(960)).decode()  # 20 ms of PCM16 at 24 kHz
AUDIO_16K = base64.b64encode(os.urandom(640)).decode()  # 20 ms of PCM16 at 16 kHz
APPEND = '{{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"{}"}}'
APPEND_24K = APPEND.format(AUDIO_24K)
APPEND_16K = APPEND.format(AUDIO_16K)
DELTA = (
    '{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1",'
    f'"item_id":"item_1","output_index":0,"content_index":0,"delta":"{AUDIO_24K}"}}'
)
TEXT_DELTA = (
    '{"type":"response.output_text.delta","event_id":"event_2","response_id":"resp_1",'
    '"item_id":"item_1","output_index":0,"content_index":0,"delta":"Hello"}'
)


def per_call_us(func: Callable[[], object], number: int = 20000, repeat: int = 7) -> float:
    times = timeit.repeat(func, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    ga = SessionProtocol()
    pcm16k = AudioFormat(Codec.PCM16, 16000)
    converted = SessionProtocol(HandshakeOptions(input_format=pcm16k, output_format=pcm16k))
    beta = SessionProtocol(HandshakeOptions(beta=True))
    counter = SessionMetrics().client_to_upstream
    append_bytes = APPEND_24K.encode()
    delta_bytes = DELTA.encode()
    rows = [
        (
            "client append, 24 kHz, hot path on the frame's bytes (parse + base64 check)",
            lambda: ga.passthrough_client(memoryview(append_bytes)),
        ),
        (
            "client append, 24 kHz pass-through via str (parse + strict base64 check)",
            lambda: ga.from_client_text(APPEND_24K),
        ),
        (
            "client append, 16 kHz → 24 kHz (decode, resample, encode)",
            lambda: converted.from_client_text(APPEND_16K),
        ),
        (
            "upstream audio delta, hot path on the frame's bytes (type peek)",
            lambda: ga.passthrough_upstream(delta_bytes),
        ),
        (
            "upstream audio delta, pass-through via str (type peek)",
            lambda: ga.from_upstream_text(DELTA),
        ),
        ("upstream audio delta, 24 kHz → 16 kHz", lambda: converted.from_upstream_text(DELTA)),
        (
            "upstream audio delta, beta client (parse + rename)",
            lambda: beta.from_upstream_text(DELTA),
        ),
        ("upstream text delta, pass-through", lambda: ga.from_upstream_text(TEXT_DELTA)),
        (
            "metrics: count one relayed frame",
            lambda: counter.relayed("input_audio_buffer.append", 1370, time.perf_counter_ns()),
        ),
    ]
    print(f"{'per-frame work':<78} {'µs':>7}")
    for name, func in rows:
        print(f"{name:<78} {per_call_us(func):7.2f}")


if __name__ == "__main__":
    main()
