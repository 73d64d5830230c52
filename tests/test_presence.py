"""Presence: the phoenix.js presence_test.js cases (PROTOCOL §12.5) and more.

The pure functions are tested on plain dicts; the instance tests drive a real
Channel on a fake socket with vsn 2.0.0 frames, as a Phoenix server sends
them (README fact 12: the joiner's own diff may come before its state).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from phoenix_channels import Presence
from tests.fakes import open_socket, reply

TOPIC = "presence:lobby"


def metas(*metas: dict[str, Any]) -> dict[str, Any]:
    return {"metas": list(metas)}


def fixture_joins() -> dict[str, Any]:
    return {"u1": metas({"id": 1, "phx_ref": "1.2"})}


def fixture_leaves() -> dict[str, Any]:
    return {"u2": metas({"id": 2, "phx_ref": "2"})}


def fixture_state() -> dict[str, Any]:
    return {
        "u1": metas({"id": 1, "phx_ref": "1"}),
        "u2": metas({"id": 2, "phx_ref": "2"}),
        "u3": metas({"id": 3, "phx_ref": "3"}),
    }


def list_by_first(key: str, presence: dict[str, Any]) -> Any:
    return presence["metas"][0]


class Recorder:
    """Keeps a deep copy of every on_join/on_leave call, like the JS tests."""

    def __init__(self) -> None:
        self.joins: list[tuple[str, Any, Any]] = []
        self.leaves: list[tuple[str, Any, Any]] = []

    def on_join(self, key: str, current: Any, new: Any) -> None:
        self.joins.append((key, copy.deepcopy(current), copy.deepcopy(new)))

    def on_leave(self, key: str, current: Any, left: Any) -> None:
        self.leaves.append((key, copy.deepcopy(current), copy.deepcopy(left)))


# -- instance helpers --------------------------------------------------------


def joined_presence(events: dict[str, str] | None = None):
    """A Presence on a channel that has joined TOPIC on a fake socket."""
    socket, timers, net = open_socket()
    channel = socket.channel(TOPIC)
    presence = Presence(channel, events)
    channel.join()
    ref = channel.join_ref
    net.conn.receive(reply(ref, ref, TOPIC, "ok", {"joined": TOPIC}))
    assert channel.state == "joined"
    return presence, channel, net, timers


def send_state(net, channel, state: dict[str, Any], event="presence_state") -> None:
    # presence_state is a push: it carries the join_ref (README fact 2).
    net.conn.receive([channel.join_ref, None, TOPIC, event, state])


def send_diff(net, joins=None, leaves=None, event="presence_diff") -> None:
    # presence_diff is a broadcast: both refs are null (README fact 2).
    payload = {"joins": joins or {}, "leaves": leaves or {}}
    net.conn.receive([None, None, TOPIC, event, payload])


# -- syncState (PROTOCOL §12.5, 1-3) -----------------------------------------


def test_sync_state_syncs_empty_state():
    """Syncing into an empty state leaves the input alone and yields newState."""
    new_state = {"u1": metas({"id": 1, "phx_ref": "1"})}
    state: dict[str, Any] = {}
    Presence.sync_state(state, new_state)
    assert state == {}

    state = Presence.sync_state(state, new_state)
    assert state == new_state


def test_sync_state_on_joins_new_presences_and_on_leaves_left_presences():
    """New keys get on_join with no current presence; vanished keys get on_leave."""
    new_state = fixture_state()
    state = {"u4": metas({"id": 4, "phx_ref": "4"})}
    rec = Recorder()

    state = Presence.sync_state(state, new_state, rec.on_join, rec.on_leave)

    assert state == new_state
    assert rec.joins == [
        ("u1", None, metas({"id": 1, "phx_ref": "1"})),
        ("u2", None, metas({"id": 2, "phx_ref": "2"})),
        ("u3", None, metas({"id": 3, "phx_ref": "3"})),
    ]
    assert rec.leaves == [("u4", metas(), metas({"id": 4, "phx_ref": "4"}))]


def test_sync_state_on_joins_only_newly_added_metas():
    """A known key with an extra meta gets on_join with only that meta."""
    new_state = {"u3": metas({"id": 3, "phx_ref": "3"}, {"id": 3, "phx_ref": "3.new"})}
    state = {"u3": metas({"id": 3, "phx_ref": "3"})}
    rec = Recorder()

    state = Presence.sync_state(
        state, copy.deepcopy(new_state), rec.on_join, rec.on_leave
    )

    assert state == new_state
    assert rec.joins == [
        (
            "u3",
            metas({"id": 3, "phx_ref": "3"}),
            metas({"id": 3, "phx_ref": "3.new"}),
        )
    ]
    assert rec.leaves == []


# -- syncDiff (PROTOCOL §12.5, 4-6) ------------------------------------------


def test_sync_diff_syncs_empty_state():
    """Joins applied to an empty state become the state."""
    joins = {"u1": metas({"id": 1, "phx_ref": "1"})}
    state = Presence.sync_diff({}, {"joins": joins, "leaves": {}})
    assert state == joins


def test_sync_diff_removes_presence_when_meta_is_empty_and_adds_additional_meta():
    """A key whose last meta leaves is removed; a joined meta is appended."""
    state = Presence.sync_diff(
        fixture_state(), {"joins": fixture_joins(), "leaves": fixture_leaves()}
    )
    assert state == {
        "u1": metas({"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"}),
        "u3": metas({"id": 3, "phx_ref": "3"}),
    }


def test_sync_diff_removes_meta_while_leaving_key_if_other_metas_exist():
    """A leave removes only its metas; the key stays while others remain."""
    state = {"u1": metas({"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"})}
    state = Presence.sync_diff(
        state, {"joins": {}, "leaves": {"u1": metas({"id": 1, "phx_ref": "1"})}}
    )
    assert state == {"u1": metas({"id": 1, "phx_ref": "1.2"})}


# -- keys colliding with Object.prototype properties (PROTOCOL §12.5, 7-8) ----

PROTO_KEYS = ["__proto__", "constructor", "hasOwnProperty"]


def proto_state() -> dict[str, Any]:
    return {
        key: metas({"id": n, "phx_ref": str(n)})
        for n, key in enumerate(PROTO_KEYS, start=1)
    }


def test_sync_state_joins_and_leaves_them_without_touching_the_prototype():
    """Keys like __proto__ and constructor join and leave as plain keys."""
    rec = Recorder()
    state = Presence.sync_state({}, proto_state(), rec.on_join, rec.on_leave)

    assert type(state) is dict
    assert state == proto_state()
    assert [key for key, _, _ in rec.joins] == PROTO_KEYS
    assert [m["id"] for m in Presence.list_presences(state, list_by_first)] == [
        1,
        2,
        3,
    ]

    state = Presence.sync_state(state, {}, rec.on_join, rec.on_leave)
    assert state == {}
    assert [key for key, _, _ in rec.leaves] == PROTO_KEYS
    assert not hasattr({}, "metas")


def test_sync_diff_joins_and_leaves_them_without_touching_the_prototype():
    """sync_diff joins and leaves __proto__-like keys as plain keys."""
    rec = Recorder()
    state = Presence.sync_diff(
        {}, {"joins": proto_state(), "leaves": {}}, rec.on_join, rec.on_leave
    )
    assert type(state) is dict
    assert list(state) == PROTO_KEYS
    assert [key for key, _, _ in rec.joins] == PROTO_KEYS

    state = Presence.sync_diff(
        state, {"joins": {}, "leaves": proto_state()}, rec.on_join, rec.on_leave
    )
    assert state == {}
    assert [key for key, _, _ in rec.leaves] == PROTO_KEYS
    assert not hasattr({}, "metas")


# -- list (PROTOCOL §12.5, 9-10) ----------------------------------------------


def test_list_lists_full_presence_by_default():
    """Without a chooser, list returns the presences themselves."""
    assert Presence.list_presences(fixture_state()) == [
        metas({"id": 1, "phx_ref": "1"}),
        metas({"id": 2, "phx_ref": "2"}),
        metas({"id": 3, "phx_ref": "3"}),
    ]


def test_list_lists_with_custom_function():
    """The chooser gets (key, presence) and its results are listed."""
    state = {
        "u1": metas({"id": 1, "phx_ref": "1.first"}, {"id": 1, "phx_ref": "1.second"})
    }
    seen: list[str] = []

    def first(key: str, presence: dict[str, Any]) -> Any:
        seen.append(key)
        return presence["metas"][0]

    assert Presence.list_presences(state, first) == [{"id": 1, "phx_ref": "1.first"}]
    assert seen == ["u1"]


# -- instance (PROTOCOL §12.5, 11-14) ----------------------------------------


def test_instance_syncs_state_and_diffs():
    """A state event and then a diff event update the instance's list."""
    presence, channel, net, _ = joined_presence()
    user1 = metas({"id": 1, "phx_ref": "1"})
    user2 = metas({"id": 2, "phx_ref": "2"})

    send_state(net, channel, {"u1": user1, "u2": user2})
    assert presence.list(list_by_first) == [
        {"id": 1, "phx_ref": "1"},
        {"id": 2, "phx_ref": "2"},
    ]

    send_diff(net, leaves={"u1": user1})
    assert presence.list(list_by_first) == [{"id": 2, "phx_ref": "2"}]


