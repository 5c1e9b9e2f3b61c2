"""The session object: defaults, validation of ``session.update`` and of response overrides.

Validation happens before anything changes, so a bad update leaves the session as it was (as the
API does). Beta field names (``modalities``, ``voice``, ``input_audio_format``…) are simply
unknown parameters in GA and are rejected like the API rejects them.
"""

from __future__ import annotations

import copy
from typing import Any

from . import checks
from .apierror import ApiError, invalid_value, unknown_parameter
from .audio_io import FORMAT_TYPES, PCM

DEFAULT_INSTRUCTIONS = (
    "You are the local Realtime simulator: an offline stand-in for a voice assistant. "
    "You answer by quoting what you heard."
)
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
SESSION_TTL_S = 3600

SESSION_KEYS = (
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "tracing",
    "truncation",
    "prompt",
    "include",
    "reasoning",
    "parallel_tool_calls",
    # read-only fields a client may echo back from session.created
    "id",
    "object",
    "expires_at",
)
RESPONSE_KEYS = (
    "output_modalities",
    "instructions",
    "tools",
    "tool_choice",
    "conversation",
    "metadata",
    "input",
    "audio",
    "max_output_tokens",
    "prompt",
)
SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}


def default_session(*, session_id: str, model: str, created_at: int) -> dict[str, Any]:
    """The complete session object sent in ``session.created``."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": created_at + SESSION_TTL_S,
        "audio": {
            "input": {
                "format": {"type": PCM, "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {"format": {"type": PCM, "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


#: Session fields for which the API reads ``null`` as "leave it as it is". (For
#: ``turn_detection``, ``transcription``, ``noise_reduction``, ``tracing`` and ``prompt``, null
#: is a value: off, or none.)
NULL_IS_UNSET = frozenset(
    {"model", "instructions", "output_modalities", "tools", "tool_choice", "max_output_tokens"}
)


#: The transcriber a transcription session starts with.
DEFAULT_TRANSCRIPTION = {"model": "gpt-4o-transcribe", "language": None, "prompt": ""}


def default_transcription_session(
    *, session_id: str, model: str, created_at: int
) -> dict[str, Any]:
    """The session object of a transcription session (``?intent=transcription``): input only,
    a transcriber, server VAD; ``model`` is unused (the transcriber is the model)."""
    del model
    vad = {k: v for k, v in SERVER_VAD_DEFAULTS.items() if k not in _RESPONSE_VAD_KEYS}
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": created_at + SESSION_TTL_S,
        "audio": {
            "input": {
                "format": {"type": PCM, "rate": 24000},
                "transcription": dict(DEFAULT_TRANSCRIPTION),
                "noise_reduction": None,
                "turn_detection": vad,
            }
        },
        "include": None,
    }


_RESPONSE_VAD_KEYS = frozenset({"create_response", "interrupt_response", "idle_timeout_ms"})


def apply_transcription_update(current: dict[str, Any], update: object) -> dict[str, Any]:
    """A transcription session's ``session.update``: its type stays ``transcription``; only
    the input side and ``include`` may change."""
    patch = checks.obj(update, "session")
    checks.only_keys(patch, ("type", "audio", "include"), "session")
    checks.choice(checks.required(patch, "type", "session"), "session.type", ["transcription"])
    merged = copy.deepcopy(current)
    if "audio" in patch and patch["audio"] is not None:
        audio = checks.obj(patch["audio"], "session.audio")
        checks.only_keys(audio, ("input",), "session.audio")
        scratch = {"input": merged["audio"]["input"], "output": {}}
        _merge_audio(scratch, audio, "session.audio")
        merged["audio"]["input"] = scratch["input"]
        td = merged["audio"]["input"]["turn_detection"]
        if isinstance(td, dict):
            for key in _RESPONSE_VAD_KEYS:
                td.pop(key, None)
        if merged["audio"]["input"]["transcription"] is None:
            merged["audio"]["input"]["transcription"] = dict(DEFAULT_TRANSCRIPTION)
    if "include" in patch:
        merged["include"] = copy.deepcopy(patch["include"])
    return merged


def apply_session_update(current: dict[str, Any], update: object) -> dict[str, Any]:
    """The merged session after ``update`` (validated first; ``current`` is not modified)."""
    patch = checks.obj(update, "session")
    checks.only_keys(patch, SESSION_KEYS, "session")
    kind = checks.required(patch, "type", "session")
    if kind == "transcription":
        raise ApiError(
            "invalid_value",
            "The local simulator serves realtime sessions only; "
            "transcription sessions are not supported.",
            "session.type",
        )
    checks.choice(kind, "session.type", ["realtime"])
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        param = f"session.{key}"
        if key in ("id", "object", "expires_at", "type"):
            continue
        if value is None and key in NULL_IS_UNSET:
            continue  # as the API: a null here changes nothing (frameworks send them)
        if key == "audio":
            _merge_audio(merged["audio"], checks.obj(value, param), param)
        elif key == "model":
            merged["model"] = checks.string(value, param)
        elif key == "instructions":
            merged["instructions"] = checks.string(value, param)
        elif key == "output_modalities":
            merged["output_modalities"] = output_modalities(value, param)
        elif key == "tools":
            merged["tools"] = tools(value, param)
        elif key == "tool_choice":
            merged["tool_choice"] = tool_choice(value, param)
        elif key == "max_output_tokens":
            merged["max_output_tokens"] = max_output_tokens(value, param)
        else:  # tracing, truncation, prompt, include, reasoning, parallel_tool_calls: kept as sent
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_audio(audio: dict[str, Any], patch: dict[str, Any], param: str) -> None:
    checks.only_keys(patch, ("input", "output"), param)
    if "input" in patch:
        inp = checks.obj(patch["input"], f"{param}.input")
        checks.only_keys(
            inp, ("format", "transcription", "noise_reduction", "turn_detection"), f"{param}.input"
        )
        target = audio["input"]
        for key, value in inp.items():
            sub = f"{param}.input.{key}"
            if key == "format" and value is None:
                continue
            if key == "format":
                target["format"] = audio_format(value, sub)
            elif key == "turn_detection":
                target["turn_detection"] = turn_detection(value, sub)
            elif key == "transcription":
                target["transcription"] = transcription(value, sub)
            else:
                target["noise_reduction"] = noise_reduction(value, sub)
    if "output" in patch:
        out = checks.obj(patch["output"], f"{param}.output")
        checks.only_keys(out, ("format", "voice", "speed"), f"{param}.output")
        target = audio["output"]
        for key, value in out.items():
            sub = f"{param}.output.{key}"
            if value is None:
                continue  # format, voice, speed: null changes nothing
            if key == "format":
                target["format"] = audio_format(value, sub)
            elif key == "voice":
                target["voice"] = voice(value, sub)
            else:
                target["speed"] = checks.number(value, sub, minimum=0.25, maximum=1.5)


def audio_format(value: object, param: str) -> dict[str, Any]:
    """A GA format object; only 24 kHz for ``audio/pcm`` (the API's only rate)."""
    fmt = checks.obj(value, param)
    checks.only_keys(fmt, ("type", "rate"), param)
    kind = checks.choice(fmt.get("type", PCM), f"{param}.type", FORMAT_TYPES)
    if kind == PCM:
        rate = fmt.get("rate", 24000)
        if checks.integer(rate, f"{param}.rate") != 24000:
            raise invalid_value(f"{param}.rate", rate, ["24000"])
        return {"type": PCM, "rate": 24000}
    if "rate" in fmt:
        raise unknown_parameter(f"{param}.rate")
    return {"type": kind}


def turn_detection(value: object, param: str) -> dict[str, Any] | None:
    """Server or semantic VAD with every default filled in, or None (manual turns)."""
    if value is None:
        return None
    td = checks.obj(value, param)
    kind = checks.choice(
        checks.required(td, "type", param), f"{param}.type", ["server_vad", "semantic_vad"]
    )
    defaults = SERVER_VAD_DEFAULTS if kind == "server_vad" else SEMANTIC_VAD_DEFAULTS
    checks.only_keys(td, defaults, param)
    result = dict(defaults)
    for key, item in td.items():
        sub = f"{param}.{key}"
        if key == "threshold":
            result[key] = checks.number(item, sub, minimum=0.0, maximum=1.0)
        elif key in ("prefix_padding_ms", "silence_duration_ms"):
            result[key] = checks.integer(item, sub, minimum=0, maximum=10_000)
        elif key == "idle_timeout_ms":
            result[key] = None if item is None else checks.integer(item, sub, minimum=5000)
        elif key in ("create_response", "interrupt_response"):
            result[key] = checks.boolean(item, sub)
        elif key == "eagerness":
            result[key] = checks.choice(item, sub, ["low", "medium", "high", "auto"])
    return result


def transcription(value: object, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    tr = checks.obj(value, param)
    checks.only_keys(tr, ("model", "language", "prompt", "delay", "keywords", "languages"), param)
    result = copy.deepcopy(tr)
    result.setdefault("model", "whisper-1")
    checks.string(result["model"], f"{param}.model")
    return result


def noise_reduction(value: object, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    nr = checks.obj(value, param)
    checks.only_keys(nr, ("type", "strength"), param)
    if "type" in nr:
        checks.choice(nr["type"], f"{param}.type", ["near_field", "far_field"])
    return dict(nr)


def voice(value: object, param: str) -> str | dict[str, Any]:
    if isinstance(value, dict):
        checks.only_keys(value, ("id",), param)
        checks.string(checks.required(value, "id", param), f"{param}.id")
        return dict(value)
    return checks.string(value, param)


def output_modalities(value: object, param: str) -> list[str]:
    """``["audio"]`` or ``["text"]``: the API refuses both at once."""
    items = checks.array(value, param)
    for index, item in enumerate(items):
        checks.choice(item, f"{param}[{index}]", ["text", "audio"])
    if len(set(items)) != 1:
        raise ApiError(
            "invalid_value",
            "Invalid modalities: output_modalities must be either ['text'] or ['audio'].",
            param,
        )
    return [items[0]]


def tools(value: object, param: str) -> list[dict[str, Any]]:
    result = []
    for index, raw in enumerate(checks.array(value, param)):
        sub = f"{param}[{index}]"
        tool = checks.obj(raw, sub)
        kind = checks.choice(checks.required(tool, "type", sub), f"{sub}.type", ["function", "mcp"])
        if kind == "function":
            checks.only_keys(tool, ("type", "name", "description", "parameters"), sub)
            checks.string(checks.required(tool, "name", sub), f"{sub}.name")
            if "description" in tool:
                checks.string(tool["description"], f"{sub}.description")
            if "parameters" in tool:
                checks.obj(tool["parameters"], f"{sub}.parameters")
        result.append(copy.deepcopy(tool))
    return result


def tool_choice(value: object, param: str) -> str | dict[str, Any]:
    if isinstance(value, str):
        return checks.choice(value, param, ["auto", "none", "required"])
    choice = checks.obj(value, param)
    kind = checks.choice(
        checks.required(choice, "type", param), f"{param}.type", ["function", "mcp"]
    )
    if kind == "function":
        checks.only_keys(choice, ("type", "name"), param)
        checks.string(checks.required(choice, "name", param), f"{param}.name")
    return dict(choice)


def max_output_tokens(value: object, param: str) -> int | str:
    if value == "inf":
        return "inf"
    return checks.integer(value, param, minimum=1, maximum=4096)


def response_overrides(value: object) -> dict[str, Any]:
    """The validated ``response`` object of ``response.create`` (``input`` left to the core)."""
    if value is None:
        return {}
    params = checks.obj(value, "response")
    checks.only_keys(params, RESPONSE_KEYS, "response")
    result: dict[str, Any] = {}
    for key, item in params.items():
        param = f"response.{key}"
        if item is None:
            continue  # as the API: a null override is no override (LiveKit sends them)
        if key == "output_modalities":
            result[key] = output_modalities(item, param)
        elif key == "instructions":
            result[key] = checks.string(item, param)
        elif key == "tools":
            result[key] = tools(item, param)
        elif key == "tool_choice":
            result[key] = tool_choice(item, param)
        elif key == "conversation":
            result[key] = checks.choice(item, param, ["auto", "none"])
        elif key == "metadata":
            result[key] = _metadata(item, param)
        elif key == "input":
            result[key] = checks.array(item, param)
        elif key == "max_output_tokens":
            result[key] = max_output_tokens(item, param)
        elif key == "audio":
            audio = checks.obj(item, param)
            checks.only_keys(audio, ("output",), param)
            out = checks.obj(audio.get("output", {}), f"{param}.output")
            checks.only_keys(out, ("format", "voice"), f"{param}.output")
            parsed: dict[str, Any] = {}
            if "format" in out:
                parsed["format"] = audio_format(out["format"], f"{param}.output.format")
            if "voice" in out:
                parsed["voice"] = voice(out["voice"], f"{param}.output.voice")
            result[key] = {"output": parsed}
        else:
            result[key] = copy.deepcopy(item)
    return result


def _metadata(value: object, param: str) -> dict[str, str] | None:
    if value is None:
        return None
    meta = checks.obj(value, param)
    if len(meta) > 16:
        raise ApiError("invalid_value", "Metadata can have at most 16 keys.", param)
    for key, item in meta.items():
        checks.string(item, f"{param}.{key}")
    return dict(meta)
