"""Short-lived client secrets in the API's own shape (``ek_…``), bound to a session config.

A secret is self-contained: the session configuration it was minted with, who minted it (the
client token's non-secret id), its id and its expiry, as URL-safe base64 JSON (deflated when
over a kilobyte: zlib costs ~40 µs even for a few bytes), signed with HMAC-SHA256 by
itsdangerous's ``Signer`` (which checks signatures in constant time). Any bridge instance that
shares the signing key verifies it with no shared store; only a revocation needs one. It
carries no part of the OpenAI key: the only key involved is the bridge's own signing key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode

#: What every secret starts with, as the API's ephemeral keys do.
SECRET_PREFIX = "ek_"  # noqa: S105 (a prefix, not a secret)
_SALT = b"realtime-bridge.client-secret.v1"
#: Payloads longer than this are deflated (a marker "." says so, as in itsdangerous).
_COMPRESS_OVER = 1024


@dataclass(frozen=True, slots=True)
class SecretClaims:
    """What a valid secret says."""

    id: str
    #: The non-secret id of the client token that minted it (its policy applies).
    token_id: str | None
    created_at: int
    #: Unix time, to the millisecond (the API's ``expires_at`` is this rounded up).
    expires_at: float
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MintedSecret:
    value: str
    claims: SecretClaims


class SecretRefused(Exception):
    """A secret that is not valid now; ``reason`` is for logs (never the value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def looks_like_secret(token: str) -> bool:
    return token.startswith(SECRET_PREFIX)


class SecretCodec:
    """Mints and verifies secrets with one signing key."""

    def __init__(self, signing_key: str) -> None:
        if len(signing_key) < 16:
            raise ValueError("the signing key must be at least 16 characters")
        # The key is derived once for this purpose (the salt), not on every signature.
        derived = hmac.new(signing_key.encode(), _SALT, hashlib.sha256).digest()
        self._signer = Signer(derived, key_derivation="none", digest_method=hashlib.sha256)

    def mint(
        self, session: dict[str, Any], *, token_id: str | None, ttl_s: int, now: float
    ) -> MintedSecret:
        claims = SecretClaims(
            id=f"cs_{secrets.token_urlsafe(12)}",
            token_id=token_id,
            created_at=int(now),
            expires_at=round(now + ttl_s, 3),
            session=session,
        )
        payload = {
            "i": claims.id,
            "t": token_id,
            "c": claims.created_at,
            "e": claims.expires_at,
            "s": session,
        }
        data = orjson.dumps(payload)
        body = base64_encode(data)
        if len(data) > _COMPRESS_OVER:
            deflated = zlib.compress(data)
            if len(deflated) < len(data):
                body = b"." + base64_encode(deflated)
        return MintedSecret(SECRET_PREFIX + self._signer.sign(body).decode(), claims)

    def verify(self, value: str, now: float) -> SecretClaims:
        """The claims of a valid, unexpired secret; raises :class:`SecretRefused`."""
        if not looks_like_secret(value):
            raise SecretRefused("not a client secret")
        signed = value[len(SECRET_PREFIX) :]
        try:
            body = self._signer.unsign(signed.encode())
        except (BadSignature, UnicodeEncodeError):
            raise SecretRefused("bad signature") from None
        # Base64 has spare bits in its last character: a changed last character can decode to
        # the same signature. Only the one canonical spelling of a secret is accepted.
        if not hmac.compare_digest(self._signer.sign(body), signed.encode()):
            raise SecretRefused("bad signature")
        try:  # signed by us, so well-formed unless the signing key leaked: checked anyway
            data = (
                zlib.decompress(base64_decode(body[1:]))
                if body[:1] == b"."
                else base64_decode(body)
            )
            payload = orjson.loads(data)
        except (ValueError, zlib.error):
            raise SecretRefused("malformed") from None
        if not isinstance(payload, dict):
            raise SecretRefused("malformed")
        try:
            claims = SecretClaims(
                id=str(payload["i"]),
                token_id=payload["t"] if isinstance(payload["t"], str) else None,
                created_at=int(payload["c"]),
                expires_at=float(payload["e"]),
                session=dict(payload["s"]),
            )
        except (KeyError, TypeError, ValueError):
            raise SecretRefused("malformed") from None
        if now >= claims.expires_at:
            raise SecretRefused("expired")
        return claims


__all__ = [
    "SECRET_PREFIX",
    "MintedSecret",
    "SecretClaims",
    "SecretCodec",
    "SecretRefused",
    "looks_like_secret",
]
