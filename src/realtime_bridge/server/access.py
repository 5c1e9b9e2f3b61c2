"""Access to sessions: who the client is (token or client secret), what its policy allows, and
the limits that hold across its sessions. Decided at the upgrade, synchronously, before any
upstream connection; a refusal carries the HTTP status, error code and ``Retry-After``.

A grant lives as long as its session: it holds a concurrency slot, charges the daily token
budget from ``response.done`` usage, and says what is left of it for ``/sessions``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.config import Settings
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.policy.locks import SessionLock, deep_merge
from realtime_bridge.policy.rules import Policy, TokenPolicy
from realtime_bridge.policy.secrets import (
    SecretClaims,
    SecretCodec,
    SecretRefused,
    looks_like_secret,
)
from realtime_bridge.server.admission import (
    admit,
    offered_subprotocols,
    presented_tokens,
    token_fingerprint,
)
from realtime_bridge.store.base import Store

#: Session fields of a secret that are not locked as session fields (``model`` is the
#: session's model, checked at the upgrade; ``type`` is the session's kind).
_NOT_SESSION_FIELDS = frozenset({"type", "model"})
RATE_WINDOW_S = 60.0
#: Failed authentications one client address may make per window before it is throttled
#: (HTTP 429 with Retry-After, before any credential is looked at).
AUTH_FAILURES_ALLOWED = 10
AUTH_FAILURE_WINDOW_S = 60.0


class Refused(ClientError):
    """An upgrade refused by policy; ``retry_after_s`` for 429s."""

    def __init__(self, code: ErrorCode, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


@dataclass
class Grant:
    """One admitted session's credential, policy and limits."""

    credential: dict[str, Any]
    policy: TokenPolicy
    model: str
    lock: SessionLock | None
    max_duration_s: float
    _store: Store | None = None
    _key: str = ""
    _slot: bool = False
    _released: bool = field(default=False, repr=False)

    def charge(self, tokens: int, now: float) -> bool:
        """Count ``tokens`` against the daily budget; False once it is spent."""
        budget = self.policy.tokens_per_day
        if budget is None or self._store is None:
            return True
        used = self._store.add(budget_key(self._key, now), tokens)
        return used < budget

    def budget_left(self, now: float) -> int | None:
        budget = self.policy.tokens_per_day
        if budget is None or self._store is None:
            return None
        return max(0, budget - self._store.get(budget_key(self._key, now)))

    def release(self) -> None:
        """The session ended: its concurrency slot is free again (once)."""
        if self._slot and not self._released and self._store is not None:
            self._released = True
            self._store.release(f"live:{self._key}")


def budget_key(key: str, now: float) -> str:
    return f"budget:{key}:{time.strftime('%Y-%m-%d', time.gmtime(now))}"


