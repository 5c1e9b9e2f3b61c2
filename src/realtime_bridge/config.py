"""One frozen settings object, built from an injected environment mapping.

Precedence: command-line overrides, then the process environment, then ``.env`` in the working
directory, then defaults (SPEC §3). The loader takes the environment as a plain mapping so tests
never touch ``os.environ``. Validation is pydantic's; its errors are turned into one line naming
the variable, never echoing a secret's value. (pydantic-settings reads ``os.environ`` implicitly,
which is the opposite of what we want here, so we use plain pydantic plus python-dotenv.)
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from realtime_bridge.errors import ConfigError

UpstreamChoice = Literal["auto", "openai", "azure", "local"]
UpstreamKind = Literal["openai", "azure", "local"]

#: Variables whose values are secrets: never echoed in messages, logs or ``/info``.
SECRET_VARIABLES = frozenset(
    {
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "BRIDGE_API_KEYS",
        "BRIDGE_ADMIN_TOKEN",
        "BRIDGE_SECRET_KEY",
        "TWILIO_AUTH_TOKEN",
        "WEBRTC_TURN_PASSWORD",
    }
)


#: URLs are not echoed in error messages either: a bad one may carry credentials.
_URL_VARIABLES = frozenset({"OPENAI_REALTIME_URL", "AZURE_OPENAI_ENDPOINT", "REDIS_URL"})
#: Query parameters that carry credentials (``api-key=``, ``token=``, ``secret=``, …).
_CREDENTIAL_PARAM = re.compile(
    r"(?:^|&)[^=&]*(?:key|token|secret|password|passwd|auth|signature|sig)[^=&]*=", re.I
)


def public_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: what may be shown to anyone (``/info``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup CPU quota (a container's
    CPU limit), so ``WORKERS=auto`` in a pod limited to 2 CPUs starts 2 workers, not one per
    CPU of the node."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, math.ceil(quota))) if quota is not None else count


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``); None: none."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 else None


class Settings(BaseModel):
    """Every setting of the bridge; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    host: str = Field("127.0.0.1", alias="HOST", min_length=1)
    ws_port: int = Field(8080, alias="WS_PORT", ge=0, le=65535)
    http_port: int = Field(3000, alias="HTTP_PORT", ge=0, le=65535)
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_org_id: str | None = Field(None, alias="OPENAI_ORG_ID")
    openai_project_id: str | None = Field(None, alias="OPENAI_PROJECT_ID")
    openai_model: str = Field("gpt-realtime", alias="OPENAI_MODEL", min_length=1)
    openai_realtime_url: str = Field(
        "wss://api.openai.com/v1/realtime", alias="OPENAI_REALTIME_URL"
    )
    upstream: UpstreamChoice = Field("auto", alias="UPSTREAM")
    azure_openai_endpoint: str | None = Field(None, alias="AZURE_OPENAI_ENDPOINT")
    azure_openai_api_key: SecretStr | None = Field(None, alias="AZURE_OPENAI_API_KEY")
    azure_openai_deployment: str | None = Field(None, alias="AZURE_OPENAI_DEPLOYMENT")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")
    bridge_api_keys: tuple[SecretStr, ...] = Field((), alias="BRIDGE_API_KEYS")
    bridge_admin_token: SecretStr | None = Field(None, alias="BRIDGE_ADMIN_TOKEN")
    allowed_origins: tuple[str, ...] = Field((), alias="ALLOWED_ORIGINS")
    max_sessions: int = Field(100, alias="MAX_SESSIONS", ge=1)
    max_connections: int = Field(1000, alias="MAX_CONNECTIONS", ge=2)
    session_idle_timeout_s: float = Field(300.0, alias="SESSION_IDLE_TIMEOUT_S", gt=0)
    session_max_duration_s: float = Field(3600.0, alias="SESSION_MAX_DURATION_S", gt=0)
    max_message_bytes: int = Field(16 * 1024 * 1024, alias="MAX_MESSAGE_BYTES", ge=1024)
    client_max_unsent_bytes: int = Field(
        16 * 1024 * 1024, alias="CLIENT_MAX_UNSENT_BYTES", ge=64 * 1024
    )
    upstream_connect_timeout_s: float = Field(10.0, alias="UPSTREAM_CONNECT_TIMEOUT_S", gt=0)
    shutdown_grace_s: float = Field(10.0, alias="SHUTDOWN_GRACE_S", ge=0)
    local_audio_pace: float = Field(1.0, alias="LOCAL_AUDIO_PACE", ge=0)
    metrics_enabled: bool = Field(True, alias="METRICS_ENABLED")
    bridge_policy_file: Path | None = Field(None, alias="BRIDGE_POLICY_FILE")
    bridge_secret_key: SecretStr | None = Field(None, alias="BRIDGE_SECRET_KEY")
    client_secret_ttl_s: int = Field(600, alias="CLIENT_SECRET_TTL_S", ge=1)
    client_secret_max_ttl_s: int = Field(7200, alias="CLIENT_SECRET_MAX_TTL_S", ge=1)
    demo_secrets: bool = Field(False, alias="DEMO_SECRETS")
    public_base_url: str | None = Field(None, alias="PUBLIC_BASE_URL")
    twilio_auth_token: SecretStr | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    twilio_instructions: str | None = Field(None, alias="TWILIO_INSTRUCTIONS")
    twilio_voice: str | None = Field(None, alias="TWILIO_VOICE")
    twilio_greeting: str | None = Field(None, alias="TWILIO_GREETING")
    twilio_dtmf: Literal["off", "item", "respond"] = Field("off", alias="TWILIO_DTMF")
    twilio_parameters: tuple[str, ...] = Field((), alias="TWILIO_PARAMETERS")
    silence_fill: Literal["auto", "off"] = Field("auto", alias="SILENCE_FILL")
    silence_fill_gap_ms: float = Field(200.0, alias="SILENCE_FILL_GAP_MS", ge=20, le=5000)
    commit_response_window_ms: float = Field(
        300.0, alias="COMMIT_RESPONSE_WINDOW_MS", ge=0, le=10000
    )
    workers: int = Field(1, alias="WORKERS", ge=1, le=256)
    resume_on_upstream_drop: bool = Field(True, alias="RESUME_ON_UPSTREAM_DROP")
    resume_deadline_s: float = Field(15.0, alias="RESUME_DEADLINE_S", gt=0)
    upstream_rollover_s: float = Field(3300.0, alias="UPSTREAM_ROLLOVER_S", ge=0)
    resume_memory_items: int = Field(500, alias="RESUME_MEMORY_ITEMS", ge=1)
    resume_memory_bytes: int = Field(1024 * 1024, alias="RESUME_MEMORY_BYTES", ge=1024)
    #: The shared store (limits, sessions, revocations) of several instances; unset: memory.
    redis_url: SecretStr | None = Field(None, alias="REDIS_URL")
    #: WebRTC calls (POST /v1/realtime/calls) terminated by the bridge.
    webrtc_enabled: bool = Field(True, alias="WEBRTC_ENABLED")
    #: The address announced in ICE candidates (bound when it is this machine's own).
    webrtc_public_address: str | None = Field(None, alias="WEBRTC_PUBLIC_ADDRESS")
    #: ``first-last``: the UDP ports media sockets bind (unset: ephemeral ports).
    webrtc_udp_ports: tuple[int, int] | None = Field(None, alias="WEBRTC_UDP_PORTS")
    webrtc_ice_servers: tuple[str, ...] = Field((), alias="WEBRTC_ICE_SERVERS")
    webrtc_turn_username: str | None = Field(None, alias="WEBRTC_TURN_USERNAME")
    webrtc_turn_password: SecretStr | None = Field(None, alias="WEBRTC_TURN_PASSWORD")
    #: Proxies whose ``X-Forwarded-For`` names the client (addresses or networks).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = Field(
        (), alias="TRUSTED_PROXIES"
    )

    @field_validator(
        "bridge_api_keys",
        "allowed_origins",
        "twilio_parameters",
        "webrtc_ice_servers",
        mode="before",
    )
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """``10.0.0.0/8``, ``192.0.2.7`` or ``fd00::/8``; host bits set are allowed."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            return value
        try:
            return tuple(ipaddress.ip_network(str(part), strict=False) for part in value)
        except ValueError as exc:
            raise ValueError(f"{exc} (e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8)") from None

    @field_validator("log_level", "log_format", "upstream", "silence_fill", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        """``auto``: one worker per CPU the process may run on."""
        if isinstance(value, str) and value.strip().lower() == "auto":
            return usable_cpus()
        return value

    @field_validator("webrtc_public_address")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("must be an IP address (e.g. 203.0.113.7 or 127.0.0.1)") from None

    @field_validator("webrtc_udp_ports", mode="before")
    @classmethod
    def _port_range(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                low, sep, high = value.strip().partition("-")
                first, last = int(low), int(high if sep else low)
            except ValueError:
                raise ValueError("must be a port range such as 40000-40199") from None
            if not 1024 <= first <= last <= 65535:
                raise ValueError("must be a port range within 1024-65535, first <= last")
            return (first, last)
        return value

    @field_validator("webrtc_ice_servers")
    @classmethod
    def _ice_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError("each must be a stun:, turn: or turns: URL")
        return value

    @field_validator("openai_realtime_url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError("must be a ws:// or wss:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not carry credentials (user:password@): the key goes in OPENAI_API_KEY"
            )
        if _CREDENTIAL_PARAM.search(parts.query):
            raise ValueError(
                "must not carry credentials in its query: the key goes in OPENAI_API_KEY"
            )
        return value

    @field_validator("azure_openai_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http", "wss", "ws") or not parts.netloc:
            raise ValueError("must be an https:// URL such as https://<resource>.openai.azure.com")
        return value.rstrip("/")

    @field_validator("bridge_secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.netloc or parts.path):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _secret_ttls(self) -> Settings:
        if self.client_secret_ttl_s > self.client_secret_max_ttl_s:
            raise _VariableError("CLIENT_SECRET_TTL_S", "must not exceed CLIENT_SECRET_MAX_TTL_S")
        return self

    @model_validator(mode="after")
    def _upstream_is_configured(self) -> Settings:
        if self.upstream == "openai" and self.openai_api_key is None:
            raise _VariableError("OPENAI_API_KEY", "is required when UPSTREAM=openai")
        if self.upstream == "azure":
            for variable, value in (
                ("AZURE_OPENAI_ENDPOINT", self.azure_openai_endpoint),
                ("AZURE_OPENAI_API_KEY", self.azure_openai_api_key),
                ("AZURE_OPENAI_DEPLOYMENT", self.azure_openai_deployment),
            ):
                if value is None:
                    raise _VariableError(variable, "is required when UPSTREAM=azure")
        return self

    @property
    def azure_configured(self) -> bool:
        return None not in (
            self.azure_openai_endpoint,
            self.azure_openai_api_key,
            self.azure_openai_deployment,
        )

    @property
    def upstream_kind(self) -> UpstreamKind:
        """The upstream actually used: ``auto`` resolved as SPEC §3 says."""
        if self.upstream != "auto":
            return self.upstream
        if self.openai_api_key is not None:
            return "openai"
        if self.azure_configured:
            return "azure"
        return "local"

    @property
    def single_listener(self) -> bool:
        """Both APIs share one listener when the two ports are equal."""
        return self.ws_port == self.http_port

    def secret_values(self) -> tuple[str, ...]:
        """Every secret's plain value, for the log redactor."""
        secrets: list[SecretStr | None] = [
            self.openai_api_key,
            self.azure_openai_api_key,
            self.bridge_admin_token,
            self.bridge_secret_key,
            self.twilio_auth_token,
            self.webrtc_turn_password,
            *self.bridge_api_keys,
        ]
        if self.redis_url is not None:
            password = urlsplit(self.redis_url.get_secret_value()).password or ""
            secrets += [SecretStr(password), SecretStr(unquote(password))]  # as given, as sent
        return tuple(
            s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()
        )


