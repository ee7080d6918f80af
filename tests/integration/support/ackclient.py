# -*- test-case-name: tests.integration.test_sigkill_kafka -*-
"""
The reference client (L{gateway.client.GatewayClient}) run as a process of
its own, for tests that kill gateways under it: it sends C{COUNT} numbered
lines to a C{lines(ack=on)} listener in one session, and prints one line per
event on standard output, so the test knows what the client saw and when:

  - C{status CONFIRMED FIRST NEXT}: every 20 ms;
  - C{lost FIRST NEXT}: a connection ended; messages before FIRST were
    acknowledged, messages from FIRST to NEXT - 1 were written to it and
    are resent on the next connection;
  - C{done CONFIRMED REFUSED}: every message was confirmed or refused.

Run as C{python -m tests.integration.support.ackclient PORT COUNT SESSION}.
"""

import sys
from pathlib import Path

from twisted.internet import defer, task

#: The checkout: the folder to run the client in (C{python -m}).
ROOT = Path(__file__).resolve().parents[3]


def command(port, count, session):
    """
    :return: the command line running this client (in L{ROOT}).
    """
    return [sys.executable, "-m", __name__, str(port), str(count), session]


def main(reactor, port, count, session):
    """
    Send C{count} lines to C{127.0.0.1:port} and wait for every
    acknowledgement, reconnecting every 0.2 s while the gateway is gone.
    """
    from gateway.client import ClientFraming, GatewayClient, MessageRefused, clientEndpoint

    def say(*words):
        sys.stdout.write(" ".join(str(word) for word in words) + "\n")
        sys.stdout.flush()

    client = GatewayClient(
        clientEndpoint(reactor, f"127.0.0.1:{port}"),
        ClientFraming.fromSpec("lines"),
        session=session,
        maxUnacked=2000,
        clock=reactor,
        retryPolicy=lambda attempt: 0.2,
    )
    lost = client.connectionLost

    def connectionLost(protocol, reason):
        # Only the connection that carried the session ends it.
        current = client.connected
        lost(protocol, reason)
        if current and not client.connected:
            say("lost", client.firstUnacknowledged, client.nextSeq)

    client.connectionLost = connectionLost
    status = task.LoopingCall(
        lambda: say("status", client.confirmed, client.firstUnacknowledged, client.nextSeq)
    )
    status.clock = reactor
    status.start(0.02)
    client.start()
    for number in range(1, count + 1):
        yield client.whenRoom()
        client.send(b"%07d" % number).addErrback(lambda f: f.trap(MessageRefused))
    yield client.whenAllAcknowledged()
    status.stop()
    say("done", client.confirmed, len(client.refused))
    yield client.stop()


if __name__ == "__main__":
    port, count, session = sys.argv[1:]
    task.react(defer.inlineCallbacks(main), (int(port), int(count), session))
