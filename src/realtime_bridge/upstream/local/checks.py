"""Small typed accessors that raise the API's own errors for wrong JSON types and ranges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .apierror import (
    invalid_type,
    invalid_value,
    missing_parameter,
    out_of_range,
    unknown_parameter,
)


def obj(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def only_keys(value: dict[str, Any], allowed: Iterable[str], param: str) -> None:
    """Reject the first key the API does not know (beta names included)."""
    allowed_set = set(allowed)
    for key in value:
        if key not in allowed_set:
            raise unknown_parameter(f"{param}.{key}" if param else key)


def required(value: dict[str, Any], key: str, param: str) -> Any:
    if key not in value:
        raise missing_parameter(f"{param}.{key}" if param else key)
    return value[key]


def string(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def boolean(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def number(
    value: object, param: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(param, "a decimal", value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise out_of_range(param, float(value), minimum=minimum, maximum=maximum)
    return float(value)


def integer(
    value: object, param: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise out_of_range(param, value, minimum=minimum, maximum=maximum)
    return value


def choice(value: object, param: str, supported: Sequence[str]) -> str:
    text = string(value, param)
    if text not in supported:
        raise invalid_value(param, text, supported)
    return text


def array(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    return value
