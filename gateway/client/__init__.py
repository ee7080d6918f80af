# -*- test-case-name: tests.client.test_exports -*-
"""
The reference client of a gateway listener in ack mode, and the consumer's
half of exactly-once (see C{docs/client.md}).

L{GatewayClient} is the Twisted API, L{BlockingClient} the same for
scripts, C{gateway-send} (L{gateway.client.send}) the command;
L{Deduplicator} drops the copies that resending after a failure puts in
Kafka.  Nothing here imports the gateway's server, Kafka or router layers:
a client needs only the framings.
"""

from gateway.client.blocking import BlockingClient, ConnectFailed, Outcome, clientEndpoint
from gateway.client.client import GatewayClient, MessageRefused, WindowFull
from gateway.client.dedup import Deduplicator, sessionAndSeq
from gateway.client.framing import ClientFraming
from gateway.client.wire import SEQ_HEADER, SESSION_HEADER, checkSession, newSession

__all__ = [
    "BlockingClient",
    "ClientFraming",
    "ConnectFailed",
    "Deduplicator",
    "GatewayClient",
    "MessageRefused",
    "Outcome",
    "SEQ_HEADER",
    "SESSION_HEADER",
    "WindowFull",
    "checkSession",
    "clientEndpoint",
    "newSession",
    "sessionAndSeq",
]
