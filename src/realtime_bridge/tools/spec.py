"""Server-side tools as the operator declares them in the policy file (``[[tokens.<id>.tools]]``).

A tool is either a webhook the bridge POSTs the call to or a Python callable it imports; the
model sees only :meth:`ToolSpec.definition`, never where the tool runs. Everything that can be
checked without side effects is checked here, when the policy file is parsed, so that a typo
stops the bridge at start-up rather than failing a caller mid-conversation. What needs the
environment (importing the callable, reading the HMAC key) is checked by
:class:`realtime_bridge.tools.runner.ToolRunner` when it is built, still at start-up.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_IDENTIFIERS = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
#: ``package.module:function`` (the function may be an attribute path: ``module:Class.method``).
PYTHON_PATH = re.compile(rf"^{_IDENTIFIERS}:{_IDENTIFIERS}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ToolSpec(BaseModel):
    """One server-side tool: what the model is told about it and how the bridge runs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The function name the model calls (the Realtime API's own limit on names).
    name: str = Field(pattern=_NAME)
    #: What the tool does, for the model.
    description: str = ""
    #: A JSON schema of the arguments; an object schema, as the Realtime API requires.
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    #: An ``http://`` or ``https://`` URL the call is POSTed to (exactly one of webhook/python).
    webhook: str | None = None
    #: ``package.module:function``, called with the arguments dict.
    python: str | None = None
    #: Seconds the whole call may take; beyond it the model is told the tool did not answer.
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Whether the client sees this tool's call events (a bridge tool is hidden by default).
    visible: bool = False
    #: The environment variable holding the webhook's HMAC-SHA256 key (its value never goes in
    #: the policy file).
    secret_env: str | None = None

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema of an object ({"type": "object", ...})')
        properties = value.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError("properties must be a table (an object)")
        return value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise ValueError("must be an http:// or https:// URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("python")
    @classmethod
    def _python_path(cls, value: str | None) -> str | None:
        if value is not None and not PYTHON_PATH.match(value):
            raise ValueError('must be "package.module:function"')
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> ToolSpec:
        if (self.webhook is None) == (self.python is None):
            raise ValueError("a tool needs exactly one of webhook or python")
        if self.secret_env is not None and self.webhook is None:
            raise ValueError("secret_env signs webhook calls: it needs webhook")
        return self

    def definition(self) -> dict[str, Any]:
        """The tool as the GA Realtime API takes it in ``session.tools`` (a copy: callers may
        change it freely)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(self.parameters),
        }


__all__ = ["PYTHON_PATH", "ToolSpec"]
