"""Presence: who is on a topic, synced from ``presence_state``/``presence_diff``.

Theory of operation (PROTOCOL §7). A presence map is a plain dict
``{key: {"metas": [meta, ...], ...}}``; every meta carries the server's
``phx_ref``. The server sends the whole map once per join (the *state* event)
and then *diffs* ``{"joins": map, "leaves": map}``. The pure functions
:func:`sync_state`, :func:`sync_diff` and :func:`list_presences` do the
merging, and :class:`Presence` wires them to a channel:

- a diff that arrives before the state event of the channel's *current*
  join is held, and applied right after that state. A genuine Phoenix sends
  the joiner its own diff *before* its ``presence_state`` (README fact 12);
- after a rejoin (a new ``join_ref``) diffs are held again until the next
  state event (PROTOCOL §7.1, §14.12).

Differences from phoenix.js, all without changing any result:

- phoenix.js mutates its inputs: ``syncState`` rewrites the ``metas`` of the
  caller's ``newState`` entries, ``syncDiff`` rewrites the nested presences of
  the caller's state (PROTOCOL §7.2, §7.3). Here no input is ever mutated:
  changed entries are replaced by new dicts, unchanged ones are shared
  between input and result. The returned states, and the values callbacks
  get when they are called, are the same as in phoenix.js; only a reference
  kept by a callback no longer changes under it later.
- Ordering (PROTOCOL §7.4): every walk over a presence map, including
  :func:`list_presences` and the order of ``on_join``/``on_leave`` calls,
  uses JavaScript property order: integer-like keys first in ascending
  numeric order, then the other keys in insertion order. So ``"10"``,
  ``"2"``, ``"u3"`` list as ``2, 10, u3``, exactly as phoenix.js lists them.
- Keys such as ``__proto__`` or ``constructor`` are plain dict keys.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .callbacks import Callback, Registered, register

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Presence", "list_presences", "sync_diff", "sync_state"]

PresenceMap = Mapping[str, Mapping[str, Any]]
State = dict[str, dict[str, Any]]
OnJoin = Callable[[str, dict[str, Any] | None, dict[str, Any]], object]
OnLeave = Callable[[str, dict[str, Any], dict[str, Any]], object]
T = TypeVar("T")

DEFAULT_EVENTS: Mapping[str, str] = {"state": "presence_state", "diff": "presence_diff"}

# A JS array index is a canonical decimal integer below 2**32 - 1; such own
# property names come first, ascending (ECMA-262 OrdinaryOwnPropertyKeys).
_MAX_ARRAY_INDEX = 2**32 - 2


def _array_index(key: object) -> int | None:
    if not isinstance(key, str) or not key.isascii() or not key.isdigit():
        return None
    if len(key) > 1 and key[0] == "0":
        return None  # "01" is not canonical: an ordinary string key in JS
    index = int(key)
    return index if index <= _MAX_ARRAY_INDEX else None


def _js_keys(obj: Mapping[str, Any]) -> list[str]:
    """The keys of ``obj`` in JavaScript own-property order (PROTOCOL §7.4)."""
    indexed: list[tuple[int, str]] = []
    named: list[str] = []
    for key in obj:
        index = _array_index(key)
        if index is None:
            named.append(key)
        else:
            indexed.append((index, key))
    if not indexed:
        return named
    indexed.sort()
    return [key for _, key in indexed] + named


def _refs(metas: list[Any]) -> Collection[Any]:
    """The ``phx_ref`` values of ``metas``, for membership tests."""
    refs = [meta.get("phx_ref") for meta in metas]
    try:
        return set(refs)
    except TypeError:  # an unhashable ref: JSON allows it, so fall back
        return refs


def _without(metas: list[Any], refs: Collection[Any]) -> list[Any]:
    return [meta for meta in metas if meta.get("phx_ref") not in refs]


def sync_state(
    current: PresenceMap,
    new: PresenceMap,
    on_join: OnJoin | None = None,
    on_leave: OnLeave | None = None,
) -> State:
    """Merge a full server state into ``current``; return the new state.

    Keys missing from ``new`` leave; for keys in both, metas are matched by
    ``phx_ref`` and only the differences join or leave (PROTOCOL §7.2).
    Neither argument is mutated.

    Args:
        current: the presences known so far.
        new: the server's ``presence_state`` payload.
        on_join: called as ``on_join(key, current_presence_or_None,
            joined_presence)`` for each key with new metas.
        on_leave: called as ``on_leave(key, remaining_presence,
            left_presence)`` for each key that lost metas.

    Returns:
        The synced presences. Callbacks are called directly; what they
        raise propagates (the :class:`Presence` instance logs it instead).
    """
    state: dict[str, Any] = copy.deepcopy(dict(current))  # PROTOCOL §7.2 step 1
    joins: State = {}
    leaves: State = {}
    for key in _js_keys(state):
        if new.get(key) is None:
            leaves[key] = state[key]
    for key in _js_keys(new):
        new_presence = new[key]
        cur = state.get(key)
        if cur is None:
            joins[key] = dict(new_presence)
            continue
        joined = _without(new_presence["metas"], _refs(cur["metas"]))
        left = _without(cur["metas"], _refs(new_presence["metas"]))
        # phoenix.js assigns joined metas into the caller's newState entry;
        # a new dict gives the same diff without touching the caller's data.
        if joined:
            joins[key] = {**new_presence, "metas": joined}
        if left:
            leaves[key] = {**cur, "metas": left}
    return sync_diff(state, {"joins": joins, "leaves": leaves}, on_join, on_leave)


def sync_diff(
    state: PresenceMap,
    diff: Mapping[str, Any],
    on_join: OnJoin | None = None,
    on_leave: OnLeave | None = None,
) -> State:
    """Apply a ``{"joins": ..., "leaves": ...}`` diff; return the new state.

    Joins are applied before leaves, so an update (a join whose meta has
    ``phx_ref_prev`` plus a leave of the old meta) replaces the meta. A leave
    for an unknown key is skipped without calling ``on_leave``
    (PROTOCOL §7.3). Neither argument is mutated.

    Args:
        state: the current presences.
        diff: the server's ``presence_diff`` payload; a missing ``joins`` or
            ``leaves`` counts as empty.
        on_join: ``on_join(key, presence_before_or_None, joined_presence)``.
        on_leave: ``on_leave(key, presence_after_removal, left_presence)``;
            a presence with no metas left is then removed from the state.

    Returns:
        The new presences. Callbacks are called directly; what they raise
        propagates.
    """
    result: dict[str, Any] = dict(state)  # entries are replaced, never mutated
    diff = copy.deepcopy(diff)  # PROTOCOL §7.3 step 2
    joins: PresenceMap = diff.get("joins") or {}
    leaves: PresenceMap = diff.get("leaves") or {}
    for key in _js_keys(joins):
        joined = dict(joins[key])
        cur = result.get(key)
        merged = copy.deepcopy(joined)
        if cur is not None:
            kept = _without(cur["metas"], _refs(merged["metas"]))
            merged["metas"] = kept + merged["metas"]  # old metas first
        result[key] = merged
        if on_join is not None:
            on_join(key, cur, joined)
    for key in _js_keys(leaves):
        left = dict(leaves[key])
        cur = result.get(key)
        if cur is None:
            continue  # PROTOCOL §7.3 4.1: no on_leave for unknown keys
        remaining = {**cur, "metas": _without(cur["metas"], _refs(left["metas"]))}
        result[key] = remaining
        if on_leave is not None:
            on_leave(key, remaining, left)
        if not remaining["metas"]:
            del result[key]
    return result


@overload
def list_presences(presences: PresenceMap, chooser: None = None) -> list[Any]: ...
@overload
def list_presences(
    presences: PresenceMap, chooser: Callable[[str, Any], T]
) -> list[T]: ...
def list_presences(
    presences: PresenceMap, chooser: Callable[[str, Any], Any] | None = None
) -> list[Any]:
    """List ``presences`` in JavaScript key order (PROTOCOL §7.4).

    Args:
        presences: a presence map.
        chooser: called as ``chooser(key, presence)``; its results are
            listed. By default the presences themselves are.
    """
    if chooser is None:
        return [presences[key] for key in _js_keys(presences)]
    return [chooser(key, presences[key]) for key in _js_keys(presences)]


def _is_presence_map(obj: object) -> bool:
    return type(obj) is dict and all(
        type(presence) is dict
        and type(presence.get("metas")) is list
        and all(type(meta) is dict for meta in presence["metas"])
        for presence in obj.values()
    )


def _is_diff(obj: object) -> bool:
    return type(obj) is dict and all(
        _is_presence_map(obj.get(part) or {}) for part in ("joins", "leaves")
    )


class Presence:
    """The presences of one channel, kept in sync with the server.

    Create it before the channel's messages arrive (usually before
    ``join()``); it binds the state and diff events on the channel.

    Args:
        channel: the channel to follow.
        events: ``{"state": ..., "diff": ...}`` event names; either may be
            left out. Defaults to ``presence_state`` and ``presence_diff``.

    Raises:
        TypeError / ValueError: ``events`` has unknown keys or non-string
            names.
    """

    sync_state = staticmethod(sync_state)
    sync_diff = staticmethod(sync_diff)
    list_presences = staticmethod(list_presences)

    def __init__(
        self, channel: Channel, events: Mapping[str, str] | None = None
    ) -> None:
        names = {**DEFAULT_EVENTS, **(events or {})}
        unknown = set(names) - set(DEFAULT_EVENTS)
        if unknown:
            raise ValueError(
                f"unknown presence events {sorted(unknown)}; "
                'use {"state": ..., "diff": ...}'
            )
        for name in names.values():
            if not isinstance(name, str):
                raise TypeError(f"event names must be strings, got {name!r}")
        self.channel = channel
        self._state: State = {}
        self._pending_diffs: list[dict[str, Any]] = []
        self._join_ref: str | None = None
        self._on_join: Registered | None = None
        self._on_leave: Registered | None = None
        self._on_sync: Registered | None = None
        channel.on(names["state"], self._receive_state)
        channel.on(names["diff"], self._receive_diff)

    def __repr__(self) -> str:
        return f"<Presence {self.channel.topic!r} keys={len(self._state)}>"

    def on_join(self, callback: Callback) -> None:
        """Call ``callback(key, current, new)`` when a key gains metas.

        ``current`` is the presence before the join (``None`` for a new key),
        ``new`` holds only the joined metas. Replaces the previous callback,
        as in phoenix.js.
        """
        self._on_join = register(callback)

    def on_leave(self, callback: Callback) -> None:
        """Call ``callback(key, current, left)`` when a key loses metas.

        ``current`` is the presence after the removal (its ``metas`` may be
        empty: the key is then gone). Replaces the previous callback.
        """
        self._on_leave = register(callback)

    def on_sync(self, callback: Callback) -> None:
        """Call ``callback()`` after each applied state or diff.

        Not called for a diff that is held until the state arrives.
        Replaces the previous callback.
        """
        self._on_sync = register(callback)

    @overload
    def list(self, chooser: None = None) -> list[Any]: ...
    @overload
    def list(self, chooser: Callable[[str, Any], T]) -> list[T]: ...
    def list(self, chooser: Callable[[str, Any], Any] | None = None) -> list[Any]:
        """The current presences (or ``chooser(key, presence)`` of each).

        Listed in phoenix.js order: integer-like keys first (PROTOCOL §7.4).
        """
        return list_presences(self._state, chooser)

    # -- inbound (channel callbacks) ----------------------------------------

    def _in_pending_sync_state(self) -> bool:
        """PROTOCOL §7.1: no state yet for the channel's current join."""
        return not self._join_ref or self._join_ref != self.channel.join_ref

    def _receive_state(self, payload: Any) -> None:
        if not _is_presence_map(payload):
            self._malformed("state", payload)
            return
        self._join_ref = self.channel.join_ref
        on_join, on_leave = self._join_hook(), self._leave_hook()
        self._state = sync_state(self._state, payload, on_join, on_leave)
        # Diffs held until now, including the joiner's own diff that a real
        # Phoenix sends before the state (README fact 12), apply in order.
        pending, self._pending_diffs = self._pending_diffs, []
        for diff in pending:
            self._state = sync_diff(self._state, diff, on_join, on_leave)
        self._fire(self._on_sync, ())

    def _receive_diff(self, payload: Any) -> None:
        if not _is_diff(payload):
            self._malformed("diff", payload)
            return
        if self._in_pending_sync_state():
            # Our own copy: other handlers of this event share the payload.
            self._pending_diffs.append(copy.deepcopy(payload))
            return
        self._state = sync_diff(
            self._state, payload, self._join_hook(), self._leave_hook()
        )
        self._fire(self._on_sync, ())

    def _malformed(self, kind: str, payload: Any) -> None:
        self.channel.socket._log.warning(
            "! %s: malformed presence %s dropped: %.200r",
            self.channel.topic,
            kind,
            payload,
        )

    def _join_hook(self) -> OnJoin | None:
        cb = self._on_join
        if cb is None:
            return None
        return lambda key, cur, new: self._fire(cb, (key, cur, new))

    def _leave_hook(self) -> OnLeave | None:
        cb = self._on_leave
        if cb is None:
            return None
        return lambda key, cur, left: self._fire(cb, (key, cur, left))

    def _fire(self, cb: Registered | None, args: tuple[Any, ...]) -> None:
        # The socket's invoke logs what a user callback raises (STYLE §6).
        if cb is not None:
            self.channel.socket._invoke(cb, args)
