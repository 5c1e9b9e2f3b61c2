"""Identifiers in the API's style: a prefix and 21 random alphanumerics (``item_…``)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A fresh id such as ``item_Bx3…`` (ids are random; content is deterministic)."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(21))
