"""Keeping secrets out of logs, reprs and error messages.

Params whose name contains "token", "password" or "secret" (any case) are
secrets; so is the auth token. They are replaced *before* formatting.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SILENT_LOGGER",
    "is_secret",
    "redact_json_text",
    "redact_url",
]

REDACTED = "[REDACTED]"
_SECRET_WORDS = ("token", "password", "secret")
_SECRET_JSON_VALUE = re.compile(
    r'("[^"\\]*(?:token|password|secret)[^"\\]*"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)

#: For libraries that log what they send and receive at debug level
#: (websockets logs handshake headers and request lines, which carry tokens):
#: a logger outside the hierarchy that never emits.
SILENT_LOGGER = logging.Logger("phoenix_channels.silent", logging.CRITICAL + 1)


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


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


def redact_json_text(text: str) -> str:
    """JSON text with the string values of secret-named keys replaced."""
    return _SECRET_JSON_VALUE.sub(rf'\1"{REDACTED}"', text)