class AccessControl:
    """Tokens, client secrets, the policy file and the store, as one decision per upgrade."""

    def __init__(self, settings: Settings, policy: Policy, store: Store) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        key = settings.bridge_secret_key
        #: Without BRIDGE_SECRET_KEY the key is this process's own: secrets then verify only
        #: here and until a restart (several instances must share one key).
        self.signing_key_shared = key is not None
        self.codec = SecretCodec(key.get_secret_value() if key else secrets.token_hex(32))

    @property
    def requires_token(self) -> bool:
        return bool(self.settings.bridge_api_keys)

    def token_id(self, token: str) -> str:
        return token_fingerprint(token)

    def verify_secret(self, value: str, now: float) -> SecretClaims:
        claims = self.codec.verify(value, now)
        if self.store.revoked(claims.id, now):
            raise SecretRefused("revoked")
        return claims

    def admit_upgrade(
        self,
        *,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        own_origins: Iterable[str],
        now: float,
        peer: str | None = None,
    ) -> Grant:
        """Origin, credential, model and limits; raises :class:`ClientError` / :class:`Refused`
        (the messages never contain what the client presented). A client address with too many
        failed authentications is throttled first."""
        failures_key = f"authfail:{peer}" if peer else None
        if failures_key is not None:
            failed, wait = self.store.recent(failures_key, AUTH_FAILURE_WINDOW_S, now)
            if failed >= AUTH_FAILURES_ALLOWED:
                throttled = Refused(
                    ErrorCode.RATE_LIMITED,
                    "Too many failed authentications from this address; try again later.",
                    retry_after_s=wait,
                )
                throttled.failures = failed + 1  # type: ignore[attr-defined]
                raise throttled
        try:
            return self._admit(headers=headers, query=query, own_origins=own_origins, now=now)
        except ClientError as refused:
            if failures_key is not None and refused.code is ErrorCode.UNAUTHORIZED:
                self.store.hit(failures_key, 1 << 30, AUTH_FAILURE_WINDOW_S, now)
                failed, _ = self.store.recent(failures_key, AUTH_FAILURE_WINDOW_S, now)
                refused.failures = failed  # type: ignore[attr-defined]
            raise

    def _admit(
        self,
        *,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        own_origins: Iterable[str],
        now: float,
    ) -> Grant:
        settings = self.settings
        protocols = offered_subprotocols(headers.get("Sec-WebSocket-Protocol"))
        secret = next(
            (t for t in presented_tokens(headers, query, protocols) if looks_like_secret(t)), None
        )
        claims: SecretClaims | None = None
        if secret is not None:
            admit(  # the origin still counts
                headers=headers,
                query=query,
                api_keys=(),
                allowed_origins=settings.allowed_origins,
                own=own_origins,
            )
            try:
                claims = self.verify_secret(secret, now)
            except SecretRefused as refused:
                raise ClientError(
                    ErrorCode.UNAUTHORIZED,
                    f"The client secret is not valid ({refused.reason}).",
                ) from None
            token_id = claims.token_id
            credential: dict[str, Any] = {
                "kind": "client_secret",
                "id": claims.id,
                "token_id": token_id,
                "expires_at": int(claims.expires_at),
            }
        else:
            admitted = admit(
                headers=headers,
                query=query,
                api_keys=settings.bridge_api_keys,
                allowed_origins=settings.allowed_origins,
                own=own_origins,
            )
            token_id = admitted.token_id
            credential = {"kind": "token" if token_id else "none", "id": token_id}
        policy = self.policy.for_token(token_id)
        if policy.label:
            credential["label"] = policy.label
        model = self._model(policy, claims, query.get("model"))
        pinned = policy.session
        if claims is not None:
            secret_fields = {
                k: v for k, v in claims.session.items() if k not in _NOT_SESSION_FIELDS
            }
            pinned = deep_merge(pinned, secret_fields)
        bound_model = claims is not None and isinstance(claims.session.get("model"), str)
        locked_model = model if policy.models or bound_model else None
        lock = (
            SessionLock(pinned, policy.max_output_tokens, model=locked_model)
            if pinned or policy.max_output_tokens is not None or locked_model
            else None
        )
        max_duration = settings.session_max_duration_s
        if policy.max_session_s is not None:
            max_duration = min(max_duration, policy.max_session_s)
        grant = Grant(credential, policy, model, lock, max_duration)
        self._limit(grant, token_id or "anonymous", now)
        return grant

    def twilio_grant(self) -> Grant:
        """A media stream Twilio signed: the default policy, no token."""
        policy = self.policy.default
        lock = (
            SessionLock(policy.session, policy.max_output_tokens)
            if policy.session or policy.max_output_tokens is not None
            else None
        )
        max_duration = self.settings.session_max_duration_s
        if policy.max_session_s is not None:
            max_duration = min(max_duration, policy.max_session_s)
        model = self.settings.openai_model
        grant = Grant({"kind": "twilio_signature"}, policy, model, lock, max_duration)
        grant._store, grant._key = self.store, "twilio"
        return grant

    def _model(self, policy: TokenPolicy, claims: SecretClaims | None, asked: str | None) -> str:
        bound = claims.session.get("model") if claims is not None else None
        if isinstance(bound, str):
            if asked and asked != bound:
                raise Refused(
                    ErrorCode.MODEL_NOT_ALLOWED,
                    f"This client secret is for the model {bound!r}, not {asked!r}.",
                )
            model = bound
        elif asked:
            model = asked
        else:
            model = self.settings.openai_model
            if not policy.allows_model(model):
                model = policy.models[0]
        if not policy.allows_model(model):
            raise Refused(
                ErrorCode.MODEL_NOT_ALLOWED,
                f"The model {model!r} is not allowed here; allowed: {', '.join(policy.models)}.",
            )
        return model

    def _limit(self, grant: Grant, key: str, now: float) -> None:
        """Budget, then concurrency, then the rate: a refused upgrade takes nothing."""
        policy, store = grant.policy, self.store
        grant._store, grant._key = store, key
        left = grant.budget_left(now)
        if left is not None and left <= 0:
            tomorrow = (int(now) // 86400 + 1) * 86400
            raise Refused(
                ErrorCode.QUOTA_EXCEEDED,
                "The daily token budget of this client is spent.",
                retry_after_s=tomorrow - now,
            )
        if policy.concurrent_sessions is not None:
            if not store.acquire(f"live:{key}", policy.concurrent_sessions):
                raise Refused(
                    ErrorCode.TOO_MANY_SESSIONS,
                    f"This client may have {policy.concurrent_sessions} sessions at once.",
                    retry_after_s=1.0,
                )
            grant._slot = True
        if policy.sessions_per_minute is not None:
            wait = store.hit(f"rate:{key}", policy.sessions_per_minute, RATE_WINDOW_S, now)
            if wait is not None:
                grant.release()
                raise Refused(
                    ErrorCode.RATE_LIMITED,
                    f"This client may open {policy.sessions_per_minute} sessions per minute.",
                    retry_after_s=wait,
                )


__all__ = ["AccessControl", "Grant", "Refused"]


def log_refusal(logger: logging.Logger, what: str, refused: ClientError, peer: str | None) -> None:
    """A refused client, logged in aggregate when it is guessing credentials: its first failure
    and the one that gets it throttled at INFO, the rest at DEBUG (it is told every time)."""
    failures = getattr(refused, "failures", None)
    quiet = failures is not None and failures not in (1, AUTH_FAILURES_ALLOWED)
    logger.log(
        logging.DEBUG if quiet else logging.INFO,
        what,
        extra={"code": refused.code.value, "client": peer or "unknown"}
        | ({"failed_authentications": failures} if failures else {}),
    )
