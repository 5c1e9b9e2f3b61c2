"""Phone calls through Twilio: the incoming-call webhook (TwiML), signatures, and what a call's
session is configured with (settings, and what the operator lets a stream's custom parameters
set). The media stream itself is :mod:`.twilio_channel`, on the same relay as every session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import web

from realtime_bridge.config import Settings
from realtime_bridge.errors import ErrorCode
from realtime_bridge.observability import get_logger
from realtime_bridge.policy.locks import SessionLock, deep_merge
from realtime_bridge.policy.rules import TokenPolicy
from realtime_bridge.server.http import STATE_KEY, error_response
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.server.twilio_channel import TwilioConnection
from realtime_bridge.telephony import twilio
from realtime_bridge.telephony.signatures import public_url, signature_valid

log = get_logger("twilio")
#: How long Twilio has, once connected, to send its ``start``.
START_TIMEOUT_S = 10.0
#: Session fields a stream's custom parameters may set, when TWILIO_PARAMETERS lists them.
PARAMETER_FIELDS = ("instructions", "voice")


def twilio_signed(settings: Settings, headers: Mapping[str, str], path_qs: str) -> bool:
    """Whether a media stream's upgrade carries Twilio's signature of its URL."""
    token = settings.twilio_auth_token
    signature = headers.get("X-Twilio-Signature", "")
    if token is None or not signature or not settings.public_base_url:
        return False
    url = public_url(settings.public_base_url, path_qs, websocket=True)
    return signature_valid(token.get_secret_value(), url, {}, signature)


async def wait_for_start(
    client: TwilioConnection, record: SessionRecord, settings: Settings
) -> twilio.Start | None:
    """Twilio's ``start`` (None when it never came: the call is dropped)."""
    try:
        start = await asyncio.wait_for(asyncio.shield(client.started), START_TIMEOUT_S)
    except TimeoutError:
        log.info("Twilio stream without a start message: dropped", extra={"session_id": record.id})
        client.abort()
        return None
    client.session_id = record.id
    record.call = {"call_sid": start.call_sid, "stream_sid": start.stream_sid}
    return start


def call_fields(start: twilio.Start, settings: Settings) -> dict[str, Any]:
    """A call's session: the settings, then the custom parameters the operator allows."""
    fields: dict[str, Any] = {}
    if settings.twilio_instructions:
        fields["instructions"] = settings.twilio_instructions
    if settings.twilio_voice:
        fields["audio"] = {"output": {"voice": settings.twilio_voice}}
    params = start.custom_parameters
    allowed = set(settings.twilio_parameters) & set(PARAMETER_FIELDS)
    if "instructions" in allowed and params.get("instructions"):
        fields["instructions"] = params["instructions"]
    if "voice" in allowed and params.get("voice"):
        fields = deep_merge(fields, {"audio": {"output": {"voice": params["voice"]}}})
    return fields


def call_lock(
    lock: SessionLock | None, policy: TokenPolicy, start: twilio.Start, settings: Settings
) -> SessionLock | None:
    """The token's locked fields with the call's laid over them (the caller cannot change
    them: a phone has no session.update anyway)."""
    fields = call_fields(start, settings)
    if not fields:
        return lock
    base = lock.upstream_fields() if lock is not None else {}
    return SessionLock(deep_merge(base, fields), policy.max_output_tokens)


async def voice_webhook(request: web.Request) -> web.Response:
    """``POST /twilio/voice``: the TwiML that connects an incoming call to this bridge's media
    stream, with the webhook's query parameters passed on as the stream's custom parameters."""
    state = request.app[STATE_KEY]
    settings = state.settings
    if not settings.public_base_url:
        return error_response(
            503,
            "twilio_not_configured",
            "Set PUBLIC_BASE_URL to the https:// address Twilio reaches this bridge at.",
        )
    if settings.twilio_auth_token is not None:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        url = public_url(settings.public_base_url, request.path_qs, websocket=False)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not signature_valid(
            settings.twilio_auth_token.get_secret_value(), url, params, signature
        ):
            return error_response(
                403, ErrorCode.FORBIDDEN_ORIGIN.value, "The X-Twilio-Signature is missing or wrong."
            )
    stream = public_url(settings.public_base_url, "/twilio", websocket=True)
    parameters = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in request.query.items()
    )
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream)}>{parameters}</Stream>"
        "</Connect></Response>"
    )
    return web.Response(text=twiml, content_type="text/xml")


def add_twilio_routes(app: web.Application) -> None:
    app.router.add_post("/twilio/voice", voice_webhook)


__all__ = ["add_twilio_routes", "call_lock", "twilio_signed", "wait_for_start"]
