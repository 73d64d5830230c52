"""Bad input never crashes the server, and other connections never notice.

Close codes follow the transcripts (README fact 4): anything the serializer
cannot decode closes with 1011 and an empty reason, a text frame that is not
UTF-8 with 1007. Oversized messages are our own rule (1009, see below).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from phoenix_channels.server import DEFAULT_MAX_MESSAGE_SIZE, demo_server

from .helpers import (
    TIMEOUT,
    J,
    connect,
    expect_close,
    heartbeat,
    join,
    recv,
    recv_json,
    upgrade_request,
    v1,
    v2,
)

MALFORMED_V2 = {
    "not json": "hello",
    "empty text": "",
    "json object": J(
        {"topic": "room:lobby", "event": "echo", "payload": {}, "ref": "2"}
    ),
    "arity 4": J(["1", "2", "room:lobby", "echo"]),
    "json string": J("just a string"),
    "nan": '["1","2","room:lobby","echo",NaN]',
    "truncated binary": bytes([0, 1, 2, 10, 11]) + b"1",
    "kind 1 binary": bytes([1, 1, 1, 10, 4]) + b"12room:lobbyecho{}",
    "kind 2 binary": bytes([2, 10, 4]) + b"room:lobbyecho",
    "empty binary": b"",
}
MALFORMED_V1 = {
    "v2 array": J(["1", "2", "room:lobby", "echo", {}]),
    "missing ref": J({"topic": "room:lobby", "event": "echo", "payload": {}}),
    "not json": "hello",
    "binary push": bytes([0, 1, 1, 10, 11]) + b"12room:lobbybinary_echo\x00\x01",
}


async def _assert_survivor_works(server, survivor, topic="room:lobby"):
    """The other connection still gets its echo, and new connections open."""
    await survivor.send(v2("9", "10", topic, "echo", {"still": "here"}))
    assert await recv_json(survivor) == [
        "9",
        "10",
        topic,
        "phx_reply",
        {"response": {"still": "here"}, "status": "ok"},
    ]
    fresh = await connect(server)
    async with fresh:
        await heartbeat(fresh)


@pytest.mark.parametrize("frame", MALFORMED_V2.values(), ids=list(MALFORMED_V2))
async def test_undecodable_v2_frame_closes_1011_and_spares_others(demo, frame):
    """An undecodable v2 frame closes only its own connection, with 1011."""
    bad, survivor = await connect(demo), await connect(demo)
    async with bad, survivor:
        await join(bad, "room:lobby")
        await join(survivor, "room:lobby", "9")
        await bad.send(frame)
        assert await expect_close(bad) == (1011, "")
        await _assert_survivor_works(demo, survivor)


@pytest.mark.parametrize("frame", MALFORMED_V1.values(), ids=list(MALFORMED_V1))
async def test_undecodable_v1_frame_closes_1011_and_spares_others(demo, frame):
    """An undecodable v1 frame closes only its own connection, with 1011."""
    bad, survivor = await connect(demo, "vsn=1.0.0"), await connect(demo)
    async with bad, survivor:
        await bad.send(v1("room:lobby", "phx_join", {}, "1"))
        await recv(bad)
        await join(survivor, "room:lobby", "9")
        await bad.send(frame)
        assert await expect_close(bad) == (1011, "")
        await _assert_survivor_works(demo, survivor)


async def test_v1_json_in_a_binary_frame_is_decoded(demo):
    """Phoenix's V1 serializer ignores the opcode: binary JSON works."""
    ws = await connect(demo, "vsn=1.0.0")
    async with ws:
        await ws.send(v1("phoenix", "heartbeat", {}, "7").encode())
        assert json.loads(await recv(ws))["ref"] == "7"


async def test_invalid_utf8_text_closes_1007(demo):
    """A text frame that is not UTF-8 is refused by the transport: 1007."""
    bad, survivor = await connect(demo), await connect(demo)
    async with bad, survivor:
        await join(survivor, "room:lobby", "9")
        await bad.send(b"\xff\xfe", text=True)
        assert await expect_close(bad) == (1007, "")
        await _assert_survivor_works(demo, survivor)


async def test_frames_after_a_bad_frame_are_not_handled(recorded_demo):
    """Frames queued behind an undecodable one get no answer: the socket died."""
    ws = await connect(recorded_demo)
    async with ws:
        await ws.send("hello")
        await ws.send(v2(None, "1", "phoenix", "heartbeat"))
        assert await expect_close(ws) == (1011, "")
    [record] = recorded_demo.recorder.connections
    assert [f.kind for f in record.frames if f.direction == "out"] == ["close"]


async def test_a_bad_frame_behind_a_slow_join_waits_its_turn(demo):
    """Frames behind a blocking join are decoded in order: the join reply
    comes first, then the 1011 close."""
    ws = await connect(demo)
    async with ws:
        await ws.send(v2("1", "1", "room:d", "phx_join", {"delay_ms": 50}))
        await ws.send("hello")
        assert (await recv_json(ws))[:4] == ["1", "1", "room:d", "phx_reply"]
        assert await expect_close(ws) == (1011, "")


async def test_oversized_message_closes_1009():
    """Unlike Bandit (no limit, transcript v2_oversized_frame echoes 2 MiB),
    we cap inbound messages so one frame cannot take all memory: 1009."""
    async with demo_server(port=0, max_message_size=1024) as server:
        bad, survivor = await connect(server), await connect(server)
        async with bad, survivor:
            await join(survivor, "room:lobby", "9")
            await bad.send(v2("1", "2", "room:lobby", "echo", {"d": "a" * 1024}))
            assert await expect_close(bad) == (1009, "")
            await _assert_survivor_works(server, survivor)


