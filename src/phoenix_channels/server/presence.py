"""Presence tracking as ``Phoenix.Presence`` does it, for one server.

A channel tracks a key (a user id, say) with a meta map::

    async def handle_info(self, message, socket):
        socket.presence.track(socket, user_id, {"online_at": now})
        socket.push("presence_state", socket.presence.list(socket.topic))
        return noreply()

What the clients see (transcripts ``v2_presence_two_users``, README fact 12):

- every track broadcasts ``presence_diff``
  ``{"joins": {key: {"metas": [meta]}}, "leaves": {}}`` on the topic (a
  broadcast: both refs ``null``), to the tracking client too;
- when the tracking channel ends (leave, crash, stop, dropped connection),
  one ``presence_diff`` with its metas under ``"leaves"`` goes to the
  remaining members, never to the channel that left;
- :meth:`PresenceTracker.list` gives ``{key: {"metas": [...]}}``; several
  channels tracking one key make its metas list grow, oldest first, while
  each diff carries only the metas that changed;
- every meta gets a ``phx_ref``: 16 random URL-safe base64 characters. No
  ``phx_ref_prev`` ever appears, as there is no ``update``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from .channel import ChannelSocket
from .pubsub import PubSub

__all__ = ["PresenceTracker", "new_phx_ref"]

Meta = dict[str, Any]
Metas = list[Meta]
Presences = dict[str, dict[str, Metas]]
_Entries = list[tuple[ChannelSocket, Meta]]


def new_phx_ref() -> str:
    """A fresh ``phx_ref``: 12 random bytes as 16 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")


class PresenceTracker:
    """Who is present on which topic, and the diffs that announce it."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        # topic -> key -> [(owner socket, meta)], oldest first
        self._topics: dict[str, dict[str, _Entries]] = {}
        self._watched: set[ChannelSocket] = set()  # sockets with a cleanup hook

    def track(self, socket: ChannelSocket, key: str, meta: Mapping[str, Any]) -> str:
        """Track ``key`` on the socket's topic until the channel ends.

        Returns:
            The ``phx_ref`` added to the meta.

        Raises:
            ValueError: this channel already tracks ``key``.
            RuntimeError: the channel has ended.
        """
        if socket.closed:
            raise RuntimeError(f"cannot track {key!r}: the channel has ended")
        entries = self._topics.setdefault(socket.topic, {}).setdefault(key, [])
        if any(owner is socket for owner, _ in entries):
            raise ValueError(f"{key!r} is already tracked by this channel")
        if socket not in self._watched:
            self._watched.add(socket)
            socket.on_cleanup(lambda: self._untrack_all(socket))
        phx_ref = new_phx_ref()
        full_meta = {**meta, "phx_ref": phx_ref}
        entries.append((socket, full_meta))
        self._diff(socket.topic, joins={key: [full_meta]}, leaves={})
        return phx_ref

    def untrack(self, socket: ChannelSocket, key: str) -> None:
        """Stop tracking ``key`` for this channel (a leave diff if it was)."""
        self._remove(socket, only_key=key)

    def list(self, topic: str) -> Presences:
        """``{key: {"metas": [meta, ...]}}`` for ``topic``."""
        return {
            key: {"metas": [meta for _, meta in entries]}
            for key, entries in self._topics.get(topic, {}).items()
        }

    def _untrack_all(self, socket: ChannelSocket) -> None:
        self._watched.discard(socket)
        self._remove(socket, only_key=None)

    def _remove(self, socket: ChannelSocket, only_key: str | None) -> None:
        """Remove the socket's metas (of ``only_key``, or all): a leave diff."""
        by_key = self._topics.get(socket.topic, {})
        left: dict[str, Metas] = {}
        for key in [only_key] if only_key is not None else list(by_key):
            entries = by_key.get(key, [])
            mine = [meta for owner, meta in entries if owner is socket]
            if not mine:
                continue
            left[key] = mine
            kept = [(o, m) for o, m in entries if o is not socket]
            if kept:
                by_key[key] = kept
            else:
                del by_key[key]
        if not by_key:
            self._topics.pop(socket.topic, None)
        if left:
            self._diff(socket.topic, joins={}, leaves=left)

    def _diff(
        self,
        topic: str,
        joins: dict[str, Metas],
        leaves: dict[str, Metas],
    ) -> None:
        payload = {
            "joins": {k: {"metas": v} for k, v in joins.items()},
            "leaves": {k: {"metas": v} for k, v in leaves.items()},
        }
        self._pubsub.broadcast(topic, "presence_diff", payload)
