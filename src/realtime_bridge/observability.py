"""Logging set-up: text or JSON lines, a session id on every session line, secrets redacted.

Redaction is defence in depth: no code path logs a secret on purpose, and the filter replaces
any configured secret value that slips into a message, its arguments or an exception anyway.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson

LOGGER_NAME = "realtime_bridge"
_REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else on a record is an "extra" field for JSON output.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Puts ``session_id`` (and any other fixed fields) on every line of one session."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


class RedactingFilter(logging.Filter):
    """Replaces secret values wherever they appear in a record's rendered text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self._scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self._scrub(value))
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        return orjson.dumps(payload, default=str).decode()


#: C0 and C1 control characters (CR, LF, ESC, …) and DEL: what forges a line or a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``), so a value a
    client chose cannot start a forged log line or drive the reader's terminal."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as ``key=value``; every field's
    control characters escaped (a traceback keeps its own line breaks)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={escape_controls(str(value))}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        if extras:
            first, _, rest = line.partition("\n")
            line = f"{first} {' '.join(extras)}" + (f"\n{rest}" if rest else "")
        return line


def setup_logging(
    level: str,
    log_format: str,
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> logging.Handler:
    """Configure the package's logger (and aiohttp's) to write to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(secrets))
    for name in (LOGGER_NAME, "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    logging.getLogger(LOGGER_NAME).setLevel(level.upper())
    # aiohttp's access log is noise for a WebSocket relay; its warnings still matter.
    logging.getLogger("aiohttp").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    return handler


def session_logger(session_id: str, **fields: Any) -> SessionLogger:
    return SessionLogger(get_logger("session"), {"session_id": session_id, **fields})


class DemotedErrors(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A library's logger whose ``error()`` calls are logged at ``level`` instead.

    picows reports a frame it refuses (too big, malformed) at ERROR. For the bridge that is
    the peer's fault, not the bridge's: INFO for a client, WARNING for the upstream. The
    session's end line says how the session ended; exceptions keep their level."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__(logger, {})
        self.level = level

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(self.level, msg, *args, **kwargs)
