"""Table tests for every mapping of PROTOCOL §2, both directions, plus detection and identity."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_bridge.protocol.translate import (
    BETA_SERVER_EVENTS,
    BETA_SUBPROTOCOL,
    GA_ONLY_SERVER_EVENTS,
    SERVER_EVENT_RENAMES,
    beta_format_to_ga,
    beta_session_to_ga,
    beta_to_ga,
    ga_format_to_beta,
    ga_session_to_beta,
    ga_to_beta,
    is_beta_client_event,
    is_beta_header_value,
    is_beta_session_update,
    offers_beta_subprotocol,
)

from ._corpus import (
    BETA_ASSISTANT_ITEM_CREATE,
    BETA_RESPONSE_CREATE,
    BETA_TRANSCRIPTION_SESSION_UPDATE,
    FULL_BETA_SESSION_UPDATE,
    PASS_THROUGH_CLIENT_EVENTS,
    SEED_SESSION_UPDATE,
    ga_realtime_session,
)

PCM = {"type": "audio/pcm", "rate": 24000}
PCMU = {"type": "audio/pcmu"}
PCMA = {"type": "audio/pcma"}
SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300}
TRANSCRIPTION = {"model": "whisper-1", "language": "en"}


def _get(obj: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        obj = obj[key]
    return obj


def _ga_session(path: str, value: Any) -> dict[str, Any]:
    session: dict[str, Any] = {"type": "realtime"}
    node = session
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return session


# --- event names ----------------------------------------------------------------------------------

EVENT_NAME_ROWS = [
    ("response.output_audio.delta", "response.audio.delta"),
    ("response.output_audio.done", "response.audio.done"),
    ("response.output_audio_transcript.delta", "response.audio_transcript.delta"),
    ("response.output_audio_transcript.done", "response.audio_transcript.done"),
    ("response.output_text.delta", "response.text.delta"),
    ("response.output_text.done", "response.text.done"),
    ("conversation.item.added", "conversation.item.created"),
]


def test_rename_table_is_the_protocol_table() -> None:
    assert dict(EVENT_NAME_ROWS) == dict(SERVER_EVENT_RENAMES)


@pytest.mark.parametrize(("ga", "beta"), EVENT_NAME_ROWS)
def test_event_names_ga_to_beta(ga: str, beta: str) -> None:
    event: dict[str, Any] = {
        "type": ga,
        "event_id": "e1",
        "response_id": "r",
        "item_id": "i",
        "delta": "AAAA",
    }
    if ga == "conversation.item.added":
        event = {"type": ga, "event_id": "e1", "item": {"type": "message", "role": "user"}}
    (out,) = ga_to_beta(event)
    assert out["type"] == beta
    assert {k: v for k, v in out.items() if k not in {"type", "previous_item_id"}} == {
        k: v for k, v in event.items() if k != "type"
    }
    assert event["type"] == ga, "input not mutated"


def test_item_added_gets_previous_item_id() -> None:
    event = {"type": "conversation.item.added", "event_id": "e", "item": {"type": "message"}}
    (out,) = ga_to_beta(event)
    assert out["previous_item_id"] is None
    event["previous_item_id"] = "item_0"
    assert ga_to_beta(event)[0]["previous_item_id"] == "item_0"


@pytest.mark.parametrize("name", sorted(GA_ONLY_SERVER_EVENTS))
def test_ga_only_events_are_dropped(name: str) -> None:
    assert ga_to_beta({"type": name, "event_id": "e"}) == []


@pytest.mark.parametrize(
    "event",
    [
        {"type": "some.future_event", "event_id": "e"},
        {"type": 42},
        {"event_id": "no type"},
    ],
)
def test_unknown_events_are_dropped_for_beta_clients(event: dict[str, Any]) -> None:
    assert ga_to_beta(event) == []


@pytest.mark.parametrize(
    "event",
    [
        {"type": "error", "event_id": "e", "error": {"type": "invalid_request_error"}},
        {"type": "rate_limits.updated", "event_id": "e", "rate_limits": []},
        {"type": "input_audio_buffer.committed", "event_id": "e", "item_id": "i"},
        {"type": "input_audio_buffer.speech_started", "event_id": "e", "item_id": "i"},
        {"type": "response.function_call_arguments.delta", "event_id": "e", "delta": "{"},
        {"type": "conversation.item.input_audio_transcription.completed", "transcript": "hi"},
        {"type": "conversation.item.truncated", "event_id": "e", "item_id": "i"},
        {"type": "conversation.created", "event_id": "e", "conversation": {"id": "c"}},
        {"type": "response.content_part.added", "part": {"type": "audio", "transcript": ""}},
        {"type": "response.output_item.added", "item": {"type": "function_call", "name": "f"}},
    ],
    ids=lambda e: str(e.get("type")),
)
def test_shared_server_events_are_the_same_object(event: dict[str, Any]) -> None:
    out = ga_to_beta(event)
    assert len(out) == 1
    assert out[0] is event


def test_beta_event_set_has_no_ga_names() -> None:
    assert not BETA_SERVER_EVENTS & set(SERVER_EVENT_RENAMES)
    assert not BETA_SERVER_EVENTS & GA_ONLY_SERVER_EVENTS


# --- session fields -------------------------------------------------------------------------------

#: (beta field, beta value, GA path, GA value) — each row is checked in both directions.
SESSION_ROWS: list[tuple[str, Any, str, Any]] = [
    ("modalities", ["audio", "text"], "output_modalities", ["audio"]),
    ("modalities", ["text"], "output_modalities", ["text"]),
    ("input_audio_format", "pcm16", "audio.input.format", PCM),
    ("input_audio_format", "g711_ulaw", "audio.input.format", PCMU),
    ("input_audio_format", "g711_alaw", "audio.input.format", PCMA),
    ("output_audio_format", "pcm16", "audio.output.format", PCM),
    ("output_audio_format", "g711_ulaw", "audio.output.format", PCMU),
    ("output_audio_format", "g711_alaw", "audio.output.format", PCMA),
    ("voice", "alloy", "audio.output.voice", "alloy"),
    ("speed", 1.25, "audio.output.speed", 1.25),
    ("turn_detection", SERVER_VAD, "audio.input.turn_detection", SERVER_VAD),
    ("turn_detection", None, "audio.input.turn_detection", None),
    ("input_audio_transcription", TRANSCRIPTION, "audio.input.transcription", TRANSCRIPTION),
    ("input_audio_transcription", None, "audio.input.transcription", None),
    (
        "input_audio_noise_reduction",
        {"type": "near_field"},
        "audio.input.noise_reduction",
        {"type": "near_field"},
    ),
    ("max_response_output_tokens", 4096, "max_output_tokens", 4096),
    ("max_response_output_tokens", "inf", "max_output_tokens", "inf"),
]


@pytest.mark.parametrize(("beta", "beta_value", "ga", "ga_value"), SESSION_ROWS)
def test_session_field_beta_to_ga(beta: str, beta_value: Any, ga: str, ga_value: Any) -> None:
    event = {"type": "session.update", "session": {beta: beta_value}}
    result = beta_to_ga(event)
    assert result.changed
    assert result.dropped_fields == ()
    assert result.event["session"] == _ga_session(ga, ga_value)
    assert event == {"type": "session.update", "session": {beta: beta_value}}


@pytest.mark.parametrize(("beta", "beta_value", "ga", "ga_value"), SESSION_ROWS)
def test_session_field_ga_to_beta(beta: str, beta_value: Any, ga: str, ga_value: Any) -> None:
    session = _ga_session(ga, ga_value) | {"object": "realtime.session", "id": "sess_1"}
    (out,) = ga_to_beta({"type": "session.updated", "event_id": "e", "session": session})
    assert out["type"] == "session.updated"
    assert out["session"] == {"object": "realtime.session", "id": "sess_1", beta: beta_value}


def test_session_type_is_added_first() -> None:
    session = beta_to_ga(SEED_SESSION_UPDATE).event["session"]
    assert next(iter(session)) == "type"
    assert session["type"] == "realtime"


def test_beta_audio_only_modality_reads_as_audio() -> None:
    event = {"type": "session.update", "session": {"modalities": ["audio"]}}
    assert beta_to_ga(event).event["session"]["output_modalities"] == ["audio"]


@pytest.mark.parametrize("removed", ["temperature", "client_secret"])
def test_fields_ga_removed_are_dropped_and_reported(removed: str) -> None:
    event = {"type": "session.update", "session": {"voice": "ash", removed: 0.8}}
    result = beta_to_ga(event)
    assert removed not in result.event["session"]
    assert result.dropped_fields == (f"session.{removed}",)


def test_seed_client_session_update() -> None:
    result = beta_to_ga(SEED_SESSION_UPDATE)
    assert result.event == {
        "type": "session.update",
        "event_id": "evt_1767225600000_1",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": PCM,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 700,
                    },
                },
                "output": {"format": PCM, "voice": "alloy"},
            },
        },
    }
    assert result.dropped_fields == ()


def test_full_beta_session_update_keeps_shared_fields() -> None:
    session = beta_to_ga(FULL_BETA_SESSION_UPDATE).event["session"]
    for shared in ("model", "instructions", "tools", "tool_choice", "tracing"):
        assert session[shared] == FULL_BETA_SESSION_UPDATE["session"][shared]


def test_turn_detection_gets_a_type_and_only_its_keys() -> None:
    event = {
        "type": "session.update",
        "session": {"turn_detection": {"threshold": 0.6}},
    }
    assert beta_to_ga(event).event["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.6,
    }
    event = {
        "type": "session.update",
        "session": {
            "turn_detection": {"type": "semantic_vad", "eagerness": "high", "threshold": 1}
        },
    }
    result = beta_to_ga(event)
    assert result.event["session"]["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "high",
    }
    assert result.dropped_fields == ("session.turn_detection.threshold",)


def test_client_ga_value_wins_over_its_beta_twin() -> None:
    session = {"voice": "ash", "audio": {"output": {"voice": "marin"}}}
    result = beta_session_to_ga(session)
    assert result == (
        {"type": "realtime", "audio": {"output": {"voice": "marin"}}},
        ("session.voice",),
    )
    assert session == {"voice": "ash", "audio": {"output": {"voice": "marin"}}}


def test_ga_shaped_session_update_from_a_beta_client_is_forwarded_as_is() -> None:
    event = {"type": "session.update", "session": {"type": "realtime", "instructions": "Hi"}}
    result = beta_to_ga(event)
    assert result.event is event
    assert not result.changed


def test_empty_session_update_gets_a_type() -> None:
    event = {"type": "session.update", "session": {"instructions": "Hi"}}
    assert beta_to_ga(event).event["session"] == {"type": "realtime", "instructions": "Hi"}


def test_ga_session_drops_ga_only_fields_and_mcp_tools() -> None:
    beta = ga_session_to_beta(ga_realtime_session())
    for ga_only in (
        "type",
        "audio",
        "output_modalities",
        "max_output_tokens",
        "truncation",
        "prompt",
    ):
        assert ga_only not in beta
    assert [t["type"] for t in beta["tools"]] == ["function"]


# --- audio formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(("beta", "ga"), [("pcm16", PCM), ("g711_ulaw", PCMU), ("g711_alaw", PCMA)])
def test_format_table(beta: str, ga: dict[str, Any]) -> None:
    assert beta_format_to_ga(beta) == ga
    assert ga_format_to_beta(ga) == beta


def test_any_pcm_rate_reads_as_pcm16() -> None:
    assert ga_format_to_beta({"type": "audio/pcm", "rate": 16000}) == "pcm16"
    assert ga_format_to_beta({"type": "audio/pcm"}) == "pcm16"


def test_unknown_formats() -> None:
    assert beta_format_to_ga("opus") == "opus"  # up unchanged, for a precise error
    assert ga_format_to_beta({"type": "audio/opus"}) is None
    session = {"type": "realtime", "audio": {"input": {"format": {"type": "audio/opus"}}}}
    assert "input_audio_format" not in ga_session_to_beta(session)


def test_voice_object_reads_as_its_id() -> None:
    session = {"type": "realtime", "audio": {"output": {"voice": {"id": "voice_123"}}}}
    assert ga_session_to_beta(session)["voice"] == "voice_123"


# --- transcription sessions -----------------------------------------------------------------------


def test_transcription_session_update_becomes_a_ga_session_update() -> None:
    result = beta_to_ga(BETA_TRANSCRIPTION_SESSION_UPDATE)
    beta = BETA_TRANSCRIPTION_SESSION_UPDATE["session"]
    assert result.changed
    assert result.event == {
        "type": "session.update",
        "event_id": "evt_ts",
        "session": {
            "type": "transcription",
            "include": beta["include"],
            "audio": {
                "input": {
                    "format": PCM,
                    "noise_reduction": beta["input_audio_noise_reduction"],
                    "transcription": beta["input_audio_transcription"],
                    "turn_detection": beta["turn_detection"],
                }
            },
        },
    }
    assert result.dropped_fields == ("session.modalities",)


@pytest.mark.parametrize(
    ("ga", "beta"),
    [
        ("session.created", "transcription_session.created"),
        ("session.updated", "transcription_session.updated"),
    ],
)
def test_transcription_sessions_read_as_beta_transcription_events(ga: str, beta: str) -> None:
    session = {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": "sess_t",
        "audio": {
            "input": {
                "format": PCMU,
                "transcription": TRANSCRIPTION,
                "turn_detection": SERVER_VAD | {"create_response": True, "idle_timeout_ms": None},
                "noise_reduction": None,
            }
        },
    }
    (out,) = ga_to_beta({"type": ga, "event_id": "e", "session": session})
    assert out["type"] == beta
    assert out["session"] == {
        "object": "realtime.transcription_session",
        "id": "sess_t",
        "input_audio_format": "g711_ulaw",
        "input_audio_transcription": TRANSCRIPTION,
        "turn_detection": SERVER_VAD,
        "input_audio_noise_reduction": None,
    }


# --- response.create overrides and response objects -----------------------------------------------

RESPONSE_ROWS: list[tuple[str, Any, str, Any]] = [
    ("modalities", ["audio", "text"], "output_modalities", ["audio"]),
    ("modalities", ["text"], "output_modalities", ["text"]),
    ("voice", "coral", "audio.output.voice", "coral"),
    ("output_audio_format", "g711_ulaw", "audio.output.format", PCMU),
    ("output_audio_format", "pcm16", "audio.output.format", PCM),
    ("max_response_output_tokens", 200, "max_output_tokens", 200),
]


@pytest.mark.parametrize(("beta", "beta_value", "ga", "ga_value"), RESPONSE_ROWS)
def test_response_create_overrides(beta: str, beta_value: Any, ga: str, ga_value: Any) -> None:
    event = {"type": "response.create", "response": {beta: beta_value, "instructions": "x"}}
    result = beta_to_ga(event)
    assert result.changed
    response = result.event["response"]
    assert beta not in response
    assert _get(response, ga) == ga_value
    assert response["instructions"] == "x"


def test_response_create_drops_temperature() -> None:
    result = beta_to_ga(BETA_RESPONSE_CREATE)
    assert "temperature" not in result.event["response"]
    assert result.dropped_fields == ("response.temperature",)
    assert result.event["response"]["input"][0]["content"][0]["type"] == "output_text"
    assert result.event["response"]["input"][1] is BETA_RESPONSE_CREATE["response"]["input"][1]


@pytest.mark.parametrize(
    ("ga", "ga_value", "beta", "beta_value"),
    [
        ("output_modalities", ["audio"], "modalities", ["audio", "text"]),
        ("output_modalities", ["text"], "modalities", ["text"]),
        ("audio.output.voice", "alloy", "voice", "alloy"),
        ("audio.output.format", PCMA, "output_audio_format", "g711_alaw"),
        ("max_output_tokens", "inf", "max_output_tokens", "inf"),
    ],
)
@pytest.mark.parametrize("kind", ["response.created", "response.done"])
def test_response_objects_ga_to_beta(
    kind: str, ga: str, ga_value: Any, beta: str, beta_value: Any
) -> None:
    response = _ga_session(ga, ga_value)
    del response["type"]
    response |= {"object": "realtime.response", "id": "resp_1", "status": "in_progress"}
    (out,) = ga_to_beta({"type": kind, "event_id": "e", "response": response})
    assert out["response"] == {
        "object": "realtime.response",
        "id": "resp_1",
        "status": "in_progress",
        beta: beta_value,
    }


def test_response_output_items_read_as_beta_and_mcp_items_are_left_out() -> None:
    response = {
        "id": "resp_1",
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_audio"}]},
            {"type": "mcp_call", "name": "search"},
            {"type": "function_call", "name": "f", "arguments": "{}"},
        ],
    }
    (out,) = ga_to_beta({"type": "response.done", "event_id": "e", "response": response})
    assert out["response"]["output"] == [
        {"type": "message", "role": "assistant", "content": [{"type": "audio"}]},
        {"type": "function_call", "name": "f", "arguments": "{}"},
    ]


# --- content parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("beta", "ga"), [("text", "output_text"), ("audio", "output_audio")])
def test_assistant_parts_beta_to_ga(beta: str, ga: str) -> None:
    event: dict[str, Any] = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "assistant", "content": [{"type": beta, beta: "x"}]},
    }
    result = beta_to_ga(event)
    assert result.event["item"]["content"] == [{"type": ga, beta: "x"}]
    assert event["item"]["content"][0]["type"] == beta


@pytest.mark.parametrize(("beta", "ga"), [("text", "output_text"), ("audio", "output_audio")])
@pytest.mark.parametrize(
    "kind",
    [
        "conversation.item.added",
        "conversation.item.retrieved",
        "response.output_item.added",
        "response.output_item.done",
    ],
)
def test_assistant_parts_ga_to_beta(kind: str, beta: str, ga: str) -> None:
    item = {"type": "message", "role": "assistant", "content": [{"type": ga}]}
    (out,) = ga_to_beta({"type": kind, "event_id": "e", "item": item})
    assert out["item"]["content"] == [{"type": beta}]
    assert item["content"] == [{"type": ga}]


@pytest.mark.parametrize(("beta", "ga"), [("text", "output_text"), ("audio", "output_audio")])
@pytest.mark.parametrize("kind", ["response.content_part.added", "response.content_part.done"])
def test_content_part_events_ga_to_beta(kind: str, beta: str, ga: str) -> None:
    (out,) = ga_to_beta({"type": kind, "event_id": "e", "part": {"type": ga, "transcript": ""}})
    assert out == {"type": kind, "event_id": "e", "part": {"type": beta, "transcript": ""}}


@pytest.mark.parametrize("part", ["input_text", "input_audio"])
def test_user_parts_are_unchanged(part: str) -> None:
    event = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": part}]},
    }
    result = beta_to_ga(event)
    assert result.event is event
    assert not result.changed
    server_event = {"type": "conversation.item.created", "event_id": "e", "item": event["item"]}
    (out,) = ga_to_beta(server_event | {"previous_item_id": None})
    assert out["item"] is event["item"]


def test_assistant_item_create() -> None:
    result = beta_to_ga(BETA_ASSISTANT_ITEM_CREATE)
    assert [p["type"] for p in result.event["item"]["content"]] == ["output_text", "output_audio"]
    assert result.event["previous_item_id"] is None


def test_items_of_ga_only_types_are_dropped() -> None:
    for kind in ("conversation.item.added", "response.output_item.added"):
        assert ga_to_beta({"type": kind, "event_id": "e", "item": {"type": "mcp_call"}}) == []


def test_conversation_item_done_is_dropped() -> None:
    """Decision: beta clients get one conversation.item.created per item (from .added)."""
    item = {"type": "message", "role": "assistant", "content": [{"type": "output_audio"}]}
    assert ga_to_beta({"type": "conversation.item.done", "event_id": "e", "item": item}) == []


# --- client pass-through --------------------------------------------------------------------------


@pytest.mark.parametrize("event", PASS_THROUGH_CLIENT_EVENTS, ids=lambda e: e["type"])
def test_shared_client_events_are_the_same_object(event: dict[str, Any]) -> None:
    result = beta_to_ga(event)
    assert result.event is event
    assert not result.changed
    assert result.dropped_fields == ()


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (SEED_SESSION_UPDATE["session"], True),
        (FULL_BETA_SESSION_UPDATE["session"], True),
        ({"voice": "alloy"}, True),
        ({"temperature": 0.8}, True),
        ({"input_audio_transcription": None}, True),
        ({"type": "realtime", "audio": {"output": {"voice": "alloy"}}}, False),
        ({"type": "realtime", "voice": "alloy"}, False),  # mixed: GA telltale wins
        ({"output_modalities": ["text"], "modalities": ["text"]}, False),
        ({"instructions": "ambiguous"}, False),
        ({}, False),
    ],
)
def test_is_beta_session_update(session: dict[str, Any], expected: bool) -> None:
    assert is_beta_session_update({"type": "session.update", "session": session}) is expected


def test_is_beta_session_update_needs_a_session_update() -> None:
    assert not is_beta_session_update({"type": "response.create", "response": {"voice": "a"}})
    assert not is_beta_session_update({"type": "session.update", "session": "nope"})
    assert not is_beta_session_update({"type": "session.update"})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (SEED_SESSION_UPDATE, True),
        (BETA_TRANSCRIPTION_SESSION_UPDATE, True),
        (BETA_RESPONSE_CREATE, True),
        (BETA_ASSISTANT_ITEM_CREATE, True),
        ({"type": "response.create", "response": {"modalities": ["text"]}}, True),
        ({"type": "response.create", "response": {"output_modalities": ["text"]}}, False),
        ({"type": "response.create", "response": {"instructions": "x"}}, False),
        ({"type": "response.create"}, False),
        (
            {
                "type": "response.create",
                "response": {
                    "input": [
                        {"type": "message", "role": "assistant", "content": [{"type": "text"}]}
                    ]
                },
            },
            True,
        ),
        *[(e, False) for e in PASS_THROUGH_CLIENT_EVENTS],
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else str(v),
)
def test_is_beta_client_event(event: dict[str, Any], expected: bool) -> None:
    assert is_beta_client_event(event) is expected


def test_handshake_telltales() -> None:
    assert BETA_SUBPROTOCOL == "openai-beta.realtime-v1"
    assert is_beta_header_value("realtime=v1")
    assert is_beta_header_value("assistants=v2, realtime=v1")
    assert not is_beta_header_value(None)
    assert not is_beta_header_value("")
    assert not is_beta_header_value("assistants=v2")
    assert offers_beta_subprotocol(["realtime", BETA_SUBPROTOCOL])
    assert not offers_beta_subprotocol(["realtime", "openai-insecure-api-key.sk-x"])


# --- robustness: any JSON, never an exception, never a mutation -----------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "role",
                    "content",
                    "audio",
                    "input",
                    "output",
                    "format",
                    "voice",
                    "modalities",
                    "turn_detection",
                    "item",
                    "part",
                    "session",
                    "response",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
_type_names = st.sampled_from(
    sorted(
        {
            "session.update",
            "transcription_session.update",
            "response.create",
            "conversation.item.create",
            "session.created",
            "session.updated",
            "response.created",
            "response.done",
            "response.content_part.added",
            "response.output_item.done",
            *SERVER_EVENT_RENAMES,
            *GA_ONLY_SERVER_EVENTS,
        }
    )
)


@settings(max_examples=300, deadline=None)
@given(
    kind=_type_names,
    payload=st.dictionaries(
        st.sampled_from(["session", "response", "item", "part", "event_id"]), _json, max_size=3
    ),
)
def test_translation_never_raises_or_mutates(kind: str, payload: dict[str, Any]) -> None:
    event = {"type": kind, **payload}
    before = copy.deepcopy(event)
    is_beta_client_event(event)
    is_beta_session_update(event)
    result = beta_to_ga(event)
    assert (result.event is event) is not result.changed
    for out in ga_to_beta(event):
        assert out["type"] in BETA_SERVER_EVENTS
    assert event == before
