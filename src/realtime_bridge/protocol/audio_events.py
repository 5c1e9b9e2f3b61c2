"""Audio inside events: building appends and deltas, sizing them without decoding, and the audio
inside conversation items and session objects, seen from each side."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from realtime_bridge.audio.convert import Converter
from realtime_bridge.audio.formats import AudioFormat
from realtime_bridge.audio.steps import (
    Steps,
    convert_to_b64_steps,
    decode_b64_steps,
    run_steps,
)
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.protocol.events import dumps

APPEND = "input_audio_buffer.append"
AUDIO_DELTA = "response.output_audio.delta"


def append_event(audio: bytes, event_id: str | None) -> str:
    """An ``input_audio_buffer.append`` carrying ``audio``."""
    event: dict[str, Any] = {"type": APPEND}
    if event_id is not None:
        event["event_id"] = event_id
    event["audio"] = base64.b64encode(audio).decode()
    return dumps(event)


def delta_frame(audio: bytes, like: dict[str, Any], *, binary: bool) -> dict[str, Any] | bytes:
    """An output audio delta carrying ``audio``, with ``like``'s other fields (or the raw audio,
    for a client that takes binary frames)."""
    if binary:
        return audio
    fields = {k: v for k, v in like.items() if k not in ("type", "delta", "event_id")}
    return {
        "type": AUDIO_DELTA,
        "event_id": like.get("event_id", ""),
        **fields,
        "delta": base64.b64encode(audio).decode(),
    }


def b64_duration_ms(text: str, fmt: AudioFormat) -> float:
    """Duration of an audio delta from its base64 length, without decoding it."""
    start = text.find('"delta":"')
    end = text.find('"', start + 9)
    if start < 0 or end < 0:
        return 0.0
    padding = text.count("=", max(start + 9, end - 2), end)
    return fmt.duration_ms((end - start - 9) * 3 // 4 - padding)


def delta_size(payload: bytes) -> int:
    """Decoded size of an audio delta event's base64 ``delta``, without decoding it: the
    same as :func:`b64_duration_ms` on the frame's bytes, written for the hot path."""
    start = payload.find(b'"delta":"')
    if start < 0:
        return 0
    begin = start + 9
    end = payload.find(b'"', begin)
    if end < 0:
        return 0
    # Padding is one or two '=' (61) at the end; the bytes before the value are never '='.
    padding = (payload[end - 1] == 61) + (payload[end - 2] == 61 and end - 2 >= begin)
    return (end - begin) * 3 // 4 - padding


def convert_item_audio(
    item: object,
    *,
    client_input: AudioFormat,
    client_output: AudioFormat,
    up: bool,
    event_id: str | None = None,
) -> bool:
    """Audio inside conversation items is in the sender's format too: an item a client creates
    carries audio in its input format, and items the upstream reports carry audio in the formats
    the upstream was told. Each clip is converted whole (a fresh converter, flushed), in place.
    Returns whether anything changed; invalid client audio raises ``invalid_audio``."""
    return run_steps(
        convert_item_audio_steps(
            item, client_input=client_input, client_output=client_output, up=up, event_id=event_id
        )
    )


