"""Presence across clients (issue "Binary messages and Presence"): three
sockets join one ``presence:*`` topic with different ``user_id``s and each
``Presence`` follows the others coming and going."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from phoenix_channels import Channel, Presence, PushError, Socket
from phoenix_channels.server import Server

from .conftest import FAST, Calls, SocketFactory, bounded

TOPIC = "presence:lobby"


@dataclass
class Member:
    """One client: its socket, channel, Presence and what the callbacks saw."""

    user_id: str
    socket: Socket
    channel: Channel
    presence: Presence
    joins: Calls = field(default_factory=Calls)
    leaves: Calls = field(default_factory=Calls)
    syncs: Calls = field(default_factory=Calls)

    def keys(self) -> list[str]:
        return sorted(self.presence.list(lambda key, _: key))

    def view(self) -> dict[str, list[str]]:
        """Key -> phx_refs of its metas: what must agree across clients."""
        return {
            key: sorted(meta["phx_ref"] for meta in presence["metas"])
            for key, presence in self.presence.list(lambda k, p: (k, p))
        }

    async def synced_to(self, keys: list[str]) -> None:
        """Wait (bounded) until an on_sync shows exactly ``keys``."""
        await self.syncs.wait(lambda calls: bool(calls) and calls.calls[-1][0] == keys)


async def member(connect: SocketFactory, user_id: str) -> Member:
    """A client joined to TOPIC as ``user_id``, its Presence made before join."""
    socket = await connect(params={"who": user_id}, **FAST)
    channel = socket.channel(TOPIC, {"user_id": user_id})
    presence = Presence(channel)
    m = Member(user_id, socket, channel, presence)
    presence.on_join(m.joins)
    presence.on_leave(m.leaves)
    presence.on_sync(lambda: m.syncs(m.keys()))
    assert await bounded(channel.join()) == {"joined": TOPIC}
    return m


async def three(connect: SocketFactory) -> list[Member]:
    """u1, u2, u3 join one after the other; each waits until all see it."""
    members: list[Member] = []
    for user_id in ("u1", "u2", "u3"):
        members.append(await member(connect, user_id))
        keys = [m.user_id for m in members]
        for m in members:
            await m.synced_to(keys)
    return members


async def agree(
    members: list[Member], keys: list[str], stale: dict[str, list[str]] | None = None
) -> None:
    """Wait until every member lists ``keys``, one meta each, the same refs,
    and none of the ``stale`` refs."""
    old = {ref for refs in (stale or {}).values() for ref in refs}

    def settled(m: Member) -> bool:
        view = m.view()
        return (
            m.keys() == keys
            and all(len(refs) == 1 for refs in view.values())
            and not old & {ref for refs in view.values() for ref in refs}
        )

    for m in members:
        await m.syncs.wait(lambda _calls, m=m: settled(m))
    views = [m.view() for m in members]
    assert all(view == views[0] for view in views), views


def joined_keys(calls: Calls) -> list[str]:
    return [key for key, _current, _new in calls.calls]


async def test_each_member_sees_the_others_join(connect: SocketFactory) -> None:
    """Every Presence ends up listing u1, u2, u3 with the same metas."""
    members = await three(connect)
    await agree(members, ["u1", "u2", "u3"])
    for m in members:
        for presence in m.presence.list():
            [meta] = presence["metas"]
            assert set(meta) == {"online_at", "phx_ref"}
            assert meta["online_at"].isdigit()


async def test_on_sync_follows_each_join_in_order(connect: SocketFactory) -> None:
    """on_sync shows u1's view growing [u1] -> [u1, u2] -> [u1, u2, u3]; the
    joiner's own diff, sent before its state, is applied after it."""
    u1, u2, u3 = await three(connect)
    assert u1.syncs.first_args == [["u1"], ["u1", "u2"], ["u1", "u2", "u3"]]
    assert u2.syncs.first_args == [["u1", "u2"], ["u1", "u2", "u3"]]
    assert u3.syncs.first_args == [["u1", "u2", "u3"]]


