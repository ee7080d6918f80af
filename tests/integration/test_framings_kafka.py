# -*- test-case-name: tests.integration.test_framings_kafka -*-
"""
Every built-in framing end to end through one gateway process and a real
Kafka broker: random chunking in, exact messages out, and one bad-input case
per reason showing the connection closed, the event counted and the other
clients' messages all delivered.
"""

import random
import re
import struct
import time
from collections import defaultdict

import pytest

from devkafka import consume
from tests.integration.support.process import GatewayProcess
from tests.integration.support.sockets import peerName, sendInRandomPieces
from tests.integration.support.topics import newTopic


def varint(number):
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


#: listener name (as the gateway numbers repeated framings), its --listen
#: framing part, an encoder, and whether messages may be empty / binary.
LISTENERS = [
    ("lines", "lines", lambda ms: b"".join(m + b"\n" for m in ms), "text"),
    (
        "lines-2",
        "lines(delimiter=\\r\\n,max-size=100)",
        lambda ms: b"".join(m + b"\r\n" for m in ms),
        "text",
    ),
    (
        "length-prefixed",
        "length-prefixed",
        lambda ms: b"".join(struct.pack("!I", len(m)) + m for m in ms),
        "binary",
    ),
    (
        "length-prefixed-2",
        "length-prefixed(prefix-size=2,byte-order=little,includes-prefix=true)",
        lambda ms: b"".join(struct.pack("<H", len(m) + 2) + m for m in ms),
        "binary",
    ),
    ("netstring", "netstring", lambda ms: b"".join(b"%d:%s," % (len(m), m) for m in ms), "binary"),
    (
        "octet-counting",
        "octet-counting",
        lambda ms: b"".join(b"%d %s" % (len(m), m) for m in ms),
        "nonempty",
    ),
    (
        "octet-counting-2",
        "octet-counting(allow-newline=true)",
        lambda ms: b"".join(
            (b"%d %s" % (len(m), m)) if i % 2 else m + b"\n" for i, m in enumerate(ms)
        ),
        "syslog",
    ),
    ("varint", "varint", lambda ms: b"".join(varint(len(m)) + m for m in ms), "binary"),
    ("chunks", "chunks(idle-ms=20,max-size=64)", lambda ms: b"".join(ms), "binary"),
]


def makeMessages(kind, client, rng, count):
    messages = []
    for n in range(count):
        head = b"%d-%d:" % (client, n)
        if kind == "binary":
            body = rng.randbytes(rng.randint(0, 60))
            messages.append(head + body if n % 7 else b"")
        elif kind == "syslog":
            # Newline-terminated frames must not start with a digit or hold
            # a newline; prefix both kinds with a letter.
            messages.append(b"<13>" + head + bytes(rng.choice(b"abc xyz") for _ in range(20)))
        else:
            messages.append(
                head + bytes(rng.choice(b"abc xyz\t") for _ in range(rng.randint(0, 40)))
            )
    return messages


@pytest.fixture(scope="module")
def everyFraming(kafka, tmp_path_factory):
    """
    One gateway with a listener per framing variant, and its topic.
    """
    topic = newTopic(kafka)
    args = ["--bootstrap-servers", kafka.bootstrap, "--topic", topic]
    for _, framing, _, _ in LISTENERS:
        args += ["--listen", f"{framing}=tcp:0:interface=127.0.0.1"]
    process = GatewayProcess(tmp_path_factory.mktemp("framings"), args)
    process.start(listeners=len(LISTENERS))
    assert set(process.ports) == {name for name, _, _, _ in LISTENERS}
    yield process, topic
    process.stop()


def recordsFrom(kafka, topic, peers, count, timeout=60):
    """
    Read the topic until C{count} records from C{peers} arrived; group their
    values by peer.
    """
    byPeer = defaultdict(list)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        byPeer.clear()
        for record in consume(kafka.bootstrap, topic, timeout=1.5):
            peer = dict(record.headers)["gateway-peer"].decode()
            if peer in peers:
                byPeer[peer].append(record.value)
        if sum(map(len, byPeer.values())) >= count:
            break
    return byPeer


@pytest.mark.parametrize("name,framing,encode,kind", LISTENERS, ids=[l[0] for l in LISTENERS])
def test_everyFramingRoundTrip(kafka, everyFraming, name, framing, encode, kind):
    """
    Three clients send 200 messages each, cut at random byte boundaries;
    Kafka holds exactly those messages in order per connection (for
    C{chunks}: exactly the bytes, in order, in chunks of at most 64 bytes).
    """
    process, topic = everyFraming
    rng = random.Random(name)
    sent = {}
    sockets = []
    for client in range(3):
        sock = process.connect(name)
        sockets.append(sock)
        messages = makeMessages(kind, client, rng, 200)
        sent[peerName(sock)] = messages
        sendInRandomPieces(sock, encode(messages), rng)
    for sock in sockets:
        sock.close()
    if name == "chunks":
        expected = sum(len(b"".join(m)) for m in sent.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            received = recordsFrom(kafka, topic, set(sent), 0, timeout=1.5)
            if sum(len(b"".join(v)) for v in received.values()) >= expected:
                break
        for peer, messages in sent.items():
            assert b"".join(received[peer]) == b"".join(messages)
            assert all(0 < len(chunk) <= 64 for chunk in received[peer])
        return
    received = recordsFrom(kafka, topic, set(sent), 600)
    for peer, messages in sent.items():
        assert received[peer] == messages, f"{name}: {peer} differs"


#: listener, a message it accepts, bad input, the reason.
BAD_INPUT = [
    ("lines-2", b"fine\r\n", b"x" * 101 + b"\r\n", "too-large"),
    ("netstring", b"4:fine,", b"1a:x,", "malformed-length"),
    ("netstring", b"4:fine,", b"3:abcX", "malformed-frame"),
    (
        "length-prefixed",
        struct.pack("!I", 4) + b"fine",
        struct.pack("!I", 10) + b"abc",
        "incomplete",
    ),
]


@pytest.mark.parametrize("name,good,bad,reason", BAD_INPUT, ids=[b[3] for b in BAD_INPUT])
def test_badInputClosesOnlyThatConnection(kafka, everyFraming, name, good, bad, reason):
    """
    A client sending bad input has its complete messages published, is
    disconnected (or, for C{incomplete}, closes mid-frame), the event is
    logged with its reason and counted; a client on the same listener
    sending before and after has every message delivered.
    """
    process, topic = everyFraming
    encode = {l[0]: l[2] for l in LISTENERS}[name]
    before = len(re.findall(rf"{reason} \(limit", process.log()))
    goodClient = process.connect(name)
    badClient = process.connect(name)
    goodPeer, badPeer = peerName(goodClient), peerName(badClient)
    goodClient.sendall(encode([b"good-1"]))
    badClient.sendall(good + bad)
    if reason == "incomplete":
        badClient.close()
    else:
        badClient.settimeout(10)
        assert badClient.recv(1) == b""
    goodClient.sendall(encode([b"good-2"]))
    goodClient.close()
    received = recordsFrom(kafka, topic, {goodPeer, badPeer}, 3)
    assert received[goodPeer] == [b"good-1", b"good-2"]
    assert received[badPeer] == [b"fine"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = re.findall(
            rf"{reason} \(limit [^\n]*\((\d+) {reason} on this listener\)", process.log()
        )
        if len(events) > before:
            break
        time.sleep(0.1)
    assert len(events) == before + 1
    assert int(events[-1]) >= 1
