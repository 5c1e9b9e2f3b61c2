"""Beta ⇄ GA translation of Realtime events: pure functions on dicts, one direction each.

The public API speaks only GA, yet many deployed clients speak the beta shape (PROTOCOL §2). The
bridge serves such a client in beta: its events go up translated to GA, GA events come back in beta
names and shapes. No I/O, no clocks, no state: the relay decides *whether* a session is beta (once),
these functions decide *how* each event changes.

Public names
- ``BETA_SUBPROTOCOL``, ``BETA_HEADER``, ``is_beta_header_value(value)``,
  ``offers_beta_subprotocol(protocols)``: handshake telltales.
- ``is_beta_session_update(event) -> bool``: a ``session.update`` in the beta shape.
- ``is_beta_client_event(event) -> bool``: any client event that only a beta client would send.
- ``TranslationResult(event, dropped_fields, changed)``: what ``beta_to_ga`` returns.
- ``beta_to_ga(event) -> TranslationResult``: client → upstream. Unchanged events come back as the
  *same object* (``changed`` false), so the relay can forward the original frame.
- ``ga_to_beta(event) -> list[dict]``: upstream → client. ``[]`` = drop, ``[event]`` (the same
  object) = forward the original frame, otherwise new dicts to serialise.
- ``beta_session_to_ga(session, *, transcription=False) -> (session, dropped)`` and
  ``ga_session_to_beta(session) -> session``: the session objects alone, for callers that keep one.
- ``beta_format_to_ga(name)`` / ``ga_format_to_beta(fmt)``: the audio-format names of §2.
- ``GA_ONLY_SERVER_EVENTS``, ``BETA_SERVER_EVENTS``, ``SERVER_EVENT_RENAMES``: the tables.

Decisions
- GA ``conversation.item.added`` becomes beta ``conversation.item.created``; GA
  ``conversation.item.done`` is dropped. Beta sent exactly one ``conversation.item.created`` per
  item, when it appeared (assistant items ``in_progress``); clients that build a conversation list
  from it would show every item twice if ``done`` were mapped too. Completion reaches beta clients
  through ``response.output_item.done`` and the transcription events, as it did in beta.
- A beta client only receives event types the beta protocol has (``BETA_SERVER_EVENTS``); anything
  else — the GA-only events of §2 and any event the API adds later — is dropped (SPEC §5). Events
  and ``response.output`` entries that carry GA-only item types (MCP) are dropped likewise.
- A GA session of type ``transcription`` reads as ``transcription_session.created`` /
  ``.updated`` with the beta transcription-session object, so ``transcription_session.update``
  round-trips.
- Audio format names come from ``audio.formats`` (one source of truth). PCM at any rate reads as
  beta ``pcm16``: beta cannot name a rate, and a client that declared another rate (a bridge
  extension) did so knowingly. A GA format beta cannot name is left out of the beta object; an
  unknown beta name goes up unchanged, for the format layer or the upstream to reject precisely.
- Beta fields GA removed (``temperature``, ``client_secret``, a transcription session's
  ``modalities``, turn-detection keys the chosen VAD type does not take) are dropped and reported
  in ``dropped_fields`` as dotted paths, for a debug log. If a client sends both a beta field and
  its GA counterpart, the GA value wins and the beta one is reported as dropped.
- Assistant content parts ``output_text``/``output_audio`` read as ``text``/``audio`` in items and
  in ``response.content_part.*`` (whose parts the SDK already types ``text``/``audio``: both
  spellings are accepted, the beta one passes untouched).
- Client events are never dropped: every beta client event has a GA counterpart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from realtime_bridge.audio.formats import parse_beta_format, parse_ga_format
from realtime_bridge.errors import ClientError
from realtime_bridge.event_types import BETA_SERVER_EVENT_TYPES

__all__ = [
    "BETA_HEADER",
    "BETA_SERVER_EVENTS",
    "BETA_SUBPROTOCOL",
    "GA_ONLY_SERVER_EVENTS",
    "SERVER_EVENT_RENAMES",
    "TranslationResult",
    "beta_format_to_ga",
    "beta_session_to_ga",
    "beta_to_ga",
    "ga_format_to_beta",
    "ga_session_to_beta",
    "ga_to_beta",
    "is_beta_client_event",
    "is_beta_header_value",
    "is_beta_session_update",
    "offers_beta_subprotocol",
]

Event = dict[str, Any]

BETA_SUBPROTOCOL: Final = "openai-beta.realtime-v1"
BETA_HEADER: Final = ("OpenAI-Beta", "realtime=v1")

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

#: GA server event name → beta name (PROTOCOL §2). Events not listed keep their name.
SERVER_EVENT_RENAMES: Final[Mapping[str, str]] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}

#: GA server events with no beta counterpart (dropped; documentation and tests — the filter
#: itself is the allow-list ``BETA_SERVER_EVENTS``).
GA_ONLY_SERVER_EVENTS: Final = frozenset(
    {
        "conversation.item.done",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)

#: Every server event type a beta client can receive (kept with the other event-type lists).
BETA_SERVER_EVENTS: Final = BETA_SERVER_EVENT_TYPES

#: Field names that only the beta shape puts at the top of a session.
_BETA_SESSION_FIELDS: Final = frozenset(
    {
        "modalities",
        "input_audio_format",
        "output_audio_format",
        "voice",
        "turn_detection",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "temperature",
        "max_response_output_tokens",
        "speed",
    }
)
#: Field names that only the GA shape puts at the top of a session.
_GA_SESSION_FIELDS: Final = frozenset(
    {
        "type",
        "audio",
        "output_modalities",
        "max_output_tokens",
        "truncation",
        "prompt",
        "reasoning",
        "parallel_tool_calls",
    }
)
_BETA_RESPONSE_FIELDS: Final = frozenset(
    {"modalities", "output_audio_format", "voice", "max_response_output_tokens", "temperature"}
)
_GA_RESPONSE_FIELDS: Final = frozenset({"output_modalities", "audio", "max_output_tokens"})

#: GA session fields that have no beta counterpart; left out of beta session objects.
_GA_ONLY_SESSION_FIELDS: Final = frozenset(
    {"type", "prompt", "truncation", "reasoning", "parallel_tool_calls"}
)

# Assistant content part types (PROTOCOL §2).
_PART_TO_GA: Final[Mapping[str, str]] = {"text": "output_text", "audio": "output_audio"}
_PART_TO_BETA: Final[Mapping[str, str]] = {"output_text": "text", "output_audio": "audio"}

#: Item types beta knows; GA adds MCP item types a beta client cannot represent.
_BETA_ITEM_TYPES: Final = frozenset({"message", "function_call", "function_call_output"})

#: Keys each GA VAD type takes; beta accepted any mix, GA rejects the others.
_VAD_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "server_vad": frozenset(
        {
            "type",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "create_response",
            "interrupt_response",
            "idle_timeout_ms",
        }
    ),
    "semantic_vad": frozenset({"type", "eagerness", "create_response", "interrupt_response"}),
}

_MISSING: Final = object()


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def is_beta_header_value(value: str | None) -> bool:
    """Whether an ``OpenAI-Beta`` header value asks for the beta Realtime shape."""
    if not value:
        return False
    return any(part.strip().lower() == BETA_HEADER[1] for part in value.split(","))


def offers_beta_subprotocol(protocols: Iterable[str]) -> bool:
    """Whether the client offered the beta subprotocol (browsers cannot send the header)."""
    return any(p.strip() == BETA_SUBPROTOCOL for p in protocols)


def is_beta_session_update(event: Mapping[str, Any]) -> bool:
    """A ``session.update`` with beta field names and none that only GA has.

    Ambiguous updates (neither shape's telltales, e.g. only ``instructions``) are not beta: taking
    a GA client for beta would rename every event it receives, the costlier mistake.
    """
    if event.get("type") != "session.update":
        return False
    session = event.get("session")
    if not isinstance(session, Mapping):
        return False
    keys = session.keys()
    return _GA_SESSION_FIELDS.isdisjoint(keys) and not _BETA_SESSION_FIELDS.isdisjoint(keys)


def is_beta_client_event(event: Mapping[str, Any]) -> bool:
    """Any client event only the beta protocol has: a beta ``session.update``,
    ``transcription_session.update``, a ``response.create`` with beta override names, or beta
    assistant content part types (``text``/``audio``) in an item."""
    kind = event.get("type")
    if kind == "transcription_session.update":
        return True
    if kind == "session.update":
        return is_beta_session_update(event)
    if kind == "conversation.item.create":
        item = event.get("item")
        return isinstance(item, Mapping) and _has_beta_parts(item)
    if kind == "response.create":
        response = event.get("response")
        if not isinstance(response, Mapping):
            return False
        keys = response.keys()
        if _GA_RESPONSE_FIELDS.isdisjoint(keys) and not _BETA_RESPONSE_FIELDS.isdisjoint(keys):
            return True
        items = response.get("input")
        return isinstance(items, list) and any(
            isinstance(item, Mapping) and _has_beta_parts(item) for item in items
        )
    return False


def _has_beta_parts(item: Mapping[str, Any]) -> bool:
    content = item.get("content")
    if item.get("role") != "assistant" or not isinstance(content, list):
        return False
    return any(isinstance(p, Mapping) and _str(p.get("type")) in _PART_TO_GA for p in content)


# --------------------------------------------------------------------------------------------
# Value converters
# --------------------------------------------------------------------------------------------


def beta_format_to_ga(name: Any) -> Any:
    """Beta format name → GA format object; anything else is returned as is, for the format
    layer or the upstream to reject with a precise error rather than be silently rewritten."""
    try:
        return parse_beta_format(name, param="input_audio_format").to_ga()
    except ClientError:
        return name


def ga_format_to_beta(fmt: Any) -> str | None:
    """GA format object → beta name (any PCM rate reads ``pcm16``); None when beta has no name
    for it. A beta name is returned as is."""
    if isinstance(fmt, str):
        return fmt if _is_beta_format(fmt) else None
    try:
        return parse_ga_format(fmt, param="audio.input.format").to_beta()
    except ClientError:
        return None


def _is_beta_format(name: str) -> bool:
    try:
        parse_beta_format(name, param="input_audio_format")
    except ClientError:
        return False
    return True


def _modalities_to_ga(value: Any) -> Any:
    """GA allows one output modality; audio output always carries its transcript."""
    if isinstance(value, list):
        if "audio" in value:
            return ["audio"]
        if "text" in value:
            return ["text"]
    return value


def _modalities_to_beta(value: Any) -> Any:
    if isinstance(value, list) and "audio" in value:
        return ["audio", "text"]
    return value


def _voice_to_beta(value: Any) -> Any:
    """GA custom voices are objects ``{"id": ...}``; beta only knew voice names."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def _identity(value: Any) -> Any:
    return value


def _str(value: Any) -> str:
    """``value`` if it is a string, else ``""``: JSON may put anything where a name belongs."""
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class _Move:
    """One field that lives at ``beta`` in the beta shape and at ``ga`` (a path) in GA."""

    beta: str
    ga: tuple[str, ...]
    to_ga: Callable[[Any], Any] = _identity
    to_beta: Callable[[Any], Any] = _identity


_SESSION_MOVES: Final = (
    _Move("modalities", ("output_modalities",), _modalities_to_ga, _modalities_to_beta),
    _Move("input_audio_format", ("audio", "input", "format"), beta_format_to_ga, ga_format_to_beta),
    _Move("input_audio_noise_reduction", ("audio", "input", "noise_reduction")),
    _Move("input_audio_transcription", ("audio", "input", "transcription")),
    _Move("turn_detection", ("audio", "input", "turn_detection")),  # converted separately
    _Move(
        "output_audio_format", ("audio", "output", "format"), beta_format_to_ga, ga_format_to_beta
    ),
    _Move("voice", ("audio", "output", "voice"), _identity, _voice_to_beta),
    _Move("speed", ("audio", "output", "speed")),
    _Move("max_response_output_tokens", ("max_output_tokens",)),
)
_SESSION_REMOVED: Final = ("temperature", "client_secret")

_TRANSCRIPTION_MOVES: Final = tuple(m for m in _SESSION_MOVES if m.ga[:2] == ("audio", "input"))
_TRANSCRIPTION_REMOVED: Final = ("modalities", "client_secret")

#: Response-level overrides in ``response.create`` and response objects.
_RESPONSE_MOVES: Final = (
    _Move("modalities", ("output_modalities",), _modalities_to_ga, _modalities_to_beta),
    _Move(
        "output_audio_format", ("audio", "output", "format"), beta_format_to_ga, ga_format_to_beta
    ),
    _Move("voice", ("audio", "output", "voice"), _identity, _voice_to_beta),
    _Move("max_response_output_tokens", ("max_output_tokens",)),
)
_RESPONSE_REMOVED: Final = ("temperature",)


# --------------------------------------------------------------------------------------------
# Client → upstream (beta → GA)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """A client event in GA shape. ``event`` is the very input object when ``changed`` is false.

    ``dropped_fields`` names, as dotted paths, the beta fields GA has no place for, so the caller
    can debug-log them.
    """

    event: Event
    dropped_fields: tuple[str, ...] = ()
    changed: bool = False


def beta_to_ga(event: Event) -> TranslationResult:
    """Translate one beta client event for a GA upstream; unchanged events come back as is."""
    kind = event.get("type")
    if kind == "session.update":
        session = event.get("session")
        if isinstance(session, Mapping):
            new_session, dropped = beta_session_to_ga(session)
            return _result(event, "session", new_session, dropped)
    elif kind == "transcription_session.update":
        session = event.get("session")
        new_session, dropped = beta_session_to_ga(
            session if isinstance(session, Mapping) else {}, transcription=True
        )
        new_event = {**event, "type": "session.update", "session": new_session}
        return TranslationResult(new_event, dropped, True)
    elif kind == "response.create":
        response = event.get("response")
        if isinstance(response, Mapping):
            new_response, dropped = _beta_response_to_ga(response)
            return _result(event, "response", new_response, dropped)
    elif kind == "conversation.item.create":
        item = event.get("item")
        if isinstance(item, Mapping):
            new_item = _map_item_parts(item, _PART_TO_GA)
            if new_item is not item:
                return TranslationResult({**event, "item": new_item}, (), True)
    return TranslationResult(event)


def _result(
    event: Event, key: str, value: Mapping[str, Any], dropped: tuple[str, ...]
) -> TranslationResult:
    if value is event[key] or (not dropped and value == event[key]):
        return TranslationResult(event, dropped, False)  # forward the original frame
    return TranslationResult({**event, key: value}, dropped, True)


def beta_session_to_ga(
    session: Mapping[str, Any], *, transcription: bool = False
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A beta session object (realtime or transcription) in GA shape, and the dropped fields."""
    moves = _TRANSCRIPTION_MOVES if transcription else _SESSION_MOVES
    removed = _TRANSCRIPTION_REMOVED if transcription else _SESSION_REMOVED
    td_dropped: tuple[str, ...] = ()
    td = session.get("turn_detection")
    if isinstance(td, Mapping):
        new_td, extra = _turn_detection_to_ga(td)
        session = {**session, "turn_detection": new_td}
        td_dropped = tuple(f"session.turn_detection.{k}" for k in extra)
    out, dropped = _apply_moves_to_ga(session, moves, removed, "session")
    if "type" not in out:  # first, as the API writes it
        out = {"type": "transcription" if transcription else "realtime", **out}
    return out, td_dropped + dropped


def _beta_response_to_ga(response: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """``response.create`` overrides in GA shape; the same object when nothing is beta."""
    items = response.get("input")
    new_items = items
    if isinstance(items, list):
        mapped = [_map_item_parts(i, _PART_TO_GA) if isinstance(i, Mapping) else i for i in items]
        if any(a is not b for a, b in zip(mapped, items, strict=True)):
            new_items = mapped
    keys = response.keys()
    if _BETA_RESPONSE_FIELDS.isdisjoint(keys) and new_items is items:
        return response, ()
    out, dropped = _apply_moves_to_ga(response, _RESPONSE_MOVES, _RESPONSE_REMOVED, "response")
    if new_items is not items:
        out["input"] = new_items
    return out, dropped


def _apply_moves_to_ga(
    obj: Mapping[str, Any], moves: tuple[_Move, ...], removed: tuple[str, ...], prefix: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Copy ``obj`` with every beta field moved to its GA path (nested dicts copied, not shared)."""
    out: dict[str, Any] = dict(obj)
    dropped: list[str] = []
    if isinstance(out.get("audio"), Mapping):
        out["audio"] = {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in out["audio"].items()
        }
    for name in removed:
        if name in out:
            del out[name]
            dropped.append(f"{prefix}.{name}")
    for move in moves:
        if move.beta not in out:
            continue
        value = out.pop(move.beta)
        if not _set_path(out, move.ga, move.to_ga(value)):
            dropped.append(f"{prefix}.{move.beta}")
    return out, tuple(dropped)


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Set ``target[path]`` unless a value (the client's own GA field) is already there."""
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def _turn_detection_to_ga(td: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """GA requires ``type`` (beta defaulted to server VAD) and only the keys of that type."""
    out = dict(td)
    out.setdefault("type", "server_vad")
    allowed = _VAD_KEYS.get(_str(out["type"]))
    if allowed is None:
        return out, ()
    extra = tuple(k for k in out if k not in allowed)
    for key in extra:
        del out[key]
    return out, extra


def _map_item_parts(item: Mapping[str, Any], table: Mapping[str, str]) -> Mapping[str, Any]:
    """An assistant message with its content part types renamed; the same object if none are."""
    content = item.get("content")
    if item.get("role") != "assistant" or not isinstance(content, list):
        return item
    parts = [_map_part(p, table) for p in content]
    if all(a is b for a, b in zip(parts, content, strict=True)):
        return item
    return {**item, "content": parts}


def _map_part(part: Any, table: Mapping[str, str]) -> Any:
    if isinstance(part, Mapping):
        new_type = table.get(_str(part.get("type")))
        if new_type is not None:
            return {**part, "type": new_type}
    return part


# --------------------------------------------------------------------------------------------
# Upstream → client (GA → beta)
# --------------------------------------------------------------------------------------------


def ga_to_beta(event: Event) -> list[Event]:
    """Translate one GA server event for a beta client: 0, 1 or more beta events.

    ``[]`` means drop; ``[event]`` with the input object itself means forward it unchanged.
    """
    kind = event.get("type")
    if not isinstance(kind, str):
        return []
    beta_kind = SERVER_EVENT_RENAMES.get(kind, kind)
    handler = _PAYLOAD_HANDLERS.get(beta_kind)
    if handler is not None:
        return handler(event, beta_kind)
    if beta_kind not in BETA_SERVER_EVENTS:
        return []
    if beta_kind == kind:
        return [event]
    return [{**event, "type": beta_kind}]


def _session_event(event: Event, kind: str) -> list[Event]:
    session = event.get("session")
    if not isinstance(session, Mapping):
        return [event]
    if session.get("type") == "transcription":
        kind = "transcription_session." + kind.split(".", 1)[1]
    return [{**event, "type": kind, "session": ga_session_to_beta(session)}]


def _item_event(event: Event, kind: str) -> list[Event]:
    item = event.get("item")
    out: Event = {**event, "type": kind} if kind != event["type"] else event
    if kind == "conversation.item.created" and "previous_item_id" not in out:
        out = {**out, "previous_item_id": None}
    if isinstance(item, Mapping):
        if _str(item.get("type")) not in _BETA_ITEM_TYPES:
            return []
        new_item = _map_item_parts(item, _PART_TO_BETA)
        if new_item is not item:
            out = {**out, "item": new_item}
    return [out]


def _part_event(event: Event, kind: str) -> list[Event]:
    part = event.get("part")
    new_part = _map_part(part, _PART_TO_BETA)
    if new_part is part:
        return [event]
    return [{**event, "part": new_part}]


def _response_event(event: Event, kind: str) -> list[Event]:
    response = event.get("response")
    if not isinstance(response, Mapping):
        return [event]
    return [{**event, "response": _ga_response_to_beta(response)}]


_PAYLOAD_HANDLERS: Final[Mapping[str, Callable[[Event, str], list[Event]]]] = {
    "session.created": _session_event,
    "session.updated": _session_event,
    "conversation.item.created": _item_event,
    "conversation.item.retrieved": _item_event,
    "response.output_item.added": _item_event,
    "response.output_item.done": _item_event,
    "response.content_part.added": _part_event,
    "response.content_part.done": _part_event,
    "response.created": _response_event,
    "response.done": _response_event,
}


def ga_session_to_beta(session: Mapping[str, Any]) -> dict[str, Any]:
    """A GA session object (realtime or transcription) in the beta shape."""
    transcription = session.get("type") == "transcription"
    moves = _TRANSCRIPTION_MOVES if transcription else _SESSION_MOVES
    out = _apply_moves_to_beta(session, moves)
    for name in _GA_ONLY_SESSION_FIELDS:
        out.pop(name, None)
    td = out.get("turn_detection")
    if isinstance(td, Mapping) and transcription:
        # The beta transcription session reported only these VAD keys.
        out["turn_detection"] = {
            k: v
            for k, v in td.items()
            if k in {"type", "threshold", "prefix_padding_ms", "silence_duration_ms"}
        }
    if transcription:
        out["object"] = "realtime.transcription_session"
    else:
        tools = out.get("tools")
        if isinstance(tools, list):
            out["tools"] = [
                t for t in tools if not isinstance(t, Mapping) or t.get("type") == "function"
            ]
    return out


def _ga_response_to_beta(response: Mapping[str, Any]) -> dict[str, Any]:
    """A GA response object in beta shape: modalities, voice and format back at the top, items
    back to beta part types, GA-only (MCP) items left out."""
    moves = tuple(m for m in _RESPONSE_MOVES if m.beta != "max_response_output_tokens")
    out = _apply_moves_to_beta(response, moves)
    output = out.get("output")
    if isinstance(output, list):
        out["output"] = [
            _map_item_parts(i, _PART_TO_BETA) if isinstance(i, Mapping) else i
            for i in output
            if not isinstance(i, Mapping) or _str(i.get("type")) in _BETA_ITEM_TYPES
        ]
    return out


def _apply_moves_to_beta(obj: Mapping[str, Any], moves: tuple[_Move, ...]) -> dict[str, Any]:
    """Copy ``obj`` with every GA field moved to its beta place; the ``audio`` block is consumed
    (beta has nowhere to put what the table does not name)."""
    out = dict(obj)
    for move in moves:
        value = _get_path(obj, move.ga)
        if len(move.ga) == 1:
            out.pop(move.ga[0], None)
        if value is _MISSING:
            continue
        converted = move.to_beta(value)
        if converted is None and value is not None:
            continue  # beta cannot name it (e.g. an audio format): leave it out
        out[move.beta] = converted
    out.pop("audio", None)
    return out


def _get_path(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node
