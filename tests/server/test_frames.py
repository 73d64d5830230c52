"""Hand-made frames in, exact frames out (PROTOCOL Appendix A and beyond).

These pin the frames of Appendix A, observed from genuine Phoenix 1.7.24,
with refs and topics the transcripts do not use, plus binary and v1 cases.
"""

from __future__ import annotations

import re

import pytest

from .helpers import J, binary_push, connect, heartbeat, recv, v1, v2

# Each case: frames sent in order, then the exact frames expected in order.
APPENDIX_A = {
    "heartbeat": (
        [v2(None, "2", "phoenix", "heartbeat")],
        ['[null,"2","phoenix","phx_reply",{"response":{},"status":"ok"}]'],
    ),
    "fail": (
        [v2("1", "1", "room:lobby", "phx_join"), v2("1", "4", "room:lobby", "fail")],
        [
            '["1","1","room:lobby","phx_reply",{"response":{"joined":"room:lobby",'
            '"params":{}},"status":"ok"}]',
            '["1","4","room:lobby","phx_reply",{"response":{"errors":{"title":'
            '["can\'t be blank"]}},"status":"error"}]',
        ],
    ),
    "push_me": (
        [
            v2("1", "1", "room:x", "phx_join"),
            v2("1", "2", "room:x", "push_me", {"x": 1}),
        ],
        [
            '["1","1","room:x","phx_reply",{"response":{"joined":"room:x",'
            '"params":{}},"status":"ok"}]',
            '["1",null,"room:x","pushed",{"x":1}]',
            '["1","2","room:x","phx_reply",{"response":{"x":1},"status":"ok"}]',
        ],
    ),
    "broadcast": (
        [
            v2("1", "1", "room:x", "phx_join"),
            v2("1", "2", "room:x", "broadcast", {"b": 2}),
        ],
        [
            '["1","1","room:x","phx_reply",{"response":{"joined":"room:x",'
            '"params":{}},"status":"ok"}]',
            '[null,null,"room:x","broadcasted",{"b":2}]',
            '["1","2","room:x","phx_reply",{"response":{"b":2},"status":"ok"}]',
        ],
    ),
    "join refused": (
        [v2("20", "20", "room:private", "phx_join")],
        [
            '["20","20","room:private","phx_reply",{"response":{"reason":'
            '"unauthorized"},"status":"error"}]'
        ],
    ),
    "crash": (
        [
            v2("30", "30", "room:crashy", "phx_join"),
            v2("30", "31", "room:crashy", "crash"),
        ],
        [
            '["30","30","room:crashy","phx_reply",{"response":{"joined":"room:crashy",'
            '"params":{}},"status":"ok"}]',
            '["30","30","room:crashy","phx_error",{}]',
        ],
    ),
    "stop": (
        [
            v2("40", "40", "room:stopper", "phx_join"),
            v2("40", "41", "room:stopper", "stop"),
        ],
        [
            '["40","40","room:stopper","phx_reply",{"response":{"joined":"room:stopper",'
            '"params":{}},"status":"ok"}]',
            '["40","41","room:stopper","phx_reply",{"response":{"bye":true},"status":"ok"}]',
            '["40","40","room:stopper","phx_close",{}]',
        ],
    ),
    "leave": (
        [
            v2("50", "50", "room:leaver", "phx_join"),
            v2("50", "51", "room:leaver", "phx_leave"),
        ],
        [
            '["50","50","room:leaver","phx_reply",{"response":{"joined":"room:leaver",'
            '"params":{}},"status":"ok"}]',
            '["50","51","room:leaver","phx_reply",{"response":{},"status":"ok"}]',
            '["50","50","room:leaver","phx_close",{}]',
        ],
    ),
    "unmatched topic": (
        [v2("1", "11", "room:notjoined", "echo", {"x": 1})],
        [
            '[null,"11","room:notjoined","phx_reply",{"response":{"reason":'
            '"unmatched topic"},"status":"error"}]'
        ],
    ),
}


@pytest.mark.parametrize("case", APPENDIX_A, ids=list(APPENDIX_A))
async def test_appendix_a_frames(demo, case):
    """Each Appendix A exchange produces exactly its frames, then nothing."""
    sent, expected = APPENDIX_A[case]
    ws = await connect(demo)
    async with ws:
        for frame in sent:
            await ws.send(frame)
        for frame in expected:
            assert await recv(ws) == frame
        await heartbeat(ws)


async def test_binary_echo_vector(demo):
    """Appendix A: a kind-0 push of binary_echo gets a kind-1 reply."""
    ws = await connect(demo)
    async with ws:
        await ws.send(v2("1", "1", "room:lobby", "phx_join"))
        await recv(ws)
        await ws.send(
            bytes.fromhex(
                "0001020a0b313130726f6f6d3a6c6f62627962696e6172795f6563686f000102feff"
            )
        )
        reply = await recv(ws)
        assert reply == bytes.fromhex(
            "0101020a02313130726f6f6d3a6c6f6262796f6b000102feff"
        )