def test_instance_applies_pending_diff_if_state_is_not_yet_synced():
    """Diffs before the state of the current join are held, then applied."""
    presence, channel, net, timers = joined_presence()
    rec = Recorder()
    presence.on_join(rec.on_join)
    presence.on_leave(rec.on_leave)
    user1 = metas({"id": 1, "phx_ref": "1"})
    user2 = metas({"id": 2, "phx_ref": "2"})
    user3 = metas({"id": 3, "phx_ref": "3"})

    send_diff(net, leaves={"u2": user2})
    assert presence.list(list_by_first) == []
    assert presence._pending_diffs == [{"joins": {}, "leaves": {"u2": user2}}]

    send_state(net, channel, {"u1": user1, "u2": user2})
    assert rec.leaves == [("u2", metas(), user2)]
    assert presence.list(list_by_first) == [{"id": 1, "phx_ref": "1"}]
    assert presence._pending_diffs == []
    assert rec.joins == [("u1", None, user1), ("u2", None, user2)]

    # Disconnect and reconnect: the channel rejoins with a new join_ref.
    old_ref = channel.join_ref
    net.conn.server_close(1006)
    timers.advance(0.01)  # first reconnect attempt (PROTOCOL §14.10)
    net.conn.open()  # the socket open rejoins the errored channel
    assert channel.join_ref not in (None, old_ref)
    assert presence._in_pending_sync_state()

    send_diff(net, leaves={"u1": user1})
    assert presence.list(list_by_first) == [{"id": 1, "phx_ref": "1"}]

    send_state(net, channel, {"u1": user1, "u3": user3})
    assert presence.list(list_by_first) == [{"id": 3, "phx_ref": "3"}]


