"""
The gateway's own code per connection, without sockets: a listener's
protocol (connection hygiene, framing base, message stream) made, fed one
line and closed, as C{bench/churn.py --own} times it.  The whole cost of a
real connection is mostly Twisted's and the kernel's; this is the part the
gateway can cut, measured without a loaded machine's noise.
"""

import gc
import socket
import time

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure


class _ServerLike(StringTransport):
    """
    Like Twisted's TCP server transport: each C{getPeer()} builds a new
    address, and C{getHandle()} is a real socket (the keepalive spread).
    """

    def __init__(self, handle):
        StringTransport.__init__(self)
        self.handle = handle

    def getPeer(self):
        return IPv4Address("TCP", "10.0.0.1", 40000)

    def getHandle(self):
        return self.handle


def ownCost(connections=20000, repeat=7):
    """
    :return: the best CPU time per connection, in seconds.
    """
    from tests.server.helpers import Listener

    factory = Listener({}).factory
    reason = Failure(ConnectionDone())
    line = b"c1-2-0 " + b"x" * 92 + b"\n"
    handle = socket.socket()
    best = float("inf")
    try:
        for _ in range(repeat):
            gc.collect()
            start = time.thread_time()
            for _ in range(connections):
                protocol = factory.buildProtocol(None)
                protocol.makeConnection(_ServerLike(handle))
                protocol.dataReceived(line)
                protocol.connectionLost(reason)
            best = min(best, (time.thread_time() - start) / connections)
    finally:
        handle.close()
    return best
