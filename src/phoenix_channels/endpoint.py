"""Building the connection URL as phoenix.js does (PROTOCOL §5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["build_url", "normalize_endpoint", "serialize_params"]

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_TRANSPORT_SUFFIXES = ("/websocket", "/longpoll")
# encodeURIComponent leaves these unescaped.
_URI_COMPONENT_SAFE = "-_.!~*'()"


def normalize_endpoint(endpoint: str) -> str:
    """``ws(s)://host/path`` ending in ``/websocket``.

    ``http(s)`` maps to ``ws(s)``. Unlike phoenix.js, a trailing ``/`` is
    dropped and an endpoint that already names its transport
    (``.../websocket``) is kept as is, since Python users often pass that.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a string URL, got {endpoint!r}")
    parts = urlsplit(endpoint)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"endpoint must be an absolute ws://, wss://, http:// or https:// "
            f"URL such as 'ws://localhost:4000/socket', got {endpoint!r}"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/longpoll"):
        path = path[: -len("/longpoll")]
    if not path.endswith("/websocket"):
        path += "/websocket"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"


def serialize_params(params: Mapping[str, Any], parent: str | None = None) -> str:
    """``a=1&nested[b]=2&list[0]=x``, percent-encoded like encodeURIComponent."""
    pieces = []
    for key, value in params.items():
        name = f"{parent}[{key}]" if parent is not None else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            nested = serialize_params(value, name)
        elif isinstance(value, (list, tuple)):
            nested = serialize_params({str(i): v for i, v in enumerate(value)}, name)
        else:
            nested = f"{_encode(name)}={_encode(_text(value))}"
        if nested:
            pieces.append(nested)
    return "&".join(pieces)


def build_url(endpoint: str, params: Mapping[str, Any], vsn: str) -> str:
    """Endpoint, then the params, then ``vsn`` last, as phoenix.js orders them."""
    url = _append(endpoint, serialize_params(params))
    return _append(url, f"vsn={_encode(vsn)}")


def _append(url: str, query: str) -> str:
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _encode(text: str) -> str:
    return quote(text, safe=_URI_COMPONENT_SAFE)