def test_instance_allows_custom_channel_events():
    """The state and diff event names can be changed."""
    presence, channel, net, _ = joined_presence(
        {"state": "the_state", "diff": "the_diff"}
    )
    user1 = metas({"id": 1, "phx_ref": "1"})

    send_state(net, channel, {"user1": user1}, event="the_state")
    assert presence.list(list_by_first) == [{"id": 1, "phx_ref": "1"}]

    send_diff(net, leaves={"user1": user1}, event="the_diff")
    assert presence.list(list_by_first) == []


def test_instance_updates_existing_meta_for_a_presence_update_leave_and_join():
    """An update (join with phx_ref_prev + leave of the old meta) replaces it."""
    presence, channel, net, _ = joined_presence()
    user1 = metas({"id": 1, "phx_ref": "1"})
    user2 = metas({"id": 2, "name": "chris", "phx_ref": "2"})
    send_state(net, channel, {"u1": user1, "u2": user2})
    rec = Recorder()
    presence.on_join(rec.on_join)
    presence.on_leave(rec.on_leave)

    def all_metas(key: str, presence: dict[str, Any]) -> Any:
        return presence["metas"]

    assert presence.list(all_metas) == [user1["metas"], user2["metas"]]

    new_meta = {"id": 2, "name": "chris.2", "phx_ref": "2.2", "phx_ref_prev": "2"}
    send_diff(net, joins={"u2": metas(new_meta)}, leaves={"u2": user2})

    assert presence.list(all_metas) == [user1["metas"], [new_meta]]
    assert rec.joins == [("u2", user2, metas(new_meta))]
    # PROTOCOL §7.3: on_leave sees the presence already updated.
    assert rec.leaves == [("u2", metas(new_meta), user2)]


