"""``POST /v1/realtime/client_secrets``: short-lived client secrets in the API's own shape.

An app's backend mints a secret with a server credential (one of ``BRIDGE_API_KEYS`` as
``Authorization: Bearer``), exactly as it would from the API (the official SDK's
``client.realtime.client_secrets.create(...)`` with ``base_url`` at the bridge), and hands the
``ek_…`` value to a browser, which connects with it. The session configuration given here is
applied upstream before the browser's first event and locked (``policy/locks.py``).

``DELETE /v1/realtime/client_secrets/{secret}`` revokes one (by value or id). ``POST
/demo/secret`` mints a one-minute secret for the bridge's own demo page, only when the operator
enables it (``DEMO_SECRETS=true``) and only for the page's own origin.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from realtime_bridge.errors import ErrorCode
from realtime_bridge.policy.secrets import SecretRefused, looks_like_secret
from realtime_bridge.server.access import AccessControl
from realtime_bridge.server.admission import origin_allowed, own_origins, token_matches
from realtime_bridge.server.http import STATE_KEY, ServerState, error_response

DEMO_SECRET_TTL_S = 60
#: The policy entry (``[tokens.demo]``) that demo secrets follow, when the file has one.
DEMO_TOKEN_ID = "demo"  # noqa: S105 (a policy entry name)
SESSION_TYPES = ("realtime", "transcription")


def _access(state: ServerState) -> AccessControl:
    assert state.access is not None
    return state.access


def _server_token(request: web.Request) -> tuple[str | None, web.Response | None]:
    """The minting client token's id, or the response refusing the request."""
    settings = request.app[STATE_KEY].settings
    if not settings.bridge_api_keys:
        return None, error_response(
            404,
            "client_secrets_disabled",
            "Client secrets need a server credential: set BRIDGE_API_KEYS, then call this "
            "endpoint with 'Authorization: Bearer <one of them>'.",
        )
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token or looks_like_secret(token) or not token_matches(token, settings.bridge_api_keys):
        return None, error_response(
            401,
            ErrorCode.UNAUTHORIZED.value,
            "Minting a client secret needs 'Authorization: Bearer <one of BRIDGE_API_KEYS>'.",
            **{"WWW-Authenticate": 'Bearer realm="realtime-bridge"'},
        )
    return _access(request.app[STATE_KEY]).token_id(token), None


def _invalid(message: str, param: str) -> web.Response:
    body = {
        "error": {
            "code": "invalid_request_error",
            "message": message,
            "type": "invalid_request_error",
            "param": param,
        }
    }
    return web.json_response(body, status=400)


async def create_client_secret(request: web.Request) -> web.Response:
    token_id, refusal = _server_token(request)
    if refusal is not None:
        return refusal
    state = request.app[STATE_KEY]
    settings = state.settings
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return _invalid("The body must be a JSON object.", "body")
    if not isinstance(body, dict):
        return _invalid("The body must be a JSON object.", "body")
    expires = body.get("expires_after") or {}
    if not isinstance(expires, dict) or expires.get("anchor", "created_at") != "created_at":
        return _invalid("expires_after.anchor must be 'created_at'.", "expires_after.anchor")
    ttl = expires.get("seconds", settings.client_secret_ttl_s)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not ttl >= 1:
        return _invalid("expires_after.seconds must be a positive integer.", "expires_after")
    if ttl > settings.client_secret_max_ttl_s:
        return _invalid(
            f"expires_after.seconds must be at most {settings.client_secret_max_ttl_s}.",
            "expires_after.seconds",
        )
    session = body.get("session") or {"type": "realtime"}
    if not isinstance(session, dict):
        return _invalid("session must be an object.", "session")
    session = {"type": "realtime", **session}
    if session["type"] not in SESSION_TYPES:
        return _invalid("session.type must be 'realtime' or 'transcription'.", "session.type")
    access = _access(state)
    policy = access.policy.for_token(token_id)
    model = session.get("model")
    if model is not None and (not isinstance(model, str) or not policy.allows_model(model)):
        return error_response(
            403,
            ErrorCode.MODEL_NOT_ALLOWED.value,
            f"The model {model!r} is not allowed for this client.",
        )
    minted = access.codec.mint(session, token_id=token_id, ttl_s=ttl, now=time.time())
    return web.json_response(_secret_document(minted.value, minted.claims.expires_at, session))


def _secret_document(value: str, expires_at: float, session: dict[str, Any]) -> dict[str, Any]:
    """The API's response shape: the value, when it expires, and the session it is bound to."""
    shown = {"object": "realtime.session", **session}
    if shown["type"] == "transcription":
        shown["object"] = "realtime.transcription_session"
    return {"value": value, "expires_at": math.ceil(expires_at), "session": shown}


async def revoke_client_secret(request: web.Request) -> web.Response:
    _, refusal = _server_token(request)
    if refusal is not None:
        return refusal
    access = _access(request.app[STATE_KEY])
    given = request.match_info["secret"]
    now = time.time()
    if looks_like_secret(given):
        try:
            claims = access.codec.verify(given, now)
        except SecretRefused as refused:
            return error_response(404, "secret_not_found", f"Not a live secret ({refused.reason}).")
        secret_id, until = claims.id, claims.expires_at
    else:  # an id: kept revoked for as long as any secret can live
        secret_id, until = given[:64], now + access.settings.client_secret_max_ttl_s
    access.store.revoke(secret_id, until)
    return web.json_response({"id": secret_id, "revoked": True})


async def demo_secret(request: web.Request) -> web.Response:
    """A short-lived secret for the bridge's own page, when the operator allows it."""
    state = request.app[STATE_KEY]
    settings = state.settings
    if not (settings.demo_secrets and settings.bridge_api_keys):
        return error_response(
            404,
            "demo_secrets_disabled",
            "The demo page gets secrets only with DEMO_SECRETS=true and BRIDGE_API_KEYS set.",
        )
    own = own_origins(state.http_url, settings.host, request.headers.get("Host"))
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(origin, ("__none__",), own):
        return error_response(
            403, ErrorCode.FORBIDDEN_ORIGIN.value, "Only the bridge's own page gets demo secrets."
        )
    access = _access(state)
    minted = access.codec.mint(
        {"type": "realtime"}, token_id=DEMO_TOKEN_ID, ttl_s=DEMO_SECRET_TTL_S, now=time.time()
    )
    return web.json_response(
        _secret_document(minted.value, minted.claims.expires_at, {"type": "realtime"})
    )


def add_secret_routes(app: web.Application) -> None:
    app.router.add_post("/v1/realtime/client_secrets", create_client_secret)
    app.router.add_delete("/v1/realtime/client_secrets/{secret}", revoke_client_secret)
    app.router.add_post("/demo/secret", demo_secret)