async def test_binary_push_vector(demo):
    """Appendix A: binary_push sends a kind-0 server push (no ref), then JSON."""
    ws = await connect(demo)
    async with ws:
        await ws.send(v2("1", "1", "room:lobby", "phx_join"))
        await recv(ws)
        await ws.send(
            binary_push("1", "2", "room:lobby", "binary_push", b"\xde\xad\xbe\xef")
        )
        assert await recv(ws) == bytes.fromhex(
            "00010a0d31726f6f6d3a6c6f62627962696e6172795f707573686564deadbeef"
        )
        assert await recv(ws) == (
            '["1","2","room:lobby","phx_reply",{"response":{"size":4},"status":"ok"}]'
        )


async def test_binary_broadcast_is_kind_2_and_binary_reply_kind_1(demo):
    """A bytes broadcast goes out as kind 2 to every member; the echoed bytes
    reply is kind 1."""
    a, b = await connect(demo), await connect(demo)
    async with a, b:
        await a.send(v2("1", "1", "room:bin", "phx_join"))
        await b.send(v2("7", "7", "room:bin", "phx_join"))
        await recv(a), await recv(b)
        await a.send(binary_push("1", "2", "room:bin", "broadcast", b"\x01\x02"))
        kind2 = bytes([2, 8, 11]) + b"room:binbroadcasted\x01\x02"
        assert await recv(a) == kind2
        assert await recv(a) == bytes([1, 1, 1, 8, 2]) + b"12room:binok\x01\x02"
        assert await recv(b) == kind2


async def test_binary_broadcast_skips_v1_members(demo):
    """vsn 1.0.0 has no binary frames: v1 members do not get a binary
    broadcast (Phoenix would crash the sender instead)."""
    a, old = await connect(demo), await connect(demo, "vsn=1.0.0")
    async with a, old:
        await a.send(v2("1", "1", "room:mixed", "phx_join"))
        await old.send(v1("room:mixed", "phx_join", {}, "1"))
        await recv(a), await recv(old)
        await a.send(binary_push("1", "2", "room:mixed", "broadcast", b"\x01"))
        assert (await recv(a))[0] == 2
        assert (await recv(a))[0] == 1
        await heartbeat(old, vsn="1.0.0")


async def test_v1_frames_never_carry_join_ref(demo):
    """v1 replies, pushes and phx_error are objects with no join_ref (fact 9)."""
    ws = await connect(demo, "vsn=1.0.0")
    async with ws:
        await ws.send(v1("room:c", "phx_join", {}, "1"))
        assert await recv(ws) == (
            '{"event":"phx_reply","payload":{"response":{"joined":"room:c",'
            '"params":{}},"status":"ok"},"ref":"1","topic":"room:c"}'
        )
        await ws.send(v1("room:c", "crash", {}, "2"))
        assert (
            await recv(ws)
            == '{"event":"phx_error","payload":{},"ref":null,"topic":"room:c"}'
        )


async def test_default_vsn_is_1_0_0(demo):
    """No vsn param: Phoenix speaks vsn 1.0.0 (params["vsn"] || "1.0.0")."""
    ws = await connect(demo, "")
    async with ws:
        await heartbeat(ws, vsn="1.0.0")


async def test_numeric_join_ref_and_ref_are_echoed(demo):
    """Refs are opaque JSON: numbers come back as numbers."""
    ws = await connect(demo)
    async with ws:
        await ws.send(J([5, 6, "room:n", "phx_join", {}]))
        assert (await recv(ws)).startswith('[5,6,"room:n","phx_reply"')
        await ws.send(J([5, 7, "room:n", "push_me", {}]))
        assert await recv(ws) == '[5,null,"room:n","pushed",{}]'
        assert (
            await recv(ws) == '[5,7,"room:n","phx_reply",{"response":{},"status":"ok"}]'
        )


async def test_presence_join_frames(demo):
    """Appendix A: presence join gives the reply, the own diff, then the state."""
    ws = await connect(demo)
    async with ws:
        await ws.send(v2("60", "60", "presence:x", "phx_join", {"user_id": "py1"}))
        assert await recv(ws) == (
            '["60","60","presence:x","phx_reply",{"response":{"joined":"presence:x"},'
            '"status":"ok"}]'
        )
        diff = await recv(ws)
        match = re.fullmatch(
            r'\[null,null,"presence:x","presence_diff",\{"joins":\{"py1":\{"metas":'
            r'\[\{"online_at":"(\d+)","phx_ref":"([A-Za-z0-9_-]{16})"\}\]\}\},'
            r'"leaves":\{\}\}\]',
            diff,
        )
        assert match is not None, diff
        online_at, phx_ref = match.groups()
        assert await recv(ws) == (
            '["60",null,"presence:x","presence_state",{"py1":{"metas":'
            f'[{{"online_at":"{online_at}","phx_ref":"{phx_ref}"}}]}}}}]'
        )