class _VariableError(ValueError):
    """A cross-field validation failure that names its variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable
        self.message = message


_ALIASES = frozenset(
    field.alias for field in Settings.model_fields.values() if field.alias is not None
)


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (missing file = none); values that are unset are skipped."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def load_settings(
    environ: Mapping[str, str],
    *,
    dotenv: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: ``overrides`` (CLI) > ``environ`` > ``dotenv`` > defaults.

    Empty values count as unset, so ``OPENAI_API_KEY=`` in a ``.env`` means "no key".
    Raises :class:`ConfigError` naming the offending variable.
    """
    merged: dict[str, Any] = {}
    for source in (dotenv or {}, environ, overrides or {}):
        for key, value in source.items():
            if key not in _ALIASES:
                continue
            if isinstance(value, str) and not value.strip():
                merged.pop(key, None)
                continue
            merged[key] = value.strip() if isinstance(value, str) else value
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, merged) from None


def _config_error(exc: ValidationError, values: Mapping[str, Any]) -> ConfigError:
    error = exc.errors(include_url=False, include_input=False)[0]
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, _VariableError):
        return ConfigError(cause.variable, cause.message)
    variable = str(error["loc"][0]) if error["loc"] else "configuration"
    message = _describe(error["type"], context, error["msg"])
    if variable in values and variable not in SECRET_VARIABLES | _URL_VARIABLES:
        message = f"{message} (got {str(values[variable])[:80]!r})"
    return ConfigError(variable, message)


def _describe(kind: str, context: Mapping[str, Any], fallback: str) -> str:
    bounds = {
        "greater_than_equal": "must be ≥ {ge}",
        "greater_than": "must be > {gt}",
        "less_than_equal": "must be ≤ {le}",
    }
    if kind in bounds:
        return bounds[kind].format(**context)
    if kind in ("int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "float_parsing":
        return "must be a number"
    if kind == "bool_parsing":
        return "must be true or false"
    if kind == "literal_error":
        return f"must be one of {context.get('expected', '')}"
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    return fallback