async def test_oversized_fragmented_message_closes_1009():
    """The cap applies to the whole message, however it is fragmented."""
    async with demo_server(port=0, max_message_size=1024) as server:
        ws = await connect(server)
        async with ws:
            await ws.send(["a" * 600, "b" * 600])
            assert await expect_close(ws) == (1009, "")


async def test_default_cap_is_8_mib(demo):
    """By default a message of 8 MiB passes and one byte more does not."""
    assert DEFAULT_MAX_MESSAGE_SIZE == 8 * 1024 * 1024
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:big")
        head = v2("1", "2", "room:big", "echo", {"d": ""})
        filler = "a" * (DEFAULT_MAX_MESSAGE_SIZE - len(head))
        await ws.send(v2("1", "2", "room:big", "echo", {"d": filler}))
        reply = await recv_json(ws)
        assert len(reply[4]["response"]["d"]) == len(filler)
    # One byte more: announcing the length is enough, nothing else is sent.
    reader, writer = await asyncio.open_connection(demo.host, demo.port)
    try:
        writer.write(upgrade_request(demo, "/socket/websocket?vsn=2.0.0"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101 ")
        size = DEFAULT_MAX_MESSAGE_SIZE + 1
        writer.write(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + b"mask")
        close = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
        assert close == bytes([0x88, 2]) + (1009).to_bytes(2, "big")  # no reason
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_fragmented_messages_are_assembled(demo):
    """A message sent in fragments is handled as one message."""
    ws = await connect(demo)
    async with ws:
        frame = v2(None, "f", "phoenix", "heartbeat")
        await ws.send([frame[:5], frame[5:20], frame[20:]])
        assert json.loads(await recv(ws))[1] == "f"
        await ws.send([b"\x00\x01", bytes([0, 10, 7]) + b"1"])  # truncated binary
        assert await expect_close(ws) == (1011, "")


async def test_handler_exception_kills_only_its_channel(demo):
    """A crash gives that channel phx_error; other channels keep working."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        await join(ws, "room:b", "2")
        await ws.send(v2("1", "3", "room:a", "crash"))
        assert await recv(ws) == '["1","1","room:a","phx_error",{}]'
        await ws.send(v2("2", "4", "room:b", "echo", {"ok": 1}))
        assert (await recv_json(ws))[4] == {"response": {"ok": 1}, "status": "ok"}


@pytest.mark.parametrize(
    "frame",
    [
        J(["1", "2", 42, "echo", {}]),
        J(["1", "2", None, "phx_join", {}]),
        J(["1", "2", ["a"], "echo", {}]),
        J(["1", "2", {"a": 1}, "phx_leave", {}]),
        J(["1", {"r": 1}, "room:lobby", "echo", {}]),
        J(["1", "2", "room:lobby", ["e"], {}]),
        J([None, "2", "phoenix", "heartbeat", "x"]),
        J(["1", "2", "room:lobby", "echo", "just a string", "extra"]),
    ],
)
async def test_odd_but_decodable_frames_keep_the_socket_open(demo, frame):
    """Non-string fields are handled leniently, as Phoenix does (fact 5)."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:lobby")
        await ws.send(frame)
        await recv(ws)  # some reply
        await heartbeat(ws)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.text(max_size=40),
            st.lists(
                st.one_of(st.none(), st.integers(), st.text(max_size=8)),
                min_size=5,
                max_size=6,
            ).map(J),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_frames_never_hurt_the_server(frames):
    """Whatever arrives, the server answers or closes that connection only,
    and another connection keeps being served."""
    asyncio.run(_fuzz(frames))


async def _fuzz(frames):
    errors = []
    asyncio.get_running_loop().set_exception_handler(lambda _l, c: errors.append(c))
    async with demo_server(port=0) as server:
        survivor, ws = await connect(server), await connect(server)
        async with survivor, ws:
            await join(survivor, "room:fuzz", "9")
            await join(ws, "room:fuzz", "1")
            for frame in frames:
                try:
                    await ws.send(frame)
                except Exception:
                    break
            await _assert_survivor_works(server, survivor, "room:fuzz")
    assert not errors, errors


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        (1000, 1000),
        (1001, 1000),
        (3000, 1000),
        (4001, 1000),
        (1012, 1002),
        (1014, 1002),
    ],
)
async def test_client_close_codes_are_answered_like_bandit(demo, code, answer):
    """Bandit answers 1000 with no reason, or 1002 for codes a client may not
    send; it never echoes the client's code or reason."""
    ws = await connect(demo)
    await ws.close(code, "bye")
    assert ws.protocol.close_rcvd is not None
    assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (answer, "")


async def test_invalid_close_code_gets_1002_without_reason(demo):
    """A close frame with a code no one may send fails the connection: 1002."""
    reader, writer = await asyncio.open_connection(demo.host, demo.port)
    try:
        writer.write(upgrade_request(demo, "/socket/websocket?vsn=2.0.0"))
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.write(bytes([0x88, 0x82]) + b"\0\0\0\0" + (999).to_bytes(2, "big"))
        close = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
        assert close == bytes([0x88, 2]) + (1002).to_bytes(2, "big")
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
