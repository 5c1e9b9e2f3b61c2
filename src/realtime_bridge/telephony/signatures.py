"""Twilio's request signatures (``X-Twilio-Signature``), checked with the ``twilio`` package's
own validator (HMAC-SHA1 over the URL Twilio called and its POST parameters, compared in
constant time), so the bridge follows Twilio's algorithm exactly as Twilio ships it."""

from __future__ import annotations

from collections.abc import Mapping

from realtime_bridge.errors import ConfigError


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    from twilio.request_validator import RequestValidator  # an extra: only with Twilio

    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def require_validator() -> None:
    """TWILIO_AUTH_TOKEN needs the ``twilio`` package (``pip install realtime-bridge[twilio]``)."""
    try:
        import twilio.request_validator  # noqa: F401
    except ImportError:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN", "needs the twilio package: pip install 'realtime-bridge[twilio]'"
        ) from None


def public_url(base: str, path_qs: str, *, websocket: bool) -> str:
    """The URL Twilio called, as it signs it: ``PUBLIC_BASE_URL`` + path and query (``wss://``
    for the media stream)."""
    base = base.rstrip("/")
    if websocket:
        base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return base + path_qs


__all__ = ["public_url", "require_validator", "signature_valid"]
