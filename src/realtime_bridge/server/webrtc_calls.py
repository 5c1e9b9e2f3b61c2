"""WebRTC signalling in the API's shapes, on the HTTP port.

- ``POST /v1/realtime/calls``: the caller's SDP offer (``application/sdp``, with ``Authorization:
  Bearer`` a client secret or a bridge token), or a backend's multipart form (``sdp`` and a
  ``session`` JSON configuration). 201 with the SDP answer and ``Location:
  /v1/realtime/calls/{call_id}``; the call is then a session like any other
  (:class:`~realtime_bridge.server.webrtc_channel.WebRTCConnection`).
- ``POST /v1/realtime/calls/{call_id}/hangup`` ends it.
- CORS: a preflight from an allowed origin is answered for the headers the browser SDK sends,
  and ``Location`` is exposed, or a cross-origin page could not read its call id.

Every refusal (origin 403, credential 401, limits 429, load 503, a malformed offer 400) comes
before any upstream connection, with the same checks and JSON error shape as the WebSocket path.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.observability import get_logger
from realtime_bridge.policy.secrets import SecretRefused, looks_like_secret
from realtime_bridge.server.access import Grant, log_refusal
from realtime_bridge.server.admission import origin_allowed, own_origins, token_matches
from realtime_bridge.server.client_address import client_address
from realtime_bridge.server.endpoint import SessionEndpoint
from realtime_bridge.server.http import STATE_KEY, ServerState, error_document
from realtime_bridge.server.sessions import SessionRecord, new_session_id
from realtime_bridge.server.upgrade import MODEL_NAME
from realtime_bridge.server.webrtc_channel import CALL_OPTIONS, WebRTCConnection
from realtime_bridge.webrtc.ice import IceSettings
from realtime_bridge.webrtc.peer import NoCandidates
from realtime_bridge.webrtc.sdp import Offer, OfferError, new_call_id, read_offer, session_id_of

log = get_logger("webrtc")
ENDPOINT_KEY = web.AppKey("session_endpoint", SessionEndpoint)
CALLS_PATH = "/v1/realtime/calls"
#: The headers a page may send (the browser SDK adds X-OpenAI-Agents-SDK to its offer).
ALLOWED_HEADERS = (
    "Authorization, Content-Type, X-OpenAI-Agents-SDK, OpenAI-Beta, OpenAI-Organization, "
    "OpenAI-Project"
)
PREFLIGHT_MAX_AGE_S = 600


def ice_settings(state: ServerState) -> IceSettings:
    settings = state.settings
    password = settings.webrtc_turn_password
    return IceSettings(
        public_address=settings.webrtc_public_address,
        ports=settings.webrtc_udp_ports,
        servers=settings.webrtc_ice_servers,
        turn_username=settings.webrtc_turn_username,
        turn_password=password.get_secret_value() if password is not None else None,
    )


def _origin_ok(request: web.Request) -> bool:
    state = request.app[STATE_KEY]
    own = own_origins(state.http_url, state.settings.host, request.headers.get("Host"))
    return origin_allowed(request.headers.get("Origin"), state.settings.allowed_origins, own)


def _cors(request: web.Request) -> dict[str, str]:
    """The CORS headers of an answer to an allowed cross-origin page (none otherwise)."""
    origin = request.headers.get("Origin")
    if origin is None or not _origin_ok(request):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "Location",
        "Vary": "Origin",
    }


def _error(
    request: web.Request, status: int, code: str, message: str, **headers: str
) -> web.Response:
    return web.json_response(
        error_document(code, message), status=status, headers={**_cors(request), **headers}
    )


def _refusal(request: web.Request, refused: ClientError) -> web.Response:
    headers: dict[str, str] = {}
    if refused.code is ErrorCode.UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="realtime-bridge"'
    retry = getattr(refused, "retry_after_s", None)
    if retry is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    metrics = request.app[STATE_KEY].metrics
    if metrics is not None:
        metrics.refused(refused.code.value)
    return _error(request, refused.http_status, refused.code.value, refused.message, **headers)


async def preflight(request: web.Request) -> web.Response:
    if not _origin_ok(request):
        return _error(
            request, 403, ErrorCode.FORBIDDEN_ORIGIN.value, "This origin may not call the bridge."
        )
    return web.Response(
        status=204,
        headers={
            **_cors(request),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", ALLOWED_HEADERS
            ),
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        },
    )


async def _read_request(request: web.Request) -> tuple[str, dict[str, Any] | None]:
    """The offer, and the backend's session configuration (multipart only). Raises
    :class:`OfferError` for a body that is neither."""
    content_type = request.content_type
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        sdp, session = form.get("sdp"), form.get("session")
        if not isinstance(sdp, str):
            raise OfferError("The multipart form needs an 'sdp' part with the offer.")
        config: dict[str, Any] | None = None
        if isinstance(session, str) and session.strip():
            try:
                config = orjson.loads(session)
            except orjson.JSONDecodeError:
                raise OfferError("The 'session' part is not valid JSON.") from None
            if not isinstance(config, dict):
                raise OfferError("The 'session' part must be a JSON object.")
        return sdp, config
    if content_type not in ("application/sdp", "text/plain", ""):
        raise OfferError("Send the offer as application/sdp, or a multipart form with 'sdp'.")
    body = await request.content.read(65 * 1024)
    try:
        return body.decode(), None
    except UnicodeDecodeError:
        raise OfferError("The SDP offer is not UTF-8 text.") from None


async def create_call(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    settings = state.settings
    malformed: str | None = None
    sdp, config = "", None
    try:
        sdp, config = await _read_request(request)
    except OfferError as bad:
        malformed = str(bad)
    query = dict(request.query)
    if config is not None and isinstance(config.get("model"), str):
        query.setdefault("model", config.pop("model"))
    model = query.get("model")
    if model is not None and not MODEL_NAME.fullmatch(model):
        return _error(
            request,
            400,
            "invalid_model",
            "A model name is 1 to 128 letters, digits, '.', '_', '-' or ':'.",
        )
    assert state.access is not None
    peer = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", ()), settings.trusted_proxies
    )
    try:
        grant = state.access.admit_upgrade(
            headers=request.headers,
            query=query,
            own_origins=own_origins(state.http_url, settings.host, request.headers.get("Host")),
            now=time.time(),
            peer=peer,
        )
    except ClientError as refused:
        log_refusal(log, "call refused", refused, peer)
        return _refusal(request, refused)
    try:
        if state.draining:
            raise ClientError(ErrorCode.SERVER_SHUTTING_DOWN, "The server is shutting down.")
        if state.registry.full:
            raise ClientError(
                ErrorCode.SESSION_LIMIT_REACHED,
                f"The bridge is at its limit of {settings.max_sessions} concurrent sessions.",
            )
        if malformed is not None:
            raise OfferError(malformed)
        offer = read_offer(sdp)
    except OfferError as bad:
        grant.release()
        return _error(request, 400, ErrorCode.INVALID_OFFER.value, str(bad))
    except ClientError as refused:
        grant.release()
        return _refusal(request, refused)
    return await _answer(request, state, grant, offer, config, peer or "unknown")


async def _answer(
    request: web.Request,
    state: ServerState,
    grant: Grant,
    offer: Offer,
    config: dict[str, Any] | None,
    peer: str,
) -> web.Response:
    settings = state.settings
    session_id = new_session_id()
    call_id = new_call_id(session_id)
    record = SessionRecord(
        id=session_id,
        client=peer,
        model=grant.model,
        upstream=state.upstream.kind,
        credential=grant.credential,
        budget_left=lambda: grant.budget_left(time.time()),
        client_kind="webrtc",
        call={"call_id": call_id},
    )
    state.registry.add(record)
    client = WebRTCConnection(
        settings.max_message_bytes,
        settings.client_max_unsent_bytes,
        call_id=call_id,
        ice=ice_settings(state),
        offer=offer,
    )
    client.session_id = session_id
    client.peer = peer
    try:
        answer = await client.answer()
    except Exception as error:  # no media port, or an offer aiortc could not use
        state.registry.remove(record)
        grant.release()
        client.abort()
        if isinstance(error, NoCandidates):
            log.warning("call refused: no media port free (WEBRTC_UDP_PORTS)")
            return _error(
                request,
                503,
                "webrtc_unavailable",
                "The bridge has no free port for the call's media; try again later.",
                **{"Retry-After": "5"},
            )
        log.info("offer refused by the peer connection: %s", type(error).__name__)
        return _error(
            request, 400, ErrorCode.INVALID_OFFER.value, "The SDP offer could not be answered."
        )
    if config:
        config.setdefault("type", "realtime")
        client.sideband_event(orjson.dumps({"type": "session.update", "session": config}).decode())
    state.calls[call_id] = client
    if state.cluster is not None:  # the other workers learn of the call now (its sideband)
        state.cluster.tick()
    endpoint = request.app[ENDPOINT_KEY]
    task = endpoint.start(record, client, CALL_OPTIONS, grant)
    task.add_done_callback(lambda _task: state.calls.pop(call_id, None))
    log.info("call answered", extra={"session_id": session_id, "call_id": call_id})
    return web.Response(
        status=201,
        text=answer,
        content_type="application/sdp",
        headers={**_cors(request), "Location": f"{CALLS_PATH}/{call_id}"},
    )


def _may_hang_up(request: web.Request, credential: dict[str, Any] | None) -> ClientError | None:
    """Who may end a call: anyone on an open bridge; otherwise a bridge token, or the client
    secret the call was opened with. A refusal says why, never what was presented."""
    state = request.app[STATE_KEY]
    settings = state.settings
    if not _origin_ok(request):
        return ClientError(ErrorCode.FORBIDDEN_ORIGIN, "This origin may not call the bridge.")
    if not settings.bridge_api_keys:
        return None
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if token and token_matches(token, settings.bridge_api_keys):
        return None
    if token and looks_like_secret(token) and credential is not None:
        assert state.access is not None
        try:
            claims = state.access.verify_secret(token, time.time())
        except SecretRefused:
            claims = None
        if claims is not None and claims.id == credential.get("id"):
            return None
    return ClientError(
        ErrorCode.UNAUTHORIZED,
        "Hanging up needs a bridge token, or the client secret the call was opened with.",
    )


async def _credential_of(state: ServerState, session_id: str | None) -> dict[str, Any] | None:
    """The credential a call was opened with, wherever it lives: here, on another worker (its
    snapshot), or on another instance (the shared registry)."""
    if session_id is None:
        return None
    record = state.registry.get(session_id)
    if record is not None:
        return record.credential
    elsewhere: list[dict[str, Any]] = []
    if state.cluster is not None:
        elsewhere = [
            s
            for other in state.cluster.others(with_sessions=True)
            for s in other.get("sessions", ())
        ]
    elif state.shared is not None:
        elsewhere = await state.shared.listing()
    for summary in elsewhere:
        if summary.get("id") == session_id and isinstance(summary.get("credential"), dict):
            return dict(summary["credential"])
    return None


async def hangup(request: web.Request) -> web.Response:
    """End a call (``{}``, as the API answers)."""
    state = request.app[STATE_KEY]
    call_id = request.match_info["call_id"]
    session_id = session_id_of(call_id)
    refused = _may_hang_up(request, await _credential_of(state, session_id))
    if refused is not None:
        return _refusal(request, refused)
    call = state.calls.get(call_id)
    if call is not None:
        call.hangup()
        return web.json_response({}, headers=_cors(request))
    elsewhere = session_id is not None and (
        (state.cluster is not None and state.cluster.ask_to_end(session_id))
        or (state.shared is not None and bool(await state.shared.end_elsewhere(session_id)))
    )
    if elsewhere:
        return web.json_response({}, headers=_cors(request))
    return _error(request, 404, ErrorCode.CALL_NOT_FOUND.value, f"No live call {call_id[:80]!r}.")


def add_webrtc_routes(app: web.Application, endpoint: SessionEndpoint) -> None:
    app[ENDPOINT_KEY] = endpoint
    app.router.add_post(CALLS_PATH, create_call)
    app.router.add_route("OPTIONS", CALLS_PATH, preflight)
    app.router.add_post(CALLS_PATH + "/{call_id}/hangup", hangup)
    app.router.add_route("OPTIONS", CALLS_PATH + "/{call_id}/hangup", preflight)


__all__ = ["CALLS_PATH", "add_webrtc_routes", "ice_settings"]
