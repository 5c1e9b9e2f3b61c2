"""Cost per 20 ms frame of every audio operation on the bridge's hot path.

Run: ``.venv/bin/python bench/codec.py [--runs N] [--frames N] [--quality]``. Each figure is the
median over ``runs`` runs of the mean cost of one call on a 20 ms frame of speech-like audio
(two tones plus noise), in microseconds, after a warm-up. ``--quality`` adds a comparison of
soxr's presets (cost and held-back latency), the measurement behind ``resample.py``'s choice.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import soxr

from realtime_bridge.audio import g711
from realtime_bridge.audio.convert import Converter, audio_b64_size, decode_audio_b64
from realtime_bridge.audio.formats import (
    ALAW_8K,
    PCM16_24K,
    SUPPORTED_PCM_RATES,
    ULAW_8K,
    AudioFormat,
    Codec,
)
from realtime_bridge.audio.resample import StreamResampler

T = TypeVar("T")


def signal(rate: int, seconds: float = 1.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    x = 8000 * np.sin(2 * np.pi * 220 * t) + 4000 * np.sin(2 * np.pi * 2500 * t)
    x += np.random.default_rng(0).normal(0, 500, len(t))
    out: npt.NDArray[np.int16] = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return out


def frames_of(fmt: AudioFormat, count: int) -> list[bytes]:
    """``count`` consecutive 20 ms frames in ``fmt`` (cycled from one second of audio)."""
    pcm = signal(fmt.rate).tobytes()
    if fmt.codec is Codec.ULAW:
        data = g711.pcm16_to_ulaw(pcm)
    elif fmt.codec is Codec.ALAW:
        data = g711.pcm16_to_alaw(pcm)
    else:
        data = pcm
    size = fmt.bytes_for_ms(20)
    chunks = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
    return [chunks[i % len(chunks)] for i in range(count)]


def measure(
    make: Callable[[], Callable[[T], object]], inputs: Sequence[T], runs: int
) -> tuple[float, float]:
    """(median, min) over runs of the mean µs per call; ``make`` builds a fresh callable.

    The minimum is reported too: on a shared machine it is the steadier estimate of the
    intrinsic cost, while the median shows what a loaded host actually sees.
    """
    results = []
    for _ in range(runs):
        func = make()
        for item in inputs[:20]:  # warm-up
            func(item)
        start = time.perf_counter_ns()
        for item in inputs:
            func(item)
        results.append((time.perf_counter_ns() - start) / len(inputs) / 1000)
    return statistics.median(results), min(results)


def stateless(func: Callable[[bytes], bytes]) -> Callable[[], Callable[[bytes], bytes]]:
    return lambda: func


def resampler(a: int, b: int) -> Callable[[npt.NDArray[np.int16]], npt.NDArray[np.int16]]:
    return StreamResampler(a, b).process


def converter(src: AudioFormat, dst: AudioFormat) -> Callable[[bytes], bytes]:
    return Converter(src, dst).convert


def soxr_stream(a: int, b: int, preset: str) -> Callable[[npt.NDArray[np.float32]], object]:
    stream = soxr.ResampleStream(a, b, 1, dtype="float32", quality=preset)
    return stream.resample_chunk  # type: ignore[no-any-return]


def row(name: str, us: tuple[float, float]) -> None:
    median, best = us
    print(f"  {name:<44} {median:8.2f} {best:8.2f}   {median / 20_000 * 100:6.3f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--quality", action="store_true", help="compare soxr quality presets")
    args = parser.parse_args()
    runs, n = args.runs, args.frames

    print(f"cost per 20 ms frame in µs: median and min of {runs} runs × {n} frames,")
    print("and the median as a share of one core's real time\n")
    print(f"  {'operation':<44} {'median':>8} {'min':>8}   {'core':>6}")
    print("G.711 (160 samples)")
    pcm8 = frames_of(AudioFormat(Codec.PCM16, 8000), n)
    ulaw, alaw = frames_of(ULAW_8K, n), frames_of(ALAW_8K, n)
    for name, func, inputs in [
        ("µ-law encode (PCM16 → µ-law)", g711.pcm16_to_ulaw, pcm8),
        ("µ-law decode (µ-law → PCM16)", g711.ulaw_to_pcm16, ulaw),
        ("A-law encode (PCM16 → A-law)", g711.pcm16_to_alaw, pcm8),
        ("A-law decode (A-law → PCM16)", g711.alaw_to_pcm16, alaw),
    ]:
        row(name, measure(stateless(func), list(inputs), runs))

    print("\nresampling (StreamResampler, int16 in/out, steady state)")
    for rate in SUPPORTED_PCM_RATES:
        if rate == 24000:
            continue
        for a, b in ((rate, 24000), (24000, rate)):
            samples = [
                np.frombuffer(f, dtype="<i2") for f in frames_of(AudioFormat(Codec.PCM16, a), n)
            ]
            row(
                f"{a} → {b}",
                measure(partial(resampler, a, b), list(samples), runs),
            )

    print("\nbase64 (one 20 ms frame of PCM16 24 kHz: 960 bytes, 1280 characters)")
    raw = frames_of(PCM16_24K, n)
    texts = [base64.b64encode(f).decode() for f in raw]
    row(
        "audio_b64_size (strict check, no decode)",
        measure(lambda: lambda t: audio_b64_size(t, PCM16_24K), list(texts), runs),
    )
    row(
        "decode_audio_b64 (strict)",
        measure(lambda: lambda t: decode_audio_b64(t, PCM16_24K), list(texts), runs),
    )
    row(
        "encode (b64encode + ascii decode)",
        measure(lambda: lambda b: base64.b64encode(b).decode(), list(raw), runs),
    )

    print("\nConverter, per direction (bytes in → bytes out, one call per frame)")
    pairs = [
        (PCM16_24K, PCM16_24K),
        (AudioFormat(Codec.PCM16, 16000), PCM16_24K),
        (PCM16_24K, AudioFormat(Codec.PCM16, 16000)),
        (AudioFormat(Codec.PCM16, 48000), PCM16_24K),
        (PCM16_24K, AudioFormat(Codec.PCM16, 48000)),
        (AudioFormat(Codec.PCM16, 44100), PCM16_24K),
        (PCM16_24K, AudioFormat(Codec.PCM16, 44100)),
        (ULAW_8K, ULAW_8K),
        (ULAW_8K, PCM16_24K),
        (PCM16_24K, ULAW_8K),
        (ULAW_8K, ALAW_8K),
    ]
    for src, dst in pairs:
        inputs = frames_of(src, n)
        row(
            f"{src} → {dst}",
            measure(partial(converter, src, dst), list(inputs), runs),
        )
    print("\nclient event, end to end (base64 decode + Converter + base64 encode)")
    for src in (AudioFormat(Codec.PCM16, 16000), PCM16_24K):
        texts = [base64.b64encode(f).decode() for f in frames_of(src, n)]

        def full(s: AudioFormat = src) -> Callable[[str], str]:
            conv = Converter(s, PCM16_24K)
            return lambda t: base64.b64encode(conv.convert(decode_audio_b64(t, s))).decode()

        row(f"append {src} → {PCM16_24K}", measure(full, list(texts), runs))

    if args.quality:
        compare_presets(runs, n)


def compare_presets(runs: int, n: int) -> None:
    """soxr presets: cost per 20 ms frame, and the output held back (latency) in steady state."""
    print("\nsoxr presets (float32 stream, 20 ms frames): µs per frame / max held back (ms)")
    presets = ("LQ", "MQ", "HQ", "VHQ")
    print(f"  {'pair':<16}" + "".join(f"{p:>20}" for p in presets))
    for a, b in ((8000, 24000), (16000, 24000), (24000, 16000), (48000, 24000), (24000, 48000)):
        cells = []
        frame = a // 50
        x = signal(a).astype(np.float32)
        chunks = [x[(i * frame) % (a - frame) :][:frame] for i in range(n)]
        for preset in presets:
            us, _ = measure(partial(soxr_stream, a, b, preset), list(chunks), runs)
            stream = soxr.ResampleStream(a, b, 1, dtype="float32", quality=preset)
            produced, held = 0, 0.0
            for k, chunk in enumerate(chunks[:100], start=1):
                produced += len(stream.resample_chunk(chunk))
                held = max(held, k * frame * b / a - produced)
            cells.append(f"{us:8.2f} / {held * 1000 / b:5.1f}")
        print(f"  {f'{a} → {b}':<16}" + "".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
