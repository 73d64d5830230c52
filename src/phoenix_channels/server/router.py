"""Topic routing: which channel class handles a topic.

Patterns work as in ``Phoenix.Socket.channel/3``: ``"room:*"`` matches every
topic that starts with ``"room:"`` (``"room:"`` itself included), and a
pattern without ``*`` matches only that exact topic. A ``*`` anywhere but at
the end is an error, as in Phoenix. The first matching pattern wins, in the
order of the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

from .channel import ChannelFactory

__all__ = ["Router"]


class Router:
    """Immutable table of ``pattern -> channel factory``.

    A factory is any zero-argument callable returning a
    :class:`~phoenix_channels.server.ServerChannel`, usually the class itself.
    """

    def __init__(self, routes: Mapping[str, ChannelFactory]) -> None:
        self._table: list[tuple[str, bool, ChannelFactory]] = []
        for pattern, factory in routes.items():
            prefix, star, rest = pattern.partition("*")
            if rest or (star and "*" in prefix):
                raise ValueError(
                    f"channel pattern {pattern!r}: a splat '*' must be the "
                    "last character, as in 'room:*'"
                )
            self._table.append((prefix, bool(star), factory))

    def match(self, topic: str) -> ChannelFactory | None:
        """The factory of the first pattern matching ``topic``, or ``None``."""
        for prefix, is_prefix, factory in self._table:
            if topic.startswith(prefix) if is_prefix else topic == prefix:
                return factory
        return None

    @property
    def patterns(self) -> list[str]:
        """The patterns, in matching order."""
        return [p + ("*" if star else "") for p, star, _ in self._table]
