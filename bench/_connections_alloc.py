"""
What each connection allocates in the gateway process, measured in process
with C{tracemalloc} (C{bench/connections.py --allocations}; no broker).
"""

import socket
import sys
import time
from pathlib import Path

from _common import table
from _connections_clients import raiseNoFile


class _StubService:
    """
    Stands in for the producer service: the router only needs C{produce}
    (and sets C{observer}).
    """

    observer = None

    def produce(self, topic, value, key=None, headers=None):
        pass


def _deepSizes(protocol):
    """
    C{sys.getsizeof} of what one connection's protocol holds of its own.
    """
    stream = protocol._stream
    closure = protocol.dataReceived
    send = stream.send
    rows = [
        ("protocol object (LinesProtocol)", sys.getsizeof(protocol)),
        (
            f"protocol __dict__ ({len(vars(protocol))} keys: {', '.join(sorted(vars(protocol)))})",
            sys.getsizeof(vars(protocol)),
        ),
        ("dataReceived byte-counter closure (function)", sys.getsizeof(closure)),
        ("  its cells (stats, receive)", sum(sys.getsizeof(c) for c in closure.__closure__ or ())),
        (
            "  bound method dataReceived it holds",
            sys.getsizeof(closure.__closure__[0].cell_contents) if closure.__closure__ else 0,
        ),
        ("peer string 'host:port'", sys.getsizeof(protocol.peer)),
        ("MessageStream (__slots__)", sys.getsizeof(stream)),
        ("  its send, bound once (held by the protocol)", sys.getsizeof(send)),
        ("  key bytes 'listener/peer'", sys.getsizeof(stream._key)),
    ]
    headers = stream._headers
    if headers:
        rows.append(
            (
                "  headers: list + 2 tuples + 2 values",
                sys.getsizeof(headers)
                + sum(sys.getsizeof(t) for t in headers)
                + sum(sys.getsizeof(t[1]) for t in headers),
            )
        )
    return rows


def _transportSizes(transport):
    rows = [
        ("tcp.Server object", sys.getsizeof(transport)),
        (f"tcp.Server __dict__ ({len(vars(transport))} keys)", sys.getsizeof(vars(transport))),
        ("socket.socket object", sys.getsizeof(transport.socket)),
        (
            "logstr + repstr strings",
            sys.getsizeof(transport.logstr) + sys.getsizeof(transport.repstr),
        ),
        (
            "client address tuple + host str",
            sys.getsizeof(transport.client) + sys.getsizeof(transport.client[0]),
        ),
    ]
    for name in ("fileno", "_tempDataBuffer", "dataBuffer"):
        value = getattr(transport, name, None)
        if value is not None:
            rows.append((f"  {name} ({type(value).__name__})", sys.getsizeof(value)))
    return rows


def _printTop(stats, count):
    """
    Print C{tracemalloc} differences by line, per connection.
    """
    for stat in stats:
        frame = stat.traceback[0]
        print(
            f"    {stat.size_diff / count:>8,.1f} B/conn  {stat.count_diff / count:>5.2f} "
            f"blocks/conn  {Path(frame.filename).name}:{frame.lineno}"
        )


def allocations(count, real):
    """
    What each connection allocates in the gateway process, measured in
    process with C{tracemalloc}: (a) C{count} C{lines} protocols on
    C{StringTransport}s sharing one listener configuration and one real
    L{Router}; (b) C{real} connections accepted by a real Twisted port (the
    reactor is not run: the port's C{doRead} is called by hand), so the
    transport (C{tcp.Server}) and its socket object are counted too.
    """
    import gc
    import tracemalloc

    from twisted.internet import reactor

    from gateway.registry import loadFramings
    from gateway.router import Router
    from gateway.server.factory import listenerFactory
    from gateway.service import DEFAULT_MAX_MESSAGE_SIZE
    from gateway.testing import connectFraming

    raiseNoFile()
    plugin = loadFramings()["lines"]
    router = Router(_StubService(), "topic")
    protocol, _, _ = connectFraming(
        plugin,
        sink=router,
        name="lines",
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
    )
    config = protocol.factory.config
    keep = [protocol]

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    size0, _ = tracemalloc.get_traced_memory()
    for i in range(count):
        p, t, _ = connectFraming(plugin, config=config, peerPort=10000 + i)
        keep.append((p, t))
    gc.collect()
    size1, _ = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    perA = (size1 - size0) / count
    top = after.compare_to(before, "lineno")[:12]

    # A StringTransport is not what a connection has: measure it alone.
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    gc.collect()
    s0, _ = tracemalloc.get_traced_memory()
    transports = [
        StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", i)) for i in range(count)
    ]
    s1, _ = tracemalloc.get_traced_memory()
    perStringTransport = (s1 - s0) / count
    del transports

    # (b) real accepted connections.

    factory = listenerFactory(plugin, config)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    address = ("127.0.0.1", port.getHost().port)
    clientsSide = []
    gc.collect()
    r0, _ = tracemalloc.get_traced_memory()
    rBefore = tracemalloc.take_snapshot()
    opened0 = config.stats.accepted
    while len(clientsSide) < real:
        batch = []
        for _ in range(min(40, real - len(clientsSide))):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            batch.append(sock)
        time.sleep(0.002)
        port.doRead()
        clientsSide.extend(batch)
    while config.stats.accepted - opened0 < real:
        time.sleep(0.01)
        port.doRead()
    # Client sockets are allocated in this process too: leave them out.
    gc.collect()
    r1, _ = tracemalloc.get_traced_memory()
    rAfter = tracemalloc.take_snapshot()
    clientObjects = sum(sys.getsizeof(s) for s in clientsSide) + sys.getsizeof(clientsSide)
    perReal = (r1 - r0 - clientObjects) / real
    realTop = [
        d for d in rAfter.compare_to(rBefore, "lineno") if "connections.py" not in str(d.traceback)
    ][:12]
    tracemalloc.stop()
    served = list(router.clients)[-1]

    print(f"in-process allocations per connection (tracemalloc, Python {sys.version.split()[0]})")
    print()
    print(
        f"(a) {count:,} LinesProtocol via connectFraming, one ListenerConfig, "
        f"a real Router (stub producer), StringTransport:"
    )
    print(
        f"    {perA:,.0f} bytes per connection, of which the StringTransport "
        f"(+ its address and buffers) {perStringTransport:,.0f}: protocol "
        f"side {perA - perStringTransport:,.0f} bytes"
    )
    print()
    print("    largest increases by line (all connections):")
    _printTop(top, count)
    print()
    print(
        f"(b) {real:,} connections accepted by a real Twisted port "
        f"(tcp.Server transports, socket objects):"
    )
    print(f"    {perReal:,.0f} bytes per connection of Python heap")
    print()
    print("    largest increases by line:")
    _printTop(realTop, real)
    print()
    rows = _deepSizes(served) + _transportSizes(served.transport)
    rows.append(
        (
            "router.clients dict (all entries) per connection",
            round(sys.getsizeof(router.clients) / len(router.clients)),
        )
    )
    print(
        table(
            ["object of one real connection (sys.getsizeof, shallow)", "bytes"],
            [[k, v] for k, v in rows],
        )
    )
    for sock in clientsSide:
        sock.close()
    port.stopListening()
    return 0
