"""
What TLS costs a listener: the same lines read by a plain listener's
protocol and by a TLS listener's (Twisted's memory-BIO TLS, the gateway's
handshake class and hygiene), in process, without sockets or a broker.

For each repetition a client (Twisted's TLS, over L{twisted.test.iosim})
completes a handshake with a new server connection and encrypts the whole
stream; only the server's side is timed: ciphertext fed in reads of
C{--read} bytes to the TLS wrapper, decrypted, framed and handed to a
no-op sink.  Prints messages/s, ns per message and the ratio to plain.

    .venv/bin/python bench/tls.py [--messages 200000] [--size 100] [--read 65536]
"""

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trustme  # noqa: E402
from _common import payloads, rate, table  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.ssl import Certificate, optionsForClientTLS  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.protocols.tls import TLSMemoryBIOFactory  # noqa: E402
from twisted.test.iosim import FakeTransport, connect  # noqa: E402

from gateway.framing.options import resolveOptions  # noqa: E402
from gateway.registry import loadFramings  # noqa: E402
from gateway.server.factory import listenerFactory  # noqa: E402
from gateway.server.listener import ListenerConfig  # noqa: E402
from gateway.server.tls import ServerTLS, TLSSettings, tlsFactory  # noqa: E402


class Counting:
    """
    A sink whose streams count messages and do nothing else.
    """

    count = 0

    def openStream(self, listener, peer, producer):
        sink = self

        class Stream:
            def send(self, payload):
                sink.count += 1

            def close(self):
                pass

        return Stream()


def listener(sink, tls=None):
    """
    :return: a lines listener's factory (a TLS one with C{tls} settings).
    """
    plugin = loadFramings()["lines"]
    options = resolveOptions(plugin, {}, 1 << 20)
    config = ListenerConfig(
        name="bench",
        framing="lines",
        endpoint="tcp:0",
        sink=sink,
        maxMessageSize=1 << 20,
        options=options,
        clock=Clock(),
        tls=tls,
    )
    factory = listenerFactory(plugin, config)
    if tls is not None:
        factory = tlsFactory(ServerTLS("bench", tls), factory, config.clock)
    return factory


def chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def plainRun(stream, read):
    sink = Counting()
    protocol = listener(sink).buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    protocol.makeConnection(FakeTransport(protocol, isServer=True))
    pieces = chunks(stream, read)
    start = time.perf_counter()
    for piece in pieces:
        protocol.dataReceived(piece)
    return time.perf_counter() - start, sink.count


def tlsRun(stream, read, settings, ca):
    sink = Counting()
    clock = Clock()
    address = IPv4Address("TCP", "127.0.0.1", 1)
    server = listener(sink, settings).buildProtocol(address)
    client = TLSMemoryBIOFactory(
        optionsForClientTLS("localhost", trustRoot=ca),
        True,
        Factory.forProtocol(Protocol),
        clock=clock,
    ).buildProtocol(address)
    clientTransport = FakeTransport(client, isServer=False)
    pump = connect(server, FakeTransport(server, isServer=True), client, clientTransport)
    pump.flush()
    for piece in chunks(stream, 16384):
        client.write(piece)
    clock.advance(0)
    ciphertext = clientTransport.getOutBuffer()
    pieces = chunks(ciphertext, read)
    start = time.perf_counter()
    for piece in pieces:
        server.dataReceived(piece)
    return time.perf_counter() - start, sink.count


def best(run, repeat, expected):
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            elapsed, count = run()
        finally:
            gc.enable()
        if count != expected:
            raise SystemExit(f"delivered {count} of {expected} messages")
        times.append(elapsed)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--read", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    stream = b"".join(p + b"\n" for p in payloads(args.messages, args.size))
    authority = trustme.CA()
    with tempfile.TemporaryDirectory() as directory:
        pem = Path(directory) / "server.pem"
        pem.write_bytes(authority.issue_cert("localhost").private_key_and_cert_chain_pem.bytes())
        settings = TLSSettings.fromOptions({"tls-cert": str(pem)})
        ca = Certificate.loadPEM(authority.cert_pem.bytes())
        plain = best(lambda: plainRun(stream, args.read), args.repeat, args.messages)
        tls = best(lambda: tlsRun(stream, args.read, settings, ca), args.repeat, args.messages)
    rows = []
    for label, elapsed in (("plain", plain), ("TLS", tls)):
        rows.append(
            [
                label,
                f"{elapsed:.3f} s",
                rate(args.messages / elapsed),
                f"{elapsed / args.messages * 1e9:,.0f}",
                f"{elapsed / plain:.2f}x",
            ]
        )
    print(
        f"{args.messages:,} lines of {args.size} bytes, reads of {args.read:,} bytes, "
        f"best of {args.repeat}"
    )
    print(table(["listener", "time", "messages/s", "ns/message", "time vs plain"], rows))


if __name__ == "__main__":
    main()
