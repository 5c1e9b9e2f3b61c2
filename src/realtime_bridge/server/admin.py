"""Session administration over HTTP (SPEC §6), enabled by ``BRIDGE_ADMIN_TOKEN``.

- ``GET /sessions`` → ``{"sessions": [<SessionRecord.summary()>, ...]}``
- ``DELETE /sessions/{id}`` → ends that session with the error event ``session_expired`` and
  close 1000 (through the session's own ``request_end``); ``200 {"id", "status": "ending"}``.
- With ``REDIS_URL``, both reach every instance (server/shared.py): the listing marks each
  session with its ``instance``, and a session of another instance is ended by that instance
  (503 ``store_unavailable`` when Redis does not answer and the session is not here).

Without the variable the endpoints answer 404 ``admin_disabled`` with a message that says how
to enable them: they do not exist on this server, so 404 stays true (and a scanner learns
nothing it could use), while a newcomer learns what to set. With it, a request without the
right ``Authorization: Bearer <token>`` answers 401. The token is compared in constant time.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.server.http import STATE_KEY, error_response

ENDED_BY_ADMIN = "The session was ended by the bridge's administrator."


def _refusal(request: web.Request) -> web.Response | None:
    """None when the request carries the admin token; else the 404/401 to answer with."""
    expected = request.app[STATE_KEY].settings.bridge_admin_token
    if expected is None or not expected.get_secret_value():
        return error_response(
            404,
            "admin_disabled",
            "Session admin is off on this bridge: set BRIDGE_ADMIN_TOKEN to enable "
            "GET /sessions and DELETE /sessions/{id}, then send 'Authorization: Bearer <token>'.",
        )
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    presented = token.strip().encode() if scheme.lower() == "bearer" else b""
    if not hmac.compare_digest(presented, expected.get_secret_value().encode()):
        return error_response(
            401,
            ErrorCode.UNAUTHORIZED.value,
            "The admin endpoints need 'Authorization: Bearer <BRIDGE_ADMIN_TOKEN>'.",
            **{"WWW-Authenticate": 'Bearer realm="realtime-bridge-admin"'},
        )
    return None


async def list_sessions(request: web.Request) -> web.Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    state = request.app[STATE_KEY]
    if state.shared is not None:  # every instance's sessions (a worker is one), marked with it
        return web.json_response({"sessions": await state.shared.listing()})
    sessions = [record.summary() for record in state.registry]
    if state.cluster is not None:  # every worker's sessions, each marked with its worker
        for session in sessions:
            session["worker"] = state.cluster.me.index
        for other in state.cluster.others(with_sessions=True):
            sessions += [{**s, "worker": other["index"]} for s in other.get("sessions", ())]
    return web.json_response({"sessions": sessions})


async def end_session(request: web.Request) -> web.Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    session_id = request.match_info["session_id"]
    state = request.app[STATE_KEY]
    record = state.registry.get(session_id)
    if record is None or record.request_end is None:
        if state.cluster is not None and state.cluster.ask_to_end(session_id):
            return web.json_response({"id": session_id, "status": "ending"})  # its worker's
        if state.shared is not None:  # another instance's, asked over Redis
            asked = await state.shared.end_elsewhere(session_id)
            if asked:
                return web.json_response({"id": session_id, "status": "ending"})
            if asked is None:
                return error_response(
                    503,
                    "store_unavailable",
                    "The session is not on this instance, and the shared store does not answer.",
                )
        return error_response(404, "session_not_found", f"No live session {session_id[:80]!r}.")
    record.request_end(ClientError(ErrorCode.SESSION_EXPIRED, ENDED_BY_ADMIN))
    return web.json_response({"id": session_id, "status": "ending"})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/sessions", list_sessions)
    app.router.add_delete("/sessions/{session_id}", end_session)