def convert_item_audio_steps(
    item: object,
    *,
    client_input: AudioFormat,
    client_output: AudioFormat,
    up: bool,
    event_id: str | None = None,
    spliced: dict[str, list[str]] | None = None,
) -> Steps[bool]:
    """:func:`convert_item_audio` a bounded step at a time (see :mod:`realtime_bridge.audio.steps`),
    for a large item read off the client without holding the event loop. With ``spliced``, each
    converted clip stays in base64 pieces under a placeholder put in its place, for
    :func:`splice` to join into the serialised event once (megabytes joined twice, then
    serialised, would each be a long step)."""
    content = item.get("content") if isinstance(item, dict) else None
    if not isinstance(content, list):
        return False
    changed = False
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("audio"), str):
            continue
        client_fmt = client_input if part.get("type") == "input_audio" else client_output
        upstream_fmt = client_fmt.upstream_format()
        if client_fmt == upstream_fmt:
            continue
        src, dst = (client_fmt, upstream_fmt) if up else (upstream_fmt, client_fmt)
        try:
            pieces = yield from decode_b64_steps(
                part["audio"], src, param=f"item.content[{index}].audio", event_id=event_id
            )
        except ClientError:
            if up:
                raise
            continue  # the upstream's own audio: not ours to judge
        encoded = yield from convert_to_b64_steps(Converter(src, dst), pieces)
        if spliced is None:
            audio = "".join(encoded)
        else:
            audio = f"{secrets.token_hex(12)}{len(spliced)}"
            spliced[audio] = encoded
        content[index] = {**part, "audio": audio}
        changed = True
    return changed


def splice(frame: str, spliced: dict[str, list[str]]) -> str:
    """``frame`` with each placeholder replaced by its joined pieces, in a single join."""
    pieces: list[str] = []
    at = 0
    for placeholder, encoded in sorted(spliced.items(), key=lambda kv: frame.find(kv[0])):
        start = frame.find(placeholder)
        pieces += (frame[at:start], *encoded)
        at = start + len(placeholder)
    pieces.append(frame[at:])
    return "".join(pieces)


def show_client_formats(
    event: dict[str, Any], client_input: AudioFormat, client_output: AudioFormat
) -> bool:
    """Show the client the formats it declared in a session object from the upstream, not the
    ones the upstream was told (or had not been told yet). Returns whether the event changed."""
    session = event.get("session")
    audio = session.get("audio") if isinstance(session, dict) else None
    if not isinstance(audio, dict):
        return False
    changed = False
    for direction, fmt in (("input", client_input), ("output", client_output)):
        part = audio.get(direction)
        if isinstance(part, dict) and "format" in part:
            shown = fmt.to_ga()
            if part["format"] != shown:
                audio[direction] = {**part, "format": shown}
                changed = True
    return changed


#: The API takes at most 15 MiB of base64 audio in one append.
MAX_UPSTREAM_APPEND_B64 = 15 * 1024 * 1024


def check_item_audio_size(item: object, src: AudioFormat, event_id: object) -> None:
    """An item's input audio, converted whole, must fit the API's limit too."""
    content = item.get("content") if isinstance(item, dict) else None
    for part in content if isinstance(content, list) else ():
        audio = part.get("audio") if isinstance(part, dict) else None
        if isinstance(audio, str):
            check_converted_size(
                src, len(audio) * 3 // 4, event_id if isinstance(event_id, str) else None
            )


def check_converted_size(src: AudioFormat, nbytes: int, event_id: str | None) -> None:
    """Refuse audio whose converted append would exceed what the API accepts in one event
    (an 8 kHz client's audio triples in size at 24 kHz): ``invalid_audio``, session goes on."""
    upstream = src.upstream_format()
    converted = upstream.bytes_for_ms(src.duration_ms(nbytes))
    if (converted + 2) // 3 * 4 > MAX_UPSTREAM_APPEND_B64:
        limit_s = MAX_UPSTREAM_APPEND_B64 * 3 // 4 / upstream.bytes_for_ms(1000)
        raise ClientError(
            ErrorCode.INVALID_AUDIO,
            f"Too much audio in one append: at most {limit_s:.0f} s once converted for the "
            "upstream (the API takes 15 MiB per append); send it in smaller appends.",
            param="audio",
            event_id=event_id,
        )


__all__ = [
    "MAX_UPSTREAM_APPEND_B64",
    "append_event",
    "b64_duration_ms",
    "check_converted_size",
    "check_item_audio_size",
    "convert_item_audio",
    "convert_item_audio_steps",
    "delta_frame",
    "delta_size",
    "show_client_formats",
    "splice",
]
