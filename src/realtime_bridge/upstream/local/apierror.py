"""Errors in the shape the Realtime API uses, raised by the core's validators and handlers.

The real API answers a bad client event with an ``error`` event (``invalid_request_error``, a
specific ``code``, the offending ``param`` and the client's ``event_id``) and the session goes on.
Raising :class:`ApiError` anywhere in a handler gives exactly that, in one place (``core.py``).
"""

from __future__ import annotations

from collections.abc import Sequence


class ApiError(Exception):
    """One client mistake, described as the API describes it."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def json_kind(value: object) -> str:
    """How the API names a JSON value's type in its messages ("a string", "an object", …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def unknown_parameter(param: str) -> ApiError:
    return ApiError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> ApiError:
    return ApiError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def invalid_type(param: str, expected: str, value: object) -> ApiError:
    return ApiError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {json_kind(value)} instead.",
        param,
    )


def invalid_value(param: str, value: object, supported: Sequence[str] | None = None) -> ApiError:
    message = f"Invalid value: '{value}'."
    if supported:
        quoted = [f"'{s}'" for s in supported]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
        message += f" Supported values are: {listed}."
    return ApiError("invalid_value", message, param)


def out_of_range(
    param: str, value: float, *, minimum: float | None, maximum: float | None
) -> ApiError:
    """``decimal_above_max_value`` / ``integer_below_min_value`` and friends."""
    kind = "integer" if isinstance(value, int) else "decimal"
    if maximum is not None and value > maximum:
        return ApiError(
            f"{kind}_above_max_value",
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param,
        )
    return ApiError(
        f"{kind}_below_min_value",
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, "
        f"but got {value} instead.",
        param,
    )
