"""Schema tests: what a beta client receives validates against the SDK's beta server events; what
the upstream receives validates against the SDK's GA client events and has no beta field names.

The SDK models accept extra keys and coerce types by default, so validation here is strict
(``strict=True``: no ``"0"`` for an int) and walks the parsed models for extra keys: a key the
schema does not declare fails unless it is on a short, justified allow-list.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.beta.realtime import TranscriptionSession as BetaTranscriptionSession
from openai.types.realtime import RealtimeClientEvent as GAClientEvent
from openai.types.realtime import RealtimeServerEvent as GAServerEvent
from openai.types.realtime import (
    RealtimeSessionCreateResponse,
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import TypeAdapter, ValidationError

from realtime_bridge.protocol.translate import (
    BETA_SERVER_EVENTS,
    beta_to_ga,
    ga_to_beta,
)
from tests.schema import undeclared_keys, validate_strict

from ._corpus import BETA_CLIENT_EVENTS, ga_only_events, ga_server_events

BETA_SERVER = TypeAdapter(BetaServerEvent)
GA_SERVER = TypeAdapter(GAServerEvent)
GA_CLIENT = TypeAdapter(GAClientEvent)

#: Keys a beta event may carry that the SDK's beta models do not declare. Each was sent by the
#: beta API itself (the SDK models omit them) or is a detail field beta clients ignore.
BETA_EXTRAS_ALLOWED = frozenset(
    {
        "session.object",  # "realtime.session" / "realtime.transcription_session"
        "session.expires_at",
        "session.include",
        "session.id",  # transcription session
        "session.input_audio_noise_reduction",  # transcription session
        "session.turn_detection.idle_timeout_ms",
        "name",  # response.function_call_arguments.done: GA adds the function's name
        "response.usage.input_token_details.image_tokens",
        "response.usage.input_token_details.cached_tokens_details",
    }
)

#: Beta-only names that must never reach a GA upstream, anywhere in an event.
BETA_FIELD_NAMES = frozenset(
    {
        "modalities",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "temperature",
        "max_response_output_tokens",
        "client_secret",
    }
)
#: Beta names that are legitimate in GA only below ``audio`` (not at a session/response's top).
BETA_TOP_LEVEL_NAMES = frozenset({"voice", "turn_detection", "speed"})


def validate_beta_server_event(event: dict[str, Any]) -> None:
    if event["type"] in {"transcription_session.created", "transcription_session.updated"}:
        # The SDK reuses the REST object here, which requires an ephemeral `client_secret`; the
        # WebSocket API never sent one. Validate the session alone with that gap filled in.
        session = dict(event["session"], client_secret={"expires_at": 0, "value": "ek_test"})
        model = BetaTranscriptionSession.model_validate(session, strict=True)
        extras = sorted(set(undeclared_keys(model, "session")) - BETA_EXTRAS_ALLOWED)
        assert not extras, extras
        if event["type"] == "transcription_session.updated":
            validate_strict(
                BETA_SERVER,
                dict(event, session=session),
                BETA_EXTRAS_ALLOWED | {"session.client_secret"},
            )
        return
    validate_strict(BETA_SERVER, event, BETA_EXTRAS_ALLOWED)


def _beta_names(event: dict[str, Any]) -> list[str]:
    """Beta field names anywhere in ``event`` (and beta-only names at a top-level object)."""
    found: list[str] = []

    def walk(value: Any, path: str, depth: int) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if key in BETA_FIELD_NAMES or (depth == 1 and key in BETA_TOP_LEVEL_NAMES):
                    found.append(f"{path}.{key}")
                walk(child, f"{path}.{key}", depth + 1)
        elif isinstance(value, list):
            for child in value:
                walk(child, path + "[]", depth + 1)

    walk(event, "", 0)
    return found


def _assistant_parts(event: dict[str, Any]) -> list[str]:
    items = [event.get("item"), *((event.get("response") or {}).get("input") or [])]
    return [
        part.get("type")
        for item in items
        if isinstance(item, dict) and item.get("role") == "assistant"
        for part in item.get("content", [])
    ]


# --- the corpus itself is real GA ---------------------------------------------------------------


@pytest.mark.parametrize("event", ga_server_events() + ga_only_events(), ids=lambda e: e["type"])
def test_corpus_is_valid_ga(event: dict[str, Any]) -> None:
    if event["type"] in {"session.created", "session.updated"}:
        # The SDK types these sessions as the *request* models; check the response object too.
        session = event["session"]
        if session["type"] == "transcription":
            RealtimeTranscriptionSessionCreateResponse.model_validate(session, strict=True)
        else:
            validate_strict(TypeAdapter(RealtimeSessionCreateResponse), session)
        GA_SERVER.validate_python(event, strict=True)
        return
    validate_strict(GA_SERVER, event)


# --- upstream → beta client ---------------------------------------------------------------------


@pytest.mark.parametrize("event", ga_server_events(), ids=lambda e: e["type"])
def test_every_translated_server_event_is_valid_beta(event: dict[str, Any]) -> None:
    original = copy.deepcopy(event)
    out = ga_to_beta(event)
    assert event == original, "the input must not be mutated"
    for beta in out:
        assert beta["type"] in BETA_SERVER_EVENTS
        validate_beta_server_event(beta)


def test_corpus_covers_every_translated_type() -> None:
    seen = {e["type"] for e in ga_server_events()}
    required = {
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "error",
        "rate_limits.updated",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    }
    assert required <= seen


@pytest.mark.parametrize("event", ga_only_events(), ids=lambda e: e["type"])
def test_ga_only_events_never_reach_a_beta_client(event: dict[str, Any]) -> None:
    assert ga_to_beta(event) == []


def test_audio_turn_reads_as_beta_names() -> None:
    types = [b["type"] for e in ga_server_events() for b in ga_to_beta(e)]
    for name in (
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.text.delta",
        "response.text.done",
        "conversation.item.created",
        "transcription_session.updated",
    ):
        assert name in types
    assert not [t for t in types if "output_audio" in t or "output_text" in t]


# --- beta client → upstream ---------------------------------------------------------------------


@pytest.mark.parametrize("event", BETA_CLIENT_EVENTS, ids=lambda e: e["type"])
def test_every_translated_client_event_is_valid_ga(event: dict[str, Any]) -> None:
    original = copy.deepcopy(event)
    result = beta_to_ga(event)
    assert event == original, "the input must not be mutated"
    validate_strict(GA_CLIENT, result.event)
    assert _beta_names(result.event) == []
    assert not {"text", "audio"} & set(_assistant_parts(result.event))


# --- the validation is strict enough ------------------------------------------------------------


def _audio_delta() -> dict[str, Any]:
    event = next(e for e in ga_server_events() if e["type"] == "response.output_audio.delta")
    (beta,) = ga_to_beta(event)
    return beta


def test_strict_validation_accepts_the_good_event() -> None:
    validate_beta_server_event(_audio_delta())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"type": "response.output_audio.delta"}, "a GA name is not a beta event"),
        ({"type": "response.audio.deltas"}, "an unknown type name"),
        ({"output_index": "0"}, "a string where the schema says int"),
        ({"output_index": 0.0}, "a float where the schema says int"),
        ({"delta": None}, "a null required field"),
    ],
)
def test_strict_validation_rejects_wrong_types(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError):
        validate_beta_server_event(_audio_delta() | change)


def test_strict_validation_rejects_a_missing_required_field() -> None:
    event = _audio_delta()
    del event["response_id"]
    with pytest.raises(ValidationError):
        validate_beta_server_event(event)


def test_strict_validation_rejects_ga_fields_in_a_beta_session() -> None:
    event = next(e for e in ga_server_events() if e["type"] == "session.created")
    (beta,) = ga_to_beta(event)
    with pytest.raises(AssertionError, match="output_modalities"):
        validate_beta_server_event(dict(beta, session=beta["session"] | {"output_modalities": []}))
    with pytest.raises(ValidationError):
        validate_beta_server_event(dict(beta, session=beta["session"] | {"modalities": "audio"}))
    # The untranslated GA event is not a beta event at all.
    with pytest.raises((ValidationError, AssertionError)):
        validate_beta_server_event(event)


def test_strict_validation_rejects_beta_part_types_upstream() -> None:
    event = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "x"}],
        },
    }
    with pytest.raises(ValidationError):
        validate_strict(GA_CLIENT, event)


def test_untranslated_beta_session_update_is_not_ga() -> None:
    from ._corpus import SEED_SESSION_UPDATE

    with pytest.raises((ValidationError, AssertionError)):
        validate_strict(GA_CLIENT, SEED_SESSION_UPDATE)