# -- beyond the JS suite -----------------------------------------------------

# Conn A of v2_presence_two_users (Phoenix 1.7.24), values as recorded.
U1 = metas({"online_at": "1796398709", "phx_ref": "GO4XG92irwpCiANC"})
U2 = metas({"online_at": "1796398709", "phx_ref": "GO4XG-bDlvZCiANi"})


def test_own_diff_before_state_as_genuine_phoenix_sends_it():
    """The joiner's own diff, sent before presence_state, is held and applied after."""
    presence, channel, net, _ = joined_presence()
    rec = Recorder()
    syncs: list[list[Any]] = []
    presence.on_join(rec.on_join)
    presence.on_sync(lambda: syncs.append(presence.list()))

    send_diff(net, joins={"u1": U1})  # [null,null,...,"presence_diff",...]
    assert presence.list() == []
    assert syncs == []  # a held diff does not sync

    send_state(net, channel, {"u1": U1})  # [join_ref,null,...,"presence_state"]
    assert presence.list() == [U1]  # one meta: the replayed diff changes nothing
    assert syncs == [[U1]]
    # phoenix.js calls on_join for the state and again for the replayed diff.
    assert [(key, cur) for key, cur, _ in rec.joins] == [("u1", None), ("u1", U1)]

    send_diff(net, joins={"u2": U2})  # B joins
    assert presence.list() == [U1, U2]
    send_diff(net, leaves={"u2": U2})  # B leaves
    assert presence.list() == [U1]
    assert len(syncs) == 3


def test_rejoin_resets_pending_state():
    """After a rejoin, diffs wait for the state of the new join_ref."""
    presence, channel, net, timers = joined_presence()
    syncs: list[Any] = []
    presence.on_sync(lambda: syncs.append(1))
    send_state(net, channel, {"u1": U1})
    send_diff(net, joins={"u2": U2})
    assert presence.list() == [U1, U2]
    assert len(syncs) == 2

    # t=0: the channel process crashes; the rejoin runs after 1 s.
    old_ref = channel.join_ref
    net.conn.receive([old_ref, old_ref, TOPIC, "phx_error", {}])
    timers.advance(1.0)
    new_ref = channel.join_ref
    assert new_ref not in (None, old_ref)
    assert presence._in_pending_sync_state()

    send_diff(net, leaves={"u2": U2})
    net.conn.receive(reply(new_ref, new_ref, TOPIC, "ok", {"joined": TOPIC}))
    assert presence.list() == [U1, U2]  # held, not applied
    assert len(syncs) == 2

    # A late state of the old join is dropped by the channel (PROTOCOL §4.8).
    net.conn.receive([old_ref, None, TOPIC, "presence_state", {}])
    assert presence.list() == [U1, U2]

    send_state(net, channel, {"u1": U1, "u2": U2})
    assert presence.list() == [U1]
    assert presence._pending_diffs == []
    assert len(syncs) == 3
    assert not presence._in_pending_sync_state()


