"""What the bridge reads of a caller's SDP offer before it answers: enough to refuse a malformed
one with a 400 (before any upstream connection), and the data channel's message size limit.

Pure. aiortc parses the offer fully; this only checks what a browser's offer always has, so that
garbage is refused in the API's shape instead of failing somewhere inside the peer connection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

#: RFC 8841 §6: a peer that says nothing accepts messages of 64 KiB.
DEFAULT_MAX_MESSAGE_SIZE = 65536
#: An offer is a few kilobytes; anything this long is not one.
MAX_OFFER_BYTES = 64 * 1024
CALL_ID_PREFIX = "rtc_"


class OfferError(ValueError):
    """The body is not an SDP offer the bridge can answer."""


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str
    #: The largest data channel message the caller takes (``a=max-message-size``; 0: any).
    max_message_size: int
    has_data_channel: bool


def read_offer(body: str) -> Offer:
    """Check an offer's shape: session lines, an audio section, ICE credentials, a DTLS
    fingerprint. Raises :class:`OfferError` saying what is missing."""
    if len(body) > MAX_OFFER_BYTES:
        raise OfferError(f"The SDP offer is longer than {MAX_OFFER_BYTES} bytes.")
    lines = [line.strip() for line in body.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise OfferError("The body is not an SDP offer (it must start with 'v=0').")
    media = [line.split()[0][2:] for line in lines if line.startswith("m=") and " " in line]
    if "audio" not in media:
        raise OfferError("The SDP offer has no audio section (m=audio).")
    for attribute, what in (
        ("a=ice-ufrag:", "ICE credentials (a=ice-ufrag)"),
        ("a=ice-pwd:", "ICE credentials (a=ice-pwd)"),
        ("a=fingerprint:", "a DTLS fingerprint (a=fingerprint)"),
    ):
        if not any(line.startswith(attribute) for line in lines):
            raise OfferError(f"The SDP offer has no {what}.")
    if "a=end-of-candidates" in lines and not any(
        line.startswith("a=candidate:") for line in lines
    ):
        # Complete and empty: nothing the bridge could ever reach (an offer sent before
        # gathering, as browsers do, has no end-of-candidates and is fine).
        raise OfferError("The SDP offer has no ICE candidates but says it has them all.")
    size = DEFAULT_MAX_MESSAGE_SIZE
    for line in lines:
        if line.startswith("a=max-message-size:"):
            try:
                size = int(line.partition(":")[2])
            except ValueError:
                raise OfferError("a=max-message-size is not a number.") from None
            if size < 0:
                raise OfferError("a=max-message-size is negative.")
    text = body if body.endswith("\n") else body + "\r\n"
    return Offer(sdp=text, max_message_size=size, has_data_channel="application" in media)


def new_call_id(session_id: str) -> str:
    """A call's id (``rtc_…``, as the API's) names its session: ``sess_X`` → ``rtc_X``, so a
    hangup that lands on another worker or instance is an end request for a known session."""
    suffix = session_id.partition("_")[2] or secrets.token_urlsafe(12)
    return CALL_ID_PREFIX + suffix


def session_id_of(call_id: str) -> str | None:
    if not call_id.startswith(CALL_ID_PREFIX) or len(call_id) > 64:
        return None
    return "sess_" + call_id[len(CALL_ID_PREFIX) :]


__all__ = [
    "CALL_ID_PREFIX",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Offer",
    "OfferError",
    "new_call_id",
    "read_offer",
    "session_id_of",
]
