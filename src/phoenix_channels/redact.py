"""Keeping secrets out of logs, reprs and error messages.

Params whose name contains "token", "password" or "secret" (any case) are
secrets; so is the auth token. They are replaced *before* formatting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["REDACTED", "is_secret", "redact_params", "redact_url"]

REDACTED = "[REDACTED]"
_SECRET_WORDS = ("token", "password", "secret")


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: REDACTED if is_secret(str(k)) else v for k, v in params.items()}


def redact_url(url: str) -> str:
    """The URL with secret query values and any userinfo password replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    if not parts.query:
        return urlunsplit(parts._replace(netloc=netloc))
    pairs = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        shown = REDACTED if is_secret(key) else quote(value, safe="")
        pairs.append(f"{quote(key, safe='[]')}={shown}")
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(pairs)))