async def test_on_join_reports_new_members(connect: SocketFactory) -> None:
    """on_join gets (key, None, presence) for a member that was not there."""
    u1, u2, u3 = await three(connect)
    # u1 saw u2 and u3 arrive by diff: once each, as new keys.
    others = [call for call in u1.joins.calls if call[0] != "u1"]
    assert [key for key, *_ in others] == ["u2", "u3"]
    for _key, current, new in others:
        assert current is None
        assert len(new["metas"]) == 1
    # u3 learnt everybody from its presence_state.
    assert {"u1", "u2", "u3"} <= set(joined_keys(u3.joins))
    assert all(current is None for key, current, _ in u3.joins.calls if key != "u3")


async def test_leave_is_seen_by_the_others(connect: SocketFactory) -> None:
    """When u3 leaves its channel, u1 and u2 get on_leave for u3 and drop it."""
    u1, u2, u3 = await three(connect)
    u3_ref = u1.view()["u3"]
    await bounded(u3.channel.leave())
    for m in (u1, u2):
        await m.leaves.wait()
        [(key, current, left)] = m.leaves.calls
        assert key == "u3"
        assert current["metas"] == []
        assert [meta["phx_ref"] for meta in left["metas"]] == u3_ref
    await agree([u1, u2], ["u1", "u2"])


async def test_one_connection_killed_on_the_server(
    server: Server, connect: SocketFactory
) -> None:
    """When the server aborts u3's TCP connection, the others see u3 leave;
    u3 reconnects and every list agrees again, with u3's new meta."""
    u1, u2, u3 = await three(connect)
    old_ref = u1.view()["u3"]
    [conn] = [c for c in server.connections if c.params.get("who") == "u3"]
    conn.abort()
    for m in (u1, u2):
        await m.leaves.wait()
        assert [call[0] for call in m.leaves.calls] == ["u3"]
    await agree([u1, u2, u3], ["u1", "u2", "u3"], {"u3": old_ref})


async def test_client_transport_closed_abruptly(connect: SocketFactory) -> None:
    """When u3's own TCP connection dies without a close frame, the others see
    u3 leave, and then come back after its reconnect."""
    u1, u2, u3 = await three(connect)
    old_ref = u1.view()["u3"]
    # No public API kills a client's TCP connection: abort its transport.
    u3.socket._link.conn.abort()  # type: ignore[union-attr]
    for m in (u1, u2):
        await m.leaves.wait()
        assert [call[0] for call in m.leaves.calls] == ["u3"]
    await agree([u1, u2, u3], ["u1", "u2", "u3"], {"u3": old_ref})


async def test_all_connections_dropped(server: Server, connect: SocketFactory) -> None:
    """After ``server.drop_connections()`` every client reconnects and rejoins;
    stale metas leave and every list agrees on the new ones."""
    members = await three(connect)
    old = members[0].view()
    assert server.drop_connections() == 3
    await agree(members, ["u1", "u2", "u3"], old)
    for m in members:  # each saw every old meta leave
        left = {key for key, _current, _left in m.leaves.calls}
        assert left == {"u1", "u2", "u3"}


async def test_two_sockets_of_one_user_show_two_metas(connect: SocketFactory) -> None:
    """A user on two sockets is one key with two metas; closing one leaves one."""
    watcher = await member(connect, "w")
    first = await member(connect, "same")
    second = await member(connect, "same")
    await watcher.syncs.wait(lambda _c: len(watcher.view().get("same", [])) == 2)
    await bounded(second.channel.leave())
    await watcher.leaves.wait()
    [(key, current, left)] = watcher.leaves.calls
    assert key == "same"
    assert len(current["metas"]) == 1 and len(left["metas"]) == 1
    assert watcher.view()["same"] == first.view()["same"]


@pytest.mark.parametrize("vsn", ["2.0.0"])
async def test_presence_and_echo_share_the_channel(connect: SocketFactory) -> None:
    """``echo`` works on a presence topic, and unknown events are refused."""
    m = await member(connect, "u1")
    assert await bounded(m.channel.push("echo", {"x": "é"})) == {"x": "é"}
    with pytest.raises(PushError) as info:
        await bounded(m.channel.push("count"))
    assert info.value.response == {"reason": "unknown_event"}
