from __future__ import annotations

from tests.fakes import open_socket, reply


async def test_join_push_reply_leave() -> None:
    socket, timers, net = open_socket()
    ch = socket.channel("room:1", {"a": 1})
    join = ch.join()
    assert net.conn.frames() == [["3", "3", "room:1", "phx_join", {"a": 1}]]
    net.conn.receive(reply("3", "3", "room:1", "ok", {"joined": True}))
    assert await join == {"joined": True}
    assert ch.state == "joined"
    push = ch.push("echo", {"x": 1})
    assert net.conn.frames()[-1] == ["3", "4", "room:1", "echo", {"x": 1}]
    assert socket.pending_pushes() == [push]
    net.conn.receive(reply("3", "4", "room:1", "ok", {"x": 1}))
    assert await push == {"x": 1}
    assert socket.pending_pushes() == []
    leave = ch.leave()
    assert ch.state == "closed"
    assert leave.status == "ok"
    assert net.conn.frames()[-1] == ["3", "5", "room:1", "phx_leave", {}]
