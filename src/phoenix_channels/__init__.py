"""phoenix_channels: a Python client for Phoenix Channels.

The semantics are those of the official phoenix.js client; all times are in
seconds. See ``Socket``, ``Channel`` and ``Push``.
"""

from .channel import Channel
from .errors import ConnectError, JoinError, PhoenixError, PushError, PushTimeout
from .presence import Presence
from .push import Push
from .socket import Socket

__all__ = [
    "Channel",
    "ConnectError",
    "JoinError",
    "PhoenixError",
    "Presence",
    "Push",
    "PushError",
    "PushTimeout",
    "Socket",
]
