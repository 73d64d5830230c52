"""phoenix_channels: a Python client for Phoenix Channels."""

from .errors import ConnectError, JoinError, PhoenixError, PushError, PushTimeout

__all__ = ["ConnectError", "JoinError", "PhoenixError", "PushError", "PushTimeout"]
