"""A hand-built corpus of realistic events, shaped after the SDK models (PROTOCOL §3, §7).

GA server events follow ``openai.types.realtime`` (one audio turn, one text turn, a function call,
transcription, errors, GA-only events); beta client events follow ``openai.types.beta.realtime``
and the seed web client (PROTOCOL §7).
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]

SESSION_ID = "sess_C9Gd2s4xvzYKz8x4T1q2b"
RESP = "resp_C9Gd3kQ1mVbq0a8nHn2Zx"
ITEM_USER = "item_C9Gd3Ux5r0y2GqQe1pXyY"
ITEM_ASSISTANT = "item_C9Gd3kQ2BqZ8m1aK3lT0c"
ITEM_CALL = "item_C9Gd4aWm5s8jV0N2q7bRt"

_counter = 0


def _eid() -> str:
    global _counter
    _counter += 1
    return f"event_C9Gd{_counter:018d}"


def ga_realtime_session(**overrides: Any) -> Event:
    """A GA ``session`` as the API reports it in session.created/updated."""
    session: Event = {
        "type": "realtime",
        "object": "realtime.session",
        "id": SESSION_ID,
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "You are a helpful assistant.",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse"},
        ],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 1767225600,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 700,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }
    session.update(overrides)
    return session


def ga_transcription_session() -> Event:
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": "sess_C9GdT1",
        "expires_at": 1767225600,
        "include": ["item.input_audio_transcription.logprobs"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-transcribe", "prompt": "", "language": "en"},
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        },
    }


def _assistant_item(status: str, content: list[Event]) -> Event:
    return {
        "id": ITEM_ASSISTANT,
        "type": "message",
        "object": "realtime.item",
        "status": status,
        "role": "assistant",
        "content": content,
    }


_AUDIO_PART_DONE = {"type": "output_audio", "transcript": "Hello! How can I help?"}
_USER_ITEM = {
    "id": ITEM_USER,
    "type": "message",
    "object": "realtime.item",
    "status": "completed",
    "role": "user",
    "content": [{"type": "input_audio", "transcript": None}],
}
_CALL_ITEM = {
    "id": ITEM_CALL,
    "type": "function_call",
    "object": "realtime.item",
    "status": "completed",
    "name": "get_weather",
    "call_id": "call_8Hj2",
    "arguments": '{"city":"Paris"}',
}
_MCP_ITEM = {
    "id": "item_mcp1",
    "type": "mcp_call",
    "server_label": "docs",
    "name": "search",
    "arguments": "{}",
}
_USAGE = {
    "total_tokens": 253,
    "input_tokens": 161,
    "output_tokens": 92,
    "input_token_details": {
        "text_tokens": 119,
        "audio_tokens": 42,
        "image_tokens": 0,
        "cached_tokens": 0,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 30, "audio_tokens": 62},
}


def _response(status: str, output: list[Event], usage: Event | None) -> Event:
    return {
        "object": "realtime.response",
        "id": RESP,
        "status": status,
        "status_details": None,
        "output": output,
        "conversation_id": "conv_C9Gd",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
        "usage": usage,
        "metadata": None,
    }


def _ids(output_index: int = 0, content_index: int = 0) -> Event:
    return {
        "response_id": RESP,
        "item_id": ITEM_ASSISTANT,
        "output_index": output_index,
        "content_index": content_index,
    }


def ga_server_events() -> list[Event]:
    """Every GA server event type the translator handles, in realistic order and shape.

    Content parts in ``response.content_part.*`` use ``text``/``audio``, as the SDK types them
    (items use ``output_text``/``output_audio``); the translator accepts both spellings.
    """
    return [
        {"type": "session.created", "event_id": _eid(), "session": ga_realtime_session()},
        {"type": "session.updated", "event_id": _eid(), "session": ga_realtime_session()},
        {
            "type": "session.updated",
            "event_id": _eid(),
            "session": ga_realtime_session(
                output_modalities=["text"],
                audio={
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
                    },
                    "output": {"format": {"type": "audio/pcma"}, "voice": "marin"},
                },
            ),
        },
        {"type": "session.updated", "event_id": _eid(), "session": ga_transcription_session()},
        {"type": "conversation.created", "event_id": _eid(), "conversation": {"id": "conv_C9Gd"}},
        {"type": "input_audio_buffer.speech_started", "event_id": _eid(), "audio_start_ms": 1000}
        | {"item_id": ITEM_USER},
        {
            "type": "input_audio_buffer.speech_stopped",
            "event_id": _eid(),
            "audio_end_ms": 2700,
            "item_id": ITEM_USER,
        },
        {
            "type": "input_audio_buffer.committed",
            "event_id": _eid(),
            "previous_item_id": None,
            "item_id": ITEM_USER,
        },
        {"type": "input_audio_buffer.cleared", "event_id": _eid()},
        {
            "type": "conversation.item.added",
            "event_id": _eid(),
            "previous_item_id": None,
            "item": _USER_ITEM,
        },
        {"type": "conversation.item.done", "event_id": _eid(), "item": _USER_ITEM},
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "event_id": _eid(),
            "item_id": ITEM_USER,
            "content_index": 0,
            "delta": "Hello",
        },
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": _eid(),
            "item_id": ITEM_USER,
            "content_index": 0,
            "transcript": "Hello there.",
            "usage": {"type": "duration", "seconds": 1.7},
        },
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "event_id": _eid(),
            "item_id": ITEM_USER,
            "content_index": 0,
            "error": {
                "type": "transcription_error",
                "code": "audio_unintelligible",
                "message": "x",
            },
        },
        {
            "type": "response.created",
            "event_id": _eid(),
            "response": _response("in_progress", [], None),
        },
        {
            "type": "response.output_item.added",
            "event_id": _eid(),
            "response_id": RESP,
            "output_index": 0,
            "item": _assistant_item("in_progress", []),
        },
        {
            "type": "conversation.item.added",
            "event_id": _eid(),
            "previous_item_id": ITEM_USER,
            "item": _assistant_item("in_progress", []),
        },
        {
            "type": "response.content_part.added",
            "event_id": _eid(),
            **_ids(),
            "part": {"type": "audio", "transcript": ""},
        },
        {"type": "response.output_audio.delta", "event_id": _eid(), **_ids(), "delta": "AAAA"},
        {
            "type": "response.output_audio_transcript.delta",
            "event_id": _eid(),
            **_ids(),
            "delta": "Hello!",
        },
        {"type": "response.output_audio.done", "event_id": _eid(), **_ids()},
        {
            "type": "response.output_audio_transcript.done",
            "event_id": _eid(),
            **_ids(),
            "transcript": "Hello! How can I help?",
        },
        {
            "type": "response.content_part.done",
            "event_id": _eid(),
            **_ids(),
            "part": {"type": "audio", "transcript": "Hello! How can I help?"},
        },
        {
            "type": "response.output_item.done",
            "event_id": _eid(),
            "response_id": RESP,
            "output_index": 0,
            "item": _assistant_item("completed", [_AUDIO_PART_DONE]),
        },
        {
            "type": "conversation.item.done",
            "event_id": _eid(),
            "previous_item_id": ITEM_USER,
            "item": _assistant_item("completed", [_AUDIO_PART_DONE]),
        },
        {
            "type": "response.done",
            "event_id": _eid(),
            "response": _response(
                "completed", [_assistant_item("completed", [_AUDIO_PART_DONE])], _USAGE
            ),
        },
        {
            "type": "rate_limits.updated",
            "event_id": _eid(),
            "rate_limits": [
                {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                {"name": "tokens", "limit": 50000, "remaining": 49747, "reset_seconds": 0.3},
            ],
        },
        # A text turn.
        {
            "type": "response.content_part.added",
            "event_id": _eid(),
            **_ids(),
            "part": {"type": "text", "text": ""},
        },
        {"type": "response.output_text.delta", "event_id": _eid(), **_ids(), "delta": "Hi"},
        {"type": "response.output_text.done", "event_id": _eid(), **_ids(), "text": "Hi there"},
        {
            "type": "response.content_part.done",
            "event_id": _eid(),
            **_ids(),
            "part": {"type": "text", "text": "Hi there"},
        },
        {
            "type": "response.output_item.done",
            "event_id": _eid(),
            "response_id": RESP,
            "output_index": 0,
            "item": _assistant_item("completed", [{"type": "output_text", "text": "Hi there"}]),
        },
        # A function call.
        {
            "type": "response.output_item.added",
            "event_id": _eid(),
            "response_id": RESP,
            "output_index": 1,
            "item": _CALL_ITEM | {"status": "in_progress", "arguments": ""},
        },
        {
            "type": "response.function_call_arguments.delta",
            "event_id": _eid(),
            "response_id": RESP,
            "item_id": ITEM_CALL,
            "output_index": 1,
            "call_id": "call_8Hj2",
            "delta": '{"city":',
        },
        {
            "type": "response.function_call_arguments.done",
            "event_id": _eid(),
            "response_id": RESP,
            "item_id": ITEM_CALL,
            "output_index": 1,
            "call_id": "call_8Hj2",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "response.done",
            "event_id": _eid(),
            "response": _response("completed", [_CALL_ITEM, _MCP_ITEM], _USAGE),
        },
        # Other items and conversation events.
        {"type": "conversation.item.retrieved", "event_id": _eid(), "item": _USER_ITEM},
        {
            "type": "conversation.item.truncated",
            "event_id": _eid(),
            "item_id": ITEM_ASSISTANT,
            "content_index": 0,
            "audio_end_ms": 1500,
        },
        {"type": "conversation.item.deleted", "event_id": _eid(), "item_id": ITEM_USER},
        {
            "type": "error",
            "event_id": _eid(),
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "Invalid value",
                "param": "session.audio.output.voice",
                "event_id": "evt_1_1",
            },
        },
    ]


def ga_only_events() -> list[Event]:
    """GA server events with no beta counterpart; a beta client must never see them."""
    return [
        {"type": "conversation.item.done", "event_id": _eid(), "item": _USER_ITEM},
        {
            "type": "input_audio_buffer.timeout_triggered",
            "event_id": _eid(),
            "item_id": ITEM_USER,
            "audio_start_ms": 0,
            "audio_end_ms": 5000,
        },
        {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 1},
        {
            "type": "conversation.item.input_audio_transcription.segment",
            "event_id": _eid(),
            "item_id": ITEM_USER,
            "content_index": 0,
            "id": "seg_1",
            "speaker": "A",
            "text": "Hello",
            "start": 0.0,
            "end": 0.5,
        },
        {"type": "mcp_list_tools.in_progress", "event_id": _eid(), "item_id": "item_mcp0"},
        {"type": "mcp_list_tools.completed", "event_id": _eid(), "item_id": "item_mcp0"},
        {"type": "mcp_list_tools.failed", "event_id": _eid(), "item_id": "item_mcp0"},
        {
            "type": "response.mcp_call_arguments.delta",
            "event_id": _eid(),
            "response_id": RESP,
            "item_id": "item_mcp1",
            "output_index": 2,
            "delta": "{",
        },
        {
            "type": "response.mcp_call_arguments.done",
            "event_id": _eid(),
            "response_id": RESP,
            "item_id": "item_mcp1",
            "output_index": 2,
            "arguments": "{}",
        },
        {
            "type": "response.mcp_call.in_progress",
            "event_id": _eid(),
            "item_id": "item_mcp1",
            "output_index": 2,
        },
        {
            "type": "response.mcp_call.completed",
            "event_id": _eid(),
            "item_id": "item_mcp1",
            "output_index": 2,
        },
        {
            "type": "response.mcp_call.failed",
            "event_id": _eid(),
            "item_id": "item_mcp1",
            "output_index": 2,
        },
        {
            "type": "response.output_item.added",
            "event_id": _eid(),
            "response_id": RESP,
            "output_index": 2,
            "item": _MCP_ITEM,
        },
    ]


# --- beta client events -----------------------------------------------------------------------

#: The seed web client's session.update (PROTOCOL §7), with its event_id style.
SEED_SESSION_UPDATE: Event = {
    "type": "session.update",
    "session": {
        "modalities": ["audio", "text"],
        "voice": "alloy",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 700,
        },
    },
    "event_id": "evt_1767225600000_1",
}

#: A beta session.update using every beta session field.
FULL_BETA_SESSION_UPDATE: Event = {
    "type": "session.update",
    "event_id": "evt_full",
    "session": {
        "model": "gpt-realtime",
        "modalities": ["text"],
        "instructions": "Be brief.",
        "voice": "verse",
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": ""},
        "input_audio_noise_reduction": {"type": "far_field"},
        "turn_detection": {"type": "semantic_vad", "eagerness": "low", "create_response": True},
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": 4096,
        "speed": 1.1,
        "tracing": "auto",
    },
}

BETA_RESPONSE_CREATE: Event = {
    "type": "response.create",
    "event_id": "evt_rc",
    "response": {
        "modalities": ["audio", "text"],
        "instructions": "Answer in French.",
        "voice": "shimmer",
        "output_audio_format": "g711_ulaw",
        "temperature": 0.7,
        "max_response_output_tokens": 300,
        "conversation": "none",
        "metadata": {"topic": "greeting"},
        "tool_choice": "none",
        "input": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "Earlier I said hi."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Say it again."}],
            },
        ],
    },
}

#: The seed client's own response.create (its createResponse helper).
SEED_RESPONSE_CREATE: Event = {
    "type": "response.create",
    "response": {"modalities": ["audio", "text"]},
    "event_id": "evt_1767225600000_9",
}

BETA_ASSISTANT_ITEM_CREATE: Event = {
    "type": "conversation.item.create",
    "event_id": "evt_ic",
    "previous_item_id": None,
    "item": {
        "id": "item_client_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Hello, I am your assistant."},
            {"type": "audio", "transcript": "And this was audio."},
        ],
    },
}

BETA_TRANSCRIPTION_SESSION_UPDATE: Event = {
    "type": "transcription_session.update",
    "event_id": "evt_ts",
    "session": {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "prompt": "", "language": "en"},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
        },
        "input_audio_noise_reduction": {"type": "near_field"},
        "include": ["item.input_audio_transcription.logprobs"],
        "modalities": ["text"],
    },
}

#: Client events beta and GA share; they must pass through untouched.
PASS_THROUGH_CLIENT_EVENTS: list[Event] = [
    {"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "evt_1767225600000_2"},
    {"type": "input_audio_buffer.commit", "event_id": "evt_1767225600000_3"},
    {"type": "input_audio_buffer.clear", "event_id": "evt_1767225600000_4"},
    {"type": "response.cancel", "event_id": "evt_5", "response_id": RESP},
    {"type": "response.create"},
    {"type": "response.create", "response": {"instructions": "Go on."}},
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hello"}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_8Hj2", "output": '{"t":21}'},
    },
    {
        "type": "conversation.item.truncate",
        "item_id": ITEM_ASSISTANT,
        "content_index": 0,
        "audio_end_ms": 1200,
    },
    {"type": "conversation.item.delete", "item_id": ITEM_USER},
    {"type": "conversation.item.retrieve", "item_id": ITEM_USER},
    {"type": "output_audio_buffer.clear"},
]

BETA_CLIENT_EVENTS: list[Event] = [
    SEED_SESSION_UPDATE,
    FULL_BETA_SESSION_UPDATE,
    {"type": "session.update", "session": {"instructions": "Only instructions."}},
    BETA_RESPONSE_CREATE,
    SEED_RESPONSE_CREATE,
    BETA_ASSISTANT_ITEM_CREATE,
    BETA_TRANSCRIPTION_SESSION_UPDATE,
    *PASS_THROUGH_CLIENT_EVENTS,
]
