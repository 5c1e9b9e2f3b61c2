"""Strict validation against the official SDK's pydantic event models, shared by the tests.

The SDK's models accept unknown keys silently (``extra="allow"``), so strict validation alone
would let a misspelt field through; :func:`validate_strict` also refuses every undeclared key
outside an explicit allow-list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, TypeAdapter


def undeclared_keys(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths (list levels left out) of every key a parsed model kept as an extra."""
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            yield f"{path}.{key}" if path else key
        for name in type(value).model_fields:
            yield from undeclared_keys(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for element in value:
            yield from undeclared_keys(element, path)


def validate_strict(
    adapter: TypeAdapter[Any], event: dict[str, Any] | str, allowed: Iterable[str] = ()
) -> Any:
    """Validate in strict mode (JSON text or a dict) and refuse undeclared keys not allowed."""
    if isinstance(event, str):
        model = adapter.validate_json(event, strict=True)
    else:
        model = adapter.validate_python(event, strict=True)
    extras = sorted(set(undeclared_keys(model)) - set(allowed))
    assert not extras, f"{str(event)[:120]}: keys unknown to the SDK {extras}"
    return model