def test_callbacks_that_raise_are_logged_and_later_ones_still_run(caplog):
    """A raising on_join/on_leave is logged; the next calls and on_sync still run."""
    presence, channel, net, _ = joined_presence()
    calls: list[tuple[str, str]] = []

    def on_join(key: str) -> None:
        calls.append(("join", key))
        raise RuntimeError(f"join boom {key}")

    def on_leave(key: str, current: Any, left: Any) -> None:
        calls.append(("leave", key))
        raise ValueError("leave boom")

    presence.on_join(on_join)
    presence.on_leave(on_leave)
    presence.on_sync(lambda: calls.append(("sync", "")))

    with caplog.at_level(logging.ERROR, logger="phoenix_channels.test"):
        send_state(net, channel, {"u1": U1, "u2": U2})
        send_diff(net, leaves={"u1": U1})

    assert calls == [
        ("join", "u1"),
        ("join", "u2"),
        ("sync", ""),
        ("leave", "u1"),
        ("sync", ""),
    ]
    assert presence.list() == [U2]
    raised = [r for r in caplog.records if r.exc_info]
    assert [str(r.exc_info[1]) for r in raised if r.exc_info] == [
        "join boom u1",
        "join boom u2",
        "leave boom",
    ]


async def test_async_callbacks_are_scheduled():
    """``async def`` callbacks run on the loop and see the values of their call."""
    presence, channel, net, timers = joined_presence()
    seen: list[tuple[str, Any]] = []

    async def on_join(key: str, current: Any, new: Any) -> None:
        await asyncio.sleep(0)
        seen.append((key, new))

    presence.on_join(on_join)
    send_state(net, channel, {"u1": U1})
    send_diff(net, leaves={"u1": U1})
    await asyncio.gather(*timers.tasks)
    assert seen == [("u1", U1)]


def test_list_with_and_without_chooser():
    """presence.list() gives the presences; with a chooser, its results."""
    presence, channel, net, _ = joined_presence()
    assert presence.list() == []
    send_state(net, channel, {"u1": U1, "u2": U2})

    assert presence.list() == [U1, U2]
    assert presence.list(lambda key, p: (key, len(p["metas"]))) == [
        ("u1", 1),
        ("u2", 1),
    ]


def test_list_uses_javascript_key_order():
    """Integer-like keys list first, ascending, as phoenix.js lists them (§7.4)."""
    keys = ["u3", "10", "2", "01", "-1", "4294967295", "4294967294", "0"]
    state = {key: metas({"phx_ref": key}) for key in keys}

    listed = Presence.list_presences(state, lambda key, p: key)

    assert listed == ["0", "2", "10", "4294967294", "u3", "01", "-1", "4294967295"]


def test_pure_functions_do_not_mutate_their_inputs():
    """Unlike phoenix.js, sync_state and sync_diff leave every input as it was."""
    current = fixture_state()
    new = {
        "u1": metas({"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"}),
        "u3": metas({"id": 3, "phx_ref": "3.1"}),
    }
    diff = {"joins": fixture_joins(), "leaves": {"u1": metas({"phx_ref": "1"})}}
    before = copy.deepcopy((current, new, diff))

    synced = Presence.sync_state(current, new)
    diffed = Presence.sync_diff(current, diff)

    assert (current, new, diff) == before
    assert synced == new
    assert diffed["u1"] == metas({"id": 1, "phx_ref": "1.2"})


def test_sync_diff_skips_on_leave_for_unknown_keys():
    """A leave for a key that is not present calls no on_leave (PROTOCOL §7.3)."""
    rec = Recorder()
    state = Presence.sync_diff(
        {}, {"joins": {}, "leaves": fixture_leaves()}, rec.on_join, rec.on_leave
    )
    assert state == {}
    assert rec.leaves == []


