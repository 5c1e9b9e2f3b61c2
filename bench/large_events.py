"""How long does one large client event hold the event loop? For each kind of large frame, the
session's rules are run as the bridge runs them: in one go (the pre-step code path, still what
``from_client_text`` does) and a step per loop turn (``large_event_reader``, then the slicer).
Printed: the total CPU time and the longest single step (target: under 5 ms), for the first
run in the process and for a later one: the first pays the kernel's page faults for fresh memory
(megabytes touched for the first time), which a running server has long paid.

    .venv/bin/python bench/large_events.py [--mb 12]
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable

import orjson

from realtime_bridge.audio.formats import PCM16_24K, AudioFormat, Codec
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.session import SessionProtocol

PCM8K = AudioFormat(Codec.PCM16, 8000)


def append(audio: bytes) -> str:
    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    return orjson.dumps(event).decode()


def item(audio: bytes) -> str:
    content = [{"type": "input_audio", "audio": base64.b64encode(audio).decode()}]
    event = {"type": "conversation.item.create", "item": {"type": "message", "content": content}}
    return orjson.dumps(event).decode()


def timed(action: Callable[[], object], calls: list[float]) -> object:
    started = time.thread_time()
    result = action()
    calls.append((time.thread_time() - started) * 1000)
    return result


def whole(fmt: AudioFormat, text: str) -> list[float]:
    rules = SessionProtocol(HandshakeOptions(input_format=fmt))
    calls: list[float] = []
    timed(lambda: rules.from_client_text(text), calls)
    while rules.slicer is not None:
        timed(rules.next_slice, calls)
    return calls


def stepped(fmt: AudioFormat, text: str) -> list[float]:
    rules = SessionProtocol(HandshakeOptions(input_format=fmt))
    calls: list[float] = []
    reader = rules.large_event_reader(text)
    while not timed(reader.step, calls):
        pass
    assert reader.result is not None
    timed(lambda: rules.from_large_event(reader.result), calls)  # type: ignore[arg-type]
    while rules.slicer is not None:
        timed(rules.next_slice, calls)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=12.0, help="base64 size of the appends")
    args = parser.parse_args()
    raw = int(args.mb * 1e6 * 3 / 4) // 2 * 2
    cases = [
        ("append, 24 kHz, passed through", PCM16_24K, append(bytes(raw))),
        ("append, 8 kHz, converted", PCM8K, append(bytes(raw))),
        ("item, 8 kHz, converted (3.6 MB)", PCM8K, item(bytes(3_600_000))),
    ]
    print(
        f"{'frame':<34} {'MB':>5} {'whole: total / longest':>24} "
        f"{'steps: total / longest':>24} {'first run: longest step':>24}"
    )
    for name, fmt, text in cases:
        first = stepped(fmt, text)
        before = whole(fmt, text)
        after = stepped(fmt, text)
        print(
            f"{name:<34} {len(text) / 1e6:>5.1f} "
            f"{sum(before):>13.1f} / {max(before):>6.1f} ms "
            f"{sum(after):>13.1f} / {max(after):>6.1f} ms "
            f"{max(first):>21.1f} ms"
        )


if __name__ == "__main__":
    main()
