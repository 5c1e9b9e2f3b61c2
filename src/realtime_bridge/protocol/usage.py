"""Token usage, summed from the upstream's ``response.done`` events."""

from __future__ import annotations

from typing import Any

_USAGE_FIELDS = ("input_tokens", "output_tokens", "total_tokens")
_USAGE_DETAILS = (
    ("input_token_details", ("text_tokens", "audio_tokens", "cached_tokens")),
    ("output_token_details", ("text_tokens", "audio_tokens")),
)


def add_usage(totals: dict[str, int], event: dict[str, Any]) -> int:
    """Add a ``response.done`` event's usage to ``totals`` (flat names: ``input_tokens``,
    ``input_audio_tokens``, …); events without usage add nothing. Returns the event's
    ``total_tokens`` (0 without usage)."""
    response = event.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return 0
    for name in _USAGE_FIELDS:
        value = usage.get(name)
        if isinstance(value, int):
            totals[name] = totals.get(name, 0) + value
    for group, names in _USAGE_DETAILS:
        details = usage.get(group)
        if not isinstance(details, dict):
            continue
        prefix = group.split("_", 1)[0]
        for name in names:
            value = details.get(name)
            if isinstance(value, int):
                key = f"{prefix}_{name}"
                totals[key] = totals.get(key, 0) + value
    total = usage.get("total_tokens")
    return total if isinstance(total, int) else 0


__all__ = ["add_usage"]