def test_malformed_presence_events_are_dropped_with_a_warning(caplog):
    """A state or diff that is not a presence map is logged and changes nothing."""
    presence, channel, net, _ = joined_presence()
    send_state(net, channel, {"u1": U1})
    syncs: list[int] = []
    presence.on_sync(lambda: syncs.append(1))

    with caplog.at_level(logging.WARNING, logger="phoenix_channels.test"):
        send_state(net, channel, {"u1": {"no_metas": []}})
        send_state(net, channel, {"u1": {"metas": ["not a dict"]}})
        send_diff(net, joins={"u2": None})
        net.conn.receive([None, None, TOPIC, "presence_diff", ["not", "a", "dict"]])

    assert presence.list() == [U1]
    assert syncs == []
    assert sum("malformed presence" in r.getMessage() for r in caplog.records) == 4


def test_events_option_is_checked():
    """Unknown event keys or non-string names raise at once."""
    socket, _, _ = open_socket()
    channel = socket.channel(TOPIC)
    with pytest.raises(ValueError, match="unknown presence events"):
        Presence(channel, {"sync": "x"})
    with pytest.raises(TypeError):
        Presence(channel, {"state": 1})  # type: ignore[dict-item]


# -- property: diffs and a direct state sync agree ---------------------------

KEYS = ["u1", "u2", "2", "10", "__proto__", "constructor"]

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "update"]),
        st.sampled_from(KEYS),
        st.integers(min_value=0, max_value=7),
    ),
    max_size=40,
)


def simulate(ops):
    """Members join, leave and update; returns the events and the final state.

    Each event is ``(kind, key, meta)``; every meta has a unique phx_ref.
    """
    members: dict[str, list[dict[str, Any]]] = {}
    events: list[tuple[str, str, dict[str, Any]]] = []
    for n, (kind, key, pick) in enumerate(ops):
        current = members.setdefault(key, [])
        if kind == "join":
            meta = {"phx_ref": f"r{n}", "n": n}
            current.append(meta)
            events.append(("join", key, meta))
        elif current:
            old = current[pick % len(current)]
            if kind == "update":
                meta = {"phx_ref": f"r{n}", "phx_ref_prev": old["phx_ref"], "n": n}
                current.append(meta)
                events.append(("join", key, meta))
            current.remove(old)
            events.append(("leave", key, old))
    final = {key: {"metas": m} for key, m in members.items() if m}
    return events, final


def simulate_state(events) -> dict[str, Any]:
    """The state after ``events``, computed directly."""
    members: dict[str, list[dict[str, Any]]] = {}
    for kind, key, meta in events:
        if kind == "join":
            members.setdefault(key, []).append(meta)
        else:
            members[key].remove(meta)
    return {key: {"metas": list(m)} for key, m in members.items() if m}


def to_diff(events) -> dict[str, Any]:
    """One presence_diff carrying ``events``, as the server batches them."""
    diff: dict[str, Any] = {"joins": {}, "leaves": {}}
    for kind, key, meta in events:
        part = diff["joins" if kind == "join" else "leaves"]
        part.setdefault(key, {"metas": []})["metas"].append(meta)
    return diff


@settings(max_examples=300, deadline=None)
@given(ops=events_strategy, cuts=st.lists(st.integers(0, 80), max_size=6))
def test_property_state_then_diffs_equals_final_state(ops, cuts):
    """Syncing a state and then the diffs gives the final presences directly."""
    events, final = simulate(ops)
    bounds = sorted({min(c, len(events)) for c in cuts} | {0, len(events)})
    first, *rest = [events[a:b] for a, b in itertools.pairwise(bounds)] or [[]]
    initial = simulate_state(first)
    diffs = [to_diff(batch) for batch in rest]
    frozen = copy.deepcopy((initial, diffs))

    state = Presence.sync_state({}, initial)
    assert state == initial
    for diff in diffs:
        state = Presence.sync_diff(state, diff)

    assert state == final
    assert Presence.sync_state(Presence.sync_state({}, initial), final) == final
    assert Presence.sync_state(state, final) == final
    assert (initial, diffs) == frozen  # no input was mutated
