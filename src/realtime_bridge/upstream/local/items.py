"""Conversation items: validation of client-supplied items and their wire shapes.

Items are kept as GA JSON objects. Audio bytes are never echoed in ``conversation.item.added`` /
``.done`` (the API omits them there); ``conversation.item.retrieved`` includes them.
"""

from __future__ import annotations

import copy
from typing import Any

from . import checks
from .apierror import ApiError
from .ids import new_id

CONTENT_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text", "output_audio"),
    "system": ("input_text",),
}
ITEM_TYPES = ("message", "function_call", "function_call_output")
_COMMON = ("id", "type", "object", "status")


def validate_item(raw: object, param: str = "item") -> dict[str, Any]:
    """A complete GA item from what a client sent (id assigned, status ``completed``)."""
    item = checks.obj(raw, param)
    kind = checks.choice(checks.required(item, "type", param), f"{param}.type", ITEM_TYPES)
    result: dict[str, Any] = {
        "id": _item_id(item.get("id"), f"{param}.id"),
        "type": kind,
        "object": "realtime.item",
        "status": "completed",
    }
    if kind == "message":
        checks.only_keys(item, (*_COMMON, "role", "content"), param)
        role = checks.choice(
            checks.required(item, "role", param), f"{param}.role", list(CONTENT_TYPES)
        )
        result["role"] = role
        parts = checks.array(checks.required(item, "content", param), f"{param}.content")
        result["content"] = [
            _content(part, role, f"{param}.content[{index}]") for index, part in enumerate(parts)
        ]
    elif kind == "function_call":
        checks.only_keys(item, (*_COMMON, "name", "arguments", "call_id"), param)
        result["call_id"] = checks.string(item.get("call_id") or new_id("call"), f"{param}.call_id")
        result["name"] = checks.string(checks.required(item, "name", param), f"{param}.name")
        result["arguments"] = checks.string(item.get("arguments", ""), f"{param}.arguments")
    else:
        checks.only_keys(item, (*_COMMON, "call_id", "output"), param)
        result["call_id"] = checks.string(
            checks.required(item, "call_id", param), f"{param}.call_id"
        )
        result["output"] = checks.string(checks.required(item, "output", param), f"{param}.output")
    return result


def _item_id(value: object, param: str) -> str:
    if value is None:
        return new_id("item")
    text = checks.string(value, param)
    if not text or len(text) > 32:
        raise ApiError("invalid_value", "Item ids must be between 1 and 32 characters long.", param)
    return text


def _content(raw: object, role: str, param: str) -> dict[str, Any]:
    part = checks.obj(raw, param)
    kind = checks.choice(checks.required(part, "type", param), f"{param}.type", CONTENT_TYPES[role])
    if kind in ("input_text", "output_text"):
        checks.only_keys(part, ("type", "text"), param)
        return {
            "type": kind,
            "text": checks.string(checks.required(part, "text", param), f"{param}.text"),
        }
    if kind == "input_image":
        checks.only_keys(part, ("type", "image_url", "detail"), param)
        checks.string(checks.required(part, "image_url", param), f"{param}.image_url")
        return copy.deepcopy(part)
    checks.only_keys(part, ("type", "audio", "transcript"), param)
    result: dict[str, Any] = {"type": kind, "transcript": None}
    if part.get("transcript") is not None:
        result["transcript"] = checks.string(part["transcript"], f"{param}.transcript")
    if part.get("audio") is not None:
        result["audio"] = checks.string(part["audio"], f"{param}.audio")
    return result


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """The item as shown in added/done/output events: without audio payloads."""
    shown = {key: value for key, value in item.items() if key != "content"}
    if "content" in item:
        shown["content"] = [
            {key: value for key, value in part.items() if key != "audio"}
            for part in item["content"]
        ]
    return copy.deepcopy(shown)


def message_text(item: dict[str, Any]) -> str:
    """The words of a message item: its texts and transcripts joined."""
    words = []
    for part in item.get("content", []):
        text = part.get("text") if part.get("text") is not None else part.get("transcript")
        if isinstance(text, str) and text:
            words.append(text)
    return " ".join(words)
