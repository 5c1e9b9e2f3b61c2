"""The operator's session policy (``BRIDGE_POLICY_FILE``, TOML): what each client token may do.

One ``[default]`` table and any number of ``[tokens.<id>]`` tables, where ``<id>`` is the
client token's non-secret id (the first 12 hex digits of its SHA-256, as logs and ``/sessions``
show it; ``realtime-bridge token-id <token>`` prints it). A token's table is complete on its own:
what it leaves out is unlimited, not inherited. See ``docs/policy.example.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from realtime_bridge.errors import ConfigError
from realtime_bridge.tools.spec import ToolSpec


class TokenPolicy(BaseModel):
    """What one client token (and every secret it mints) may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A name for logs and ``/sessions`` (never the token).
    label: str | None = None
    #: Models a session may use (``?model=`` or a secret's model); empty = any.
    models: tuple[str, ...] = ()
    #: Session fields applied upstream before the client's first event, and locked.
    session: dict[str, Any] = Field(default_factory=dict)
    #: Upper bound on ``max_output_tokens`` (session and per response).
    max_output_tokens: int | None = Field(default=None, ge=1)
    #: Upper bound on a session's lifetime, in seconds (and SESSION_MAX_DURATION_S).
    max_session_s: float | None = Field(default=None, gt=0)
    #: New sessions per minute (beyond: HTTP 429 with Retry-After).
    sessions_per_minute: int | None = Field(default=None, ge=1)
    #: Sessions at once (beyond: HTTP 429).
    concurrent_sessions: int | None = Field(default=None, ge=1)
    #: Tokens per UTC day, counted from ``response.done`` usage (spent: ``quota_exceeded``).
    tokens_per_day: int | None = Field(default=None, ge=1)
    #: Tools the bridge runs itself for these sessions (webhooks, Python functions); the
    #: client never sees their definitions (see :mod:`realtime_bridge.protocol.server_tools`).
    tools: tuple[ToolSpec, ...] = ()

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: tuple[ToolSpec, ...]) -> tuple[ToolSpec, ...]:
        names = [tool.name for tool in tools]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"tool names must be unique; repeated: {', '.join(repeated)}")
        return tools

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


UNLIMITED = TokenPolicy()


class Policy(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: TokenPolicy = UNLIMITED
    tokens: dict[str, TokenPolicy] = Field(default_factory=dict)

    def all_tools(self) -> list[ToolSpec]:
        """Every tool of every table (the runner prepares them all at start-up)."""
        return [tool for table in (self.default, *self.tokens.values()) for tool in table.tools]

    def for_token(self, token_id: str | None) -> TokenPolicy:
        if token_id is not None and token_id in self.tokens:
            return self.tokens[token_id]
        return self.default


NO_POLICY = Policy()


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (None: no policy). Raises :class:`ConfigError` naming
    ``BRIDGE_POLICY_FILE`` with the first problem, never a traceback."""
    if path is None:
        return NO_POLICY
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError("BRIDGE_POLICY_FILE", f"cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("BRIDGE_POLICY_FILE", f"is not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError("BRIDGE_POLICY_FILE", f"{where}: {first['msg']}") from None


__all__ = ["NO_POLICY", "UNLIMITED", "Policy", "TokenPolicy", "load_policy"]
